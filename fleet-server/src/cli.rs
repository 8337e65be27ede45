//! The command line: `run`, `check-config`, `print-default-config`; the operators'
//! `devices`, `users` and `tokens` over the API; `releases` key tools (docs/ref/fleet-cli.md).

mod client;
mod config_cmd;
mod devices;
mod offline;
mod releases;
mod rollouts;
mod table;
mod tokens;
mod users;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, DEFAULT_CONFIG, FleetConfig};
use crate::exit;
use simpul_base::cli::{emit, init_logging, stop_on_signals};

/// The default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/simpul/fleet.toml";

#[derive(Debug, Parser)]
#[command(name = "simpul-fleet", version, about = "The Simpul fleet server: ingest, store, platform API, delivery")]
struct Cli {
    /// The config file.
    #[arg(long, short, global = true, default_value = DEFAULT_CONFIG_PATH, env = "SIMPUL_FLEET_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the fleet server (the default).
    Run,
    /// Check the config; name the file and line of each mistake (exit 78 if wrong).
    CheckConfig {
        /// Also print the config as the server would use it.
        #[arg(long)]
        print: bool,
    },
    /// Print the commented default config.
    PrintDefaultConfig,
    /// Devices, over the API: `list`, `show <device>`, `proposals <device>`,
    /// `accept <device> <proposal> [--as ID]`.
    #[command(subcommand)]
    Devices(devices::DevicesCmd),
    /// Operators (ops only): `list`, `add <name> --role R [--offline]`, `remove <name>`.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// API tokens (ops only): `list`, `create --name N --role R [--offline]`, `revoke <id>`.
    #[command(subcommand)]
    Tokens(tokens::TokensCmd),
    /// A device's desired config, over the API: `get`, `set <device> <file>`, `history`.
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
    /// Config groups, over the API: `list`, `set <group> <file>`, `assign <device> <group>`.
    #[command(subcommand)]
    Groups(config_cmd::GroupsCmd),
    /// Release keys and signatures, on an ops machine: `keygen --out K`, `sign --key K
    /// --version V --target T <binary>`, `verify --public-key P <binary>`; over the API:
    /// `publish <binary>`, `list`.
    #[command(subcommand)]
    Releases(releases::ReleasesCmd),
    /// Rollouts in waves, over the API: `start <version> [--group G] [--canary N]
    /// [--waves 10,50,100] [--gate 10m]`, `list`, `show <id>`, `pause|resume|abort <id>`.
    #[command(subcommand)]
    Rollouts(rollouts::RolloutsCmd),
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::PrintDefaultConfig => emit(DEFAULT_CONFIG),
        Command::CheckConfig { print } => check_config(&cli.config, print),
        Command::Run => run(&cli.config),
        Command::Devices(c) => devices::run(&cli.config, c),
        Command::Users(c) => users::run(&cli.config, c),
        Command::Tokens(c) => tokens::run(&cli.config, c),
        Command::Config(c) => config_cmd::run_config(&cli.config, c),
        Command::Groups(c) => config_cmd::run_groups(&cli.config, c),
        Command::Releases(c) => releases::run(&cli.config, c),
        Command::Rollouts(c) => rollouts::run(&cli.config, c),
    }
}

fn load_or_report(path: &Path) -> Result<FleetConfig, ExitCode> {
    config::load(path).map_err(|e| {
        for p in e.problems() {
            eprintln!("error: {p}");
        }
        eprintln!("the config was not used; see `simpul-fleet print-default-config` and docs/ref/fleet-config.md");
        exit::code(exit::CONFIG)
    })
}

fn check_config(path: &Path, print: bool) -> ExitCode {
    let cfg = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut text = format!("config OK: {}\n", path.display());
    if print {
        match toml::to_string_pretty(&cfg) {
            Ok(t) => text.push_str(&t),
            Err(e) => {
                eprintln!("error: cannot print the config: {e}");
                return exit::code(exit::FAILURE);
            }
        }
    }
    emit(&text)
}

fn run(path: &Path) -> ExitCode {
    let cfg = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging("simpul-fleet", &cfg.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::code(exit::FAILURE);
        }
    };
    let shutdown = CancellationToken::new();
    runtime.spawn(stop_on_signals(shutdown.clone()));
    match runtime.block_on(crate::run::run(cfg, shutdown)) {
        Ok(()) => exit::code(exit::OK),
        Err(e) => {
            tracing::error!(error = %e, "simpul-fleet failed");
            exit::code(exit::FAILURE)
        }
    }
}
