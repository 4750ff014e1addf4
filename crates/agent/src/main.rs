fn main() -> std::process::ExitCode {
    lojad::cli::main()
}
