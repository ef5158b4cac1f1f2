//! `emrctl`: the GlucoChain command line. See `emrctl --help`.

fn main() -> std::process::ExitCode {
    emrctl::run_from_args()
}
