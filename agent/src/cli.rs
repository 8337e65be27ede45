//! The command line: `run` (the default), `check-config`, `print-default-config`,
//! `buffer stats`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffer;
use crate::config::{self, AgentConfig, ConfigSource, DEFAULT_CONFIG};
use crate::exit;
use simpul_base::cli::{emit, init_logging, stop_on_signals};

/// The default main config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/simpul/agent.toml";

#[derive(Debug, Parser)]
#[command(name = "simpul-agent", version, about = "The Simpul daemon on a kelurahan's Raspberry Pi")]
struct Cli {
    /// Main config file; drop-ins are read from `<name>.d/*.toml` beside it.
    #[arg(long, short, global = true, default_value = DEFAULT_CONFIG_PATH, env = "SIMPUL_AGENT_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Check the config and its drop-ins; name the file and line of each mistake.
    CheckConfig {
        /// Also print the merged config as the agent would use it.
        #[arg(long)]
        print: bool,
    },
    /// Print the commented default config.
    PrintDefaultConfig,
    /// Look into the durable buffer (safe while the agent runs).
    Buffer {
        #[command(subcommand)]
        command: BufferCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BufferCommand {
    /// Readings held, sequence numbers, size against quota, drops per sensor.
    Stats {
        /// The buffer file; default: `buffer.path` from the config.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::PrintDefaultConfig => emit(DEFAULT_CONFIG),
        Command::CheckConfig { print } => check_config(&cli.config, print),
        Command::Buffer { command: BufferCommand::Stats { path, json } } => buffer_stats(&cli.config, path, json),
        Command::Run => run(&cli.config),
    }
}

fn load_or_report(path: &Path) -> Result<(AgentConfig, ConfigSource), ExitCode> {
    config::load(path).map_err(|e| {
        for p in e.problems() {
            eprintln!("error: {p}");
        }
        eprintln!("the config was not used; see `simpul-agent print-default-config` and docs/ref/agent-config.md");
        exit::code(exit::CONFIG)
    })
}

fn check_config(path: &Path, print: bool) -> ExitCode {
    let (cfg, src) = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let files: Vec<String> = src.files.iter().map(|f| f.display().to_string()).collect();
    let ids = cfg.sensors.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut text = format!("config OK: {} sensor(s) [{ids}] from {}\n", cfg.sensors.len(), files.join(", "));
    if print {
        match toml::to_string_pretty(&cfg) {
            Ok(t) => text.push_str(&t),
            Err(e) => {
                eprintln!("error: cannot print the merged config: {e}");
                return exit::code(exit::FAILURE);
            }
        }
    }
    emit(&text)
}

fn buffer_stats(config_path: &Path, path: Option<PathBuf>, json: bool) -> ExitCode {
    let path = match path {
        Some(p) => p,
        None => match load_or_report(config_path) {
            Ok((cfg, _)) => cfg.buffer.path,
            Err(code) => return code,
        },
    };
    let stats = Buffer::open_read_only(&path).and_then(|b| b.stats());
    match stats {
        Ok(s) if json => match serde_json::to_string_pretty(&s) {
            Ok(j) => emit(&format!("{j}\n")),
            Err(e) => {
                eprintln!("error: {e}");
                exit::code(exit::FAILURE)
            }
        },
        Ok(s) => emit(&format!("buffer {}\n{s}\n", path.display())),
        Err(e) => {
            eprintln!("error: cannot read the buffer at {}: {e}", path.display());
            exit::code(exit::FAILURE)
        }
    }
}

fn run(path: &Path) -> ExitCode {
    let (cfg, src) = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging("simpul-agent", &cfg.log.level);
    tracing::info!(files = ?src.files, "config loaded");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(4).enable_all().build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::code(exit::FAILURE);
        }
    };
    // Read before anything can replace the binary: afterwards /proc/self/exe names the
    // old, unlinked file.
    let exe = std::env::current_exe();
    let update = cfg.update.clone();
    let shutdown = CancellationToken::new();
    runtime.spawn(stop_on_signals(shutdown.clone()));
    {
        let _inside = runtime.enter();
        simpul_base::systemd::spawn_watchdog();
    }
    let staged = crate::update::StagedSlot::default();
    let ran = runtime.block_on(crate::run::run_with_config_file(cfg, path.to_owned(), staged.clone(), shutdown));
    drop(runtime);
    if let Err(e) = ran {
        tracing::error!(error = %e, "simpul-agent failed");
        return exit::code(exit::FAILURE);
    }
    let staged = staged.lock().ok().and_then(|mut s| s.take());
    match (staged, exe) {
        (Some(staged), Ok(exe)) => trial(&staged, &update, &exe),
        (Some(_), Err(e)) => {
            tracing::error!(error = %e, "a release was staged, but this binary's path is unknown: no trial");
            exit::code(exit::FAILURE)
        }
        (None, _) => exit::code(exit::OK),
    }
}

/// Runs the trial of a staged release, then restarts into whichever binary won; a stop
/// during the trial ends the process (exit 0) instead.
fn trial(staged: &crate::update::Staged, update: &crate::config::UpdateConfig, exe: &Path) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match crate::update::trial::supervise(staged, update, exe, &args) {
        Ok(crate::update::trial::Outcome::Stopped) => return exit::code(exit::OK),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "the trial could not be settled"),
    }
    let e = crate::update::trial::exec(exe, &args);
    tracing::error!(error = %e, exe = %exe.display(), "cannot restart");
    exit::code(exit::FAILURE)
}
