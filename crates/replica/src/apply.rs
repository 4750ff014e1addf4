//! The registry-driven apply engine.
