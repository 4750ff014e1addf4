//! Applies plain .sql migrations by PRAGMA user_version.
