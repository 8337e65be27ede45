//! simpul-fleet: see `simpul-fleet --help`.

use clap::Parser;

/// The Simpul fleet server (work in progress: only `--version` and `--help` so far).
#[derive(Debug, Parser)]
#[command(name = "simpul-fleet", version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "simpul-fleet {}: the server itself is not built yet (see the delivery issue)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(1)
}
