//! retaguarda-server: the reference central.
pub mod cli {
    pub fn main() -> std::process::ExitCode {
        eprintln!("retaguarda-server: not built yet");
        std::process::ExitCode::FAILURE
    }
}
