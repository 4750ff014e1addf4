//! Harness for the reference central (filled by the server work).
