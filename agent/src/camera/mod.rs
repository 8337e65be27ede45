//! Cameras (docs/design/cameras.md): each configured camera's state
//! ([`CameraStates`], in the heartbeat), a probe that keeps it current, and the tunnel
//! through which the fleet pulls a camera while someone watches.

mod probe;
mod serve;
pub mod source;
mod state;
mod tunnel;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use serve::Cameras;
pub use state::CameraStates;
pub use tunnel::TunnelError;

use crate::config::{AgentConfig, RetryConfig};

/// Starts the probe, and the tunnel when the box knows its fleet; both stop at
/// `shutdown`. Nothing runs without cameras.
pub fn spawn(
    config: &AgentConfig,
    states: CameraStates,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    if config.cameras.is_empty() {
        return Vec::new();
    }
    let relay = &config.camera_relay;
    let cams = Cameras { configs: Arc::new(config.cameras.clone()), states, timeout: relay.connect_timeout };
    let mut tasks = vec![tokio::spawn(probe::run(cams.clone(), relay.probe_interval, shutdown.clone()))];
    match &config.trust.fleet {
        Some(fleet) => {
            let retry = RetryConfig { min_delay: relay.reconnect_min, max_delay: relay.reconnect_max };
            let run = tunnel::run(fleet.clone(), config.trust.dir.clone(), cams, retry, shutdown.clone());
            tasks.push(tokio::spawn(run));
        }
        None => tracing::info!("camera tunnel off: [trust] fleet is not set, so cameras are only checked"),
    }
    tasks
}
