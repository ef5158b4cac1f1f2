//! End-to-end tests live in `tests/`; this crate only builds the service
//! binaries under its own name so the tests can start them as processes.
