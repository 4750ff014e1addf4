//! Harness for the end-to-end tests: starts the real binaries as processes on
//! loopback ports chosen at run time, and talks to them over HTTP.

pub mod central;
pub mod proxy;
pub mod scratch;
pub mod store;
