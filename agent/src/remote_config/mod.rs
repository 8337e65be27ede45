//! Remote config: the fleet's desired config, checked, applied live as typed changes,
//! kept on disk, reported, and rolled back by the agent on its own when it cuts the
//! agent off from the fleet. See docs/design/remote-config.md.
//!
//! - The uplink hands over each payload of `config/desired` (a retained
//!   [`DesiredConfig`]). One at or below the highest version dealt with is ignored, so the
//!   retained copy that comes with every connect is not applied again.
//! - The desired TOML is an `agent.d/` drop-in: it is checked by loading the local files
//!   with it standing in for `agent.d/90-fleet.toml`; any mistake is reported
//!   `Rejected` with its `file:line` and nothing changes. A change that needs a restart
//!   ([`diff`]) is rejected too.
//! - Applying: the drop-in is written atomically (the old one kept as `.prev`, the file
//!   marked `trial`), then only what changed is touched: the sensors added, removed or
//!   changed ([`crate::sensor::Supervisor`]), the uplink's settings.
//! - The agent then needs a broker connection (CONNACK) within `[remote_config]
//!   rollback_after`. With one, the file loses its trial mark and `Applied` is reported.
//!   Without one, `.prev` is restored and applied, and `RolledBack` plus the event
//!   `config_rolled_back` go out once connected again. A trial file found at start (the
//!   agent stopped during the wait) gets the same wait.

mod diff;
pub mod fleet_file;
mod task;

use std::path::PathBuf;
use std::sync::Arc;

use simpul_protocol::control::ReportedConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use diff::{Changes, diff};
pub use fleet_file::FleetFile;
#[doc(no_inline)]
pub use simpul_protocol::control::DesiredConfig;

use crate::config::{AgentConfig, UplinkConfig};
use crate::health::Collector;
use crate::sensor::Supervisor;
use crate::uplink::{Message, UplinkHandle, UplinkStats};

/// What the remote config is at, for tests and people.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteStatus {
    /// The desired version running (`None`: no fleet config).
    pub running: Option<u64>,
    /// The highest desired version dealt with (applied, rejected or rolled back).
    pub handled: Option<u64>,
    /// The version applied and waiting for a broker connection.
    pub trial: Option<u64>,
    /// The last report made.
    pub last: Option<ReportedConfig>,
    /// Desired-config payloads that were not a `DesiredConfig`.
    pub malformed: u64,
}

/// What the remote config task works with.
#[derive(Debug)]
pub struct Context {
    /// The main config file (`agent.toml`); its drop-ins are beside it in `agent.d/`.
    pub main: PathBuf,
    /// The config running now.
    pub running: AgentConfig,
    /// The running sensors.
    pub sensors: Supervisor,
    /// The uplink's config, its state, the desired payloads and where reports go.
    pub uplink_config: watch::Sender<UplinkConfig>,
    pub uplink_stats: Arc<UplinkStats>,
    pub desired: watch::Receiver<Option<Vec<u8>>>,
    pub messages: mpsc::Sender<Message>,
    /// The heartbeat's source, told the running version.
    pub collector: Option<Arc<Collector>>,
}

impl Context {
    /// A context on the running `uplink`.
    pub fn new(main: PathBuf, running: AgentConfig, sensors: Supervisor, uplink: &UplinkHandle) -> Context {
        Context {
            main,
            running,
            sensors,
            uplink_config: uplink.config.clone(),
            uplink_stats: Arc::clone(&uplink.stats),
            desired: uplink.desired.clone(),
            messages: uplink.messages.clone(),
            collector: None,
        }
    }
}

/// The running remote config task.
#[derive(Debug)]
pub struct RemoteConfigHandle {
    /// What it is at.
    pub status: watch::Receiver<RemoteStatus>,
    task: JoinHandle<()>,
}

impl RemoteConfigHandle {
    /// Waits until the task has stopped (after shutdown); its sensors are dropped with it.
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the remote config task failed");
        }
    }
}

/// Starts the remote config task; it runs until `shutdown` is cancelled.
pub fn spawn(ctx: Context, shutdown: CancellationToken) -> RemoteConfigHandle {
    let (status_tx, status) = watch::channel(RemoteStatus::default());
    let task = tokio::spawn(task::Task::new(ctx, status_tx).run(shutdown));
    RemoteConfigHandle { status, task }
}
