//! lojad: the store agent.
pub mod cli {
    pub fn main() -> std::process::ExitCode {
        eprintln!("lojad: not built yet");
        std::process::ExitCode::FAILURE
    }
}
