//! simpul-base: what every Simpul binary shares, so that the agent and the fleet behave
//! alike for systemd, scripts and people.
//!
//! - [`exit`]: exit codes (78 for a bad config, for `RestartPreventExitStatus=`).
//! - [`causes`]: an error told with its causes.
//! - [`cli`]: stdout that tolerates a closed pipe, logging setup, graceful-stop signals.
//! - [`journal`]: logs to journald under systemd, as records with priorities and fields.
//! - [`problem`]: a config mistake named by file, line and key, and the error that lists them.
//! - [`systemd`]: `READY`, `STOPPING` and watchdog pings for `Type=notify` units.
//! - [`tls`]: TLS clients that trust only the CA they are given.

pub mod causes;
pub mod cli;
pub mod exit;
pub mod fs;
pub mod journal;
pub mod problem;
pub mod systemd;
pub mod tls;

pub use problem::{ConfigError, Problem};
