//! `run(config, shutdown)`: the whole agent, as the binary and the tests start it.

use std::sync::Arc;
use std::time::Duration;

use simpul_protocol::DeviceId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::buffer::{Buffer, BufferError, BufferOptions, WriterSummary, spawn_writer};
use crate::clock::{Clock, SystemClock};
use crate::config::AgentConfig;
use crate::{sensor, uplink};

/// How many samples may wait between the sensors and the buffer writer. Beyond it a
/// sensor waits (backpressure) rather than dropping; at 8 sensors at 1 Hz this is minutes.
const SAMPLE_QUEUE: usize = 4096;

/// How long a graceful stop may take before the agent gives up waiting for sensors.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
    #[error("the buffer writer task failed: {0}")]
    Writer(#[from] tokio::task::JoinError),
}

/// Runs the agent until `shutdown` is cancelled, then stops its sensors, flushes the
/// buffer once more and returns what the writer did.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<WriterSummary, RunError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new(&config.clock));
    run_with_clock(config, clock, shutdown).await
}

/// [`run`] with a clock of the caller's choosing (tests steer time with it).
pub async fn run_with_clock(
    config: AgentConfig,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<WriterSummary, RunError> {
    let device = device_id(&config);
    tracing::info!(%device, sensors = config.sensors.len(), buffer = %config.buffer.path.display(), "simpul-agent starting");

    let opts = BufferOptions::from(&config.buffer);
    let path = config.buffer.path.clone();
    let buffer = tokio::task::spawn_blocking(move || Buffer::open(&path, opts)).await??;

    let (tx, rx) = mpsc::channel(SAMPLE_QUEUE);
    // The writer ends when every sender is gone (sensors stopped), after a last flush.
    let writer = spawn_writer(buffer, config.buffer.flush_interval, rx, CancellationToken::new());

    // The uplink reads and deletes through its own connection to the same file (WAL).
    let uplink = if config.uplink.enabled {
        let path = config.buffer.path.clone();
        let own = tokio::task::spawn_blocking(move || Buffer::open(&path, opts)).await??;
        Some(uplink::spawn(config.uplink.clone(), device.clone(), own, Arc::clone(&clock), shutdown.clone()))
    } else {
        tracing::info!("uplink disabled ([uplink] enabled = false): readings stay in the buffer");
        None
    };

    let tracker = TaskTracker::new();
    let sensors = sensor::spawn_all(&config.sensors, &config.sensor_retry, clock, tx, shutdown.clone(), &tracker);
    tracker.close();
    tracing::info!(sensors = ?sensors.stats().keys().collect::<Vec<_>>(), "sensors started");

    shutdown.cancelled().await;
    tracing::info!("stopping: waiting for sensors, then a last flush");
    if tokio::time::timeout(STOP_TIMEOUT, tracker.wait()).await.is_err() {
        tracing::warn!(timeout = ?STOP_TIMEOUT, "sensors did not stop in time");
    }
    drop(sensors);
    let summary = writer.await??;
    if let Some(uplink) = uplink {
        if tokio::time::timeout(STOP_TIMEOUT, uplink.join()).await.is_err() {
            tracing::warn!(timeout = ?STOP_TIMEOUT, "the uplink did not stop in time");
        }
    }
    tracing::info!(appended = summary.appended, flushes = summary.flushes, "simpul-agent stopped");
    Ok(summary)
}

/// The configured device id, or one made from the host name until enrolment gives one.
pub fn device_id(config: &AgentConfig) -> DeviceId {
    if let Some(id) = &config.device.id {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
        .collect();
    let trimmed = cleaned.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    DeviceId::new(trimmed.chars().take(simpul_protocol::topic::DEVICE_ID_MAX_LEN).collect::<String>())
        .unwrap_or_else(|_| DeviceId::new("simpul-agent").unwrap_or_else(|_| unreachable!("a valid literal id")))
}
