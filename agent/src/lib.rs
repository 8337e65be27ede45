//! simpul-agent: the daemon on a kelurahan's Raspberry Pi.
//!
//! Data path: a [`sensor`] driver turns serial bytes into [`Sample`]s; the [`buffer`]
//! gives each a per-device sequence number and keeps it in SQLite until the fleet
//! acknowledges it. See ARCHITECTURE.md and docs/design/.

pub mod buffer;
pub mod camera;
pub mod cli;
pub mod clock;
pub mod config;
pub mod exit;
pub mod health;
pub mod probe;
pub mod remote_config;
pub mod run;
pub mod sample;
pub mod sensor;
pub mod status_page;
pub mod trust;
pub mod update;
pub mod uplink;
pub mod version;

pub use run::run;
pub use sample::Sample;
