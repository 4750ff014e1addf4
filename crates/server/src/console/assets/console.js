// The picking list's print button (the console's only script).
document.addEventListener("DOMContentLoaded", function () {
  var b = document.getElementById("print");
  if (b) b.addEventListener("click", function () { window.print(); });
});
