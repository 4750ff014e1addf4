//! lojad: the store agent. One binary: the daemon (`lojad run`) and the
//! support CLI.

pub mod api;
pub mod central;
pub mod config;
pub mod daemon;
pub mod intake;
pub mod jobs;
pub mod priority;
pub mod scheduler;
pub mod signups;
pub mod state;
pub mod status;
pub mod tasks;

pub mod cli;
pub mod doctor;
pub mod logging;
pub mod service;
pub mod update;
