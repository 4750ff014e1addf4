//! lojad: the store agent. One binary: the daemon (`lojad run`) and the
//! support CLI.

pub mod config;
pub mod intake;
pub mod scheduler;
pub mod state;

pub mod cli {
    pub fn main() -> std::process::ExitCode {
        eprintln!("lojad: not built yet");
        std::process::ExitCode::FAILURE
    }
}
