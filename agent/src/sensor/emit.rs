//! Handing samples to the buffer: backpressure, never a silent drop.

use std::sync::Arc;
use std::time::Duration;

use simpul_protocol::ReadingTime;
use tokio::sync::mpsc::{Sender, error::TrySendError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stats::SensorStats;
use crate::Sample;

/// How often a full channel is logged, at most.
const FULL_LOG_EVERY: Duration = Duration::from_secs(30);

/// A metric's name and unit, made once from the config and shared by every sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Metric name.
    pub metric: Arc<str>,
    /// Unit; may be empty.
    pub unit: Arc<str>,
}

impl Channel {
    /// A channel for `metric` in `unit`.
    pub fn new(metric: &str, unit: &str) -> Channel {
        Channel { metric: Arc::from(metric), unit: Arc::from(unit) }
    }
}

/// Sends one sensor's samples to the buffer and records them in its stats.
#[derive(Debug)]
pub(crate) struct Emitter {
    sensor: Arc<str>,
    out: Sender<Sample>,
    stats: Arc<SensorStats>,
    last_full_log: Option<Instant>,
}

/// Why a driver should stop sending.
#[derive(Debug)]
pub(crate) struct Stop;

impl Emitter {
    pub(crate) fn new(sensor: &str, out: Sender<Sample>, stats: Arc<SensorStats>) -> Emitter {
        Emitter { sensor: Arc::from(sensor), out, stats, last_full_log: None }
    }

    /// The stats this emitter records into.
    pub(crate) fn stats(&self) -> &Arc<SensorStats> {
        &self.stats
    }

    /// Sends one sample. A full channel is waited on (the buffer is behind, the sensor
    /// slows down with it) and logged at most every 30 s. `Err(Stop)` when the receiver
    /// is gone or shutdown came while waiting.
    pub(crate) async fn send(
        &mut self,
        channel: &Channel,
        value: f64,
        time: ReadingTime,
        shutdown: &CancellationToken,
    ) -> Result<(), Stop> {
        self.stats.record(&channel.metric, value, time);
        tracing::trace!(metric = %channel.metric, value, "sample");
        let sample = Sample {
            sensor: self.sensor.clone(),
            metric: channel.metric.clone(),
            unit: channel.unit.clone(),
            value,
            time,
        };
        match self.out.try_send(sample) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(Stop),
            Err(TrySendError::Full(sample)) => {
                let now = Instant::now();
                if self.last_full_log.is_none_or(|t| now.duration_since(t) >= FULL_LOG_EVERY) {
                    self.last_full_log = Some(now);
                    tracing::warn!("sample channel full; waiting for the buffer (logged at most every 30s)");
                }
                tokio::select! {
                    r = self.out.send(sample) => r.map_err(|_| Stop),
                    () = shutdown.cancelled() => Err(Stop),
                }
            }
        }
    }
}
