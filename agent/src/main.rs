//! simpul-agent: see `simpul-agent --help`.

fn main() -> std::process::ExitCode {
    simpul_agent::cli::main()
}
