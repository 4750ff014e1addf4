fn main() -> std::process::ExitCode {
    loja_devtools::demo::main()
}
