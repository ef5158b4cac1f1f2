//! The emrctl command line, for the end-to-end tests.
fn main() -> std::process::ExitCode {
    emrctl::run_from_args()
}
