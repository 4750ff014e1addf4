fn main() -> std::process::ExitCode {
    retaguarda::cli::main()
}
