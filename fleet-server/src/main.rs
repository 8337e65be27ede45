//! simpul-fleet: see `simpul-fleet --help`.

fn main() -> std::process::ExitCode {
    simpul_fleet::cli::main()
}
