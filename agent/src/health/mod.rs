//! Health: the heartbeat the agent publishes to the fleet, and the local `/metrics`.
//!
//! Every `[health] heartbeat_interval` (default 60 s) the [`Collector`] builds a
//! [`Heartbeat`] — the box (CPU, load, memory, disk, SoC temperature, throttle flags),
//! the uplink, the buffer's depth and oldest unsent reading, each sensor — and, when the
//! uplink is connected, it goes to `simpul/v1/dev/{d}/heartbeat` at QoS 0, not retained:
//! a lost heartbeat is replaced by the next. When `metrics_listen` is set, the same
//! figures are served as Prometheus text on `GET /metrics` ([`metrics`]).
//!
//! Rule: a figure the box cannot give (no thermal zone, an unreadable file) is absent,
//! never zero. See docs/design/health.md.

mod collect;
pub mod metrics;
pub mod procfs;
mod sensors;
mod system;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_protocol::ControlMessage;
use simpul_protocol::control::Heartbeat;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use collect::{Collector, Sources, View};
pub use system::SystemReader;

use crate::buffer::Buffer;
use crate::clock::Clock;
use crate::config::HealthConfig;
use crate::sensor::LiveSensors;
use crate::uplink::{Notice, UplinkHandle};

/// The running health tasks.
#[derive(Debug)]
pub struct HealthHandle {
    /// The collector, shared by the heartbeat and `/metrics`.
    pub collector: Arc<Collector>,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl HealthHandle {
    /// Waits until every health task has stopped (after the shutdown token was cancelled).
    pub async fn join(self) {
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a health task failed");
            }
        }
    }
}

/// Starts the heartbeat (when there is an uplink to carry it) and the metrics server
/// (when `metrics_listen` is set). Both stop when `shutdown` is cancelled. A metrics
/// address that cannot be bound is logged, not fatal: readings matter more.
pub async fn spawn(
    config: &HealthConfig,
    buffer_path: &Path,
    sensors: LiveSensors,
    uplink: Option<&UplinkHandle>,
    clock: Arc<dyn Clock>,
    cameras: crate::camera::CameraStates,
    shutdown: CancellationToken,
) -> HealthHandle {
    let started = Instant::now();
    let path = buffer_path.to_owned();
    let buffer = match tokio::task::spawn_blocking(move || Buffer::open_read_only(&path)).await {
        Ok(Ok(b)) => Some(b),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: no buffer figures");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "health: no buffer figures");
            None
        }
    };
    let collector = Arc::new(Collector::new(Sources {
        sensors,
        uplink: uplink.map(|u| Arc::clone(&u.stats)),
        buffer,
        system: SystemReader::new(config, buffer_path),
        clock,
        started,
        cameras,
    }));
    let mut tasks = Vec::new();
    if let Some(u) = uplink {
        let beat = heartbeats(Arc::clone(&collector), config.heartbeat_interval, u.notices.clone(), shutdown.clone());
        tasks.push(tokio::spawn(beat));
    }
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_listen {
        match metrics::serve(addr, Arc::clone(&collector), shutdown.clone()).await {
            Ok((local, task)) => {
                metrics_addr = Some(local);
                tasks.push(task);
            }
            Err(e) => tracing::error!(%addr, error = %e, "cannot serve /metrics; going on without it"),
        }
    }
    HealthHandle { collector, metrics_addr, tasks }
}

/// One heartbeat per `interval` until `shutdown`; each is collected (moving the CPU
/// baseline) and handed to the uplink only while it is connected.
async fn heartbeats(
    collector: Arc<Collector>,
    interval: Duration,
    notices: mpsc::Sender<Notice>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let heartbeat = collector.heartbeat().await;
        if !collector.uplink().is_some_and(|u| u.connected) {
            continue;
        }
        let payload = match heartbeat.to_json() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat not encoded");
                continue;
            }
        };
        match notices.try_send(Notice { channel: Heartbeat::CHANNEL, payload }) {
            Ok(()) => tracing::debug!("heartbeat handed to the uplink"),
            Err(TrySendError::Full(_)) => tracing::debug!("uplink busy; heartbeat dropped"),
            Err(TrySendError::Closed(_)) => break,
        }
    }
}
