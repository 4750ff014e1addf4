//! lojad: the store agent. One binary: the daemon (`lojad run`) and the
//! support CLI.

pub mod api;
pub mod backoff;
pub mod central;
pub mod config;
pub mod daemon;
pub mod intake;
pub mod integration;
pub mod jobs;
pub mod priority;
pub mod release;
pub mod runtime;
pub mod schedule_view;
pub mod scheduler;
pub mod signups;
pub mod state;
pub mod status;
pub mod tasks;
pub mod verify_stats;
pub mod wakers;

pub mod cli;
pub mod doctor;
pub mod logging;
pub mod service;
pub mod update;
