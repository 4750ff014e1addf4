# Central back office console — English (on request: ?lang=en).
# Every id here has the same id in pt-BR.ftl (parity test).

nav-brand = Loja · Central console
nav-stores = Stores
nav-documents = Documents
nav-orders = Omni orders
nav-switches = Switches & schedules
nav-audit = Audit
nav-sign-out = Sign out

common-back = Back
common-all = All
common-none = None
common-never = Never
common-timezone = Times in Brasília time (UTC−3).
common-role-viewer = viewer
common-role-operator = operator
common-role-admin = admin

login-title = Sign in to the console
login-username = Username
login-password = Password
login-submit = Sign in
login-failed = Wrong username or password.

err-not-found = Not found.
err-internal = Internal error. Try again; if it persists, see the central's log.
err-forbidden = Your role does not allow this action.
err-csrf = The form expired or is invalid. Reload the page and try again.
err-action-failed = The action could not be done (invalid data, or the state changed already).

unit-minutes = { $n } min
unit-hours = { $n } h
unit-days = { $n } d

status-never = Never connected
status-silent = No contact
status-rejections = Rejections
status-behind = Behind
status-ok = Up to date

stores-title = Stores
stores-count = { $n } stores, trouble first.
stores-col-status = Status
stores-col-store = Store
stores-col-central = Central
stores-col-contact = Last contact
stores-col-lag = Replica lag (rows)
stores-col-documents = Documents
stores-col-rejected = Rejected
stores-waiting = waiting for the ERP

store-title = Store { $store }
store-entities = Replica per entity
store-col-entity = Entity
store-col-position = Store's position
store-col-head = Central's head
store-col-behind = Rows to receive
store-col-downloaded = Last download
store-exception = Exception to the availability window
store-exception-on = This store gets changes without waiting for the window.
store-exception-off = This store follows the availability window.
store-rejections = Rejected documents
store-recent = Recent documents

docs-title = Documents (the ERP's queue)
docs-count = { $n } documents (at most 200, newest first).
docs-col-received = Received
docs-col-store = Store
docs-col-kind = Kind
docs-col-store-seq = Store no.
docs-col-status = Status
docs-col-message = ERP message
docs-from = From
docs-to = To
docs-filter = Filter
docs-pending = Waiting for the ERP
docs-processed = Processed
docs-rejected = Rejected

orders-title = Omni sales orders
orders-count = { $n } orders, overdue first.
orders-older-than = Older than
orders-overdue = Overdue
orders-col-number = Order
orders-col-channel = Channel
orders-col-status = Status
orders-col-store = Store
orders-col-created = Created
orders-col-age = Age
orders-col-total = Total
orders-status-open = Open
orders-status-accepted = Accepted
orders-status-in_separation = Being picked
orders-status-ready_for_pickup = Ready for pickup
orders-status-put_back_pending = Put back on the shelf
orders-status-concluded = Concluded
orders-status-cancelled = Cancelled

picking-title = Picking list — order { $number }
picking-print = Print
picking-delivery = Delivery
picking-delivery-pickup = Store pickup
picking-delivery-ship-from-store = Ship from store
picking-delivery-endless-aisle = Endless aisle
picking-customer = Customer document
picking-col-store = Store
picking-col-line = Line
picking-col-product = Product
picking-col-qty = Quantity
picking-col-price = Amount
picking-col-state = Status
picking-col-check = Picked

switch-title = Switches & schedules
switch-intro = Minutes between downloads released to a store, per entity and level (chain, central, store); the level nearest the store wins.
switch-col-entity = Entity
switch-col-default = Default
switch-col-levels = Set at
switch-col-minutes = Minutes
switch-minutes = { $n } min
switch-follows-default = follows the default
switch-chain = Whole chain
switch-exceptions = Stores outside the window
switch-set = Set minutes
switch-level = Level

audit-title = Audit
audit-col-at = When
audit-col-user = Who
audit-col-action = Action
audit-col-target = Target
audit-col-outcome = Outcome

action-resend = Resend to the ERP
action-reassign = Reassign
action-picking = Picking list
action-exception-add = Release from the window
action-exception-remove = Back to the window
action-save = Save
