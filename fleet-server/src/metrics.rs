//! The fleet's own metrics, served as Prometheus text on `GET /metrics` (prometheus-client).
//!
//! Counters and the commit histogram are counted by ingest as it runs (they start at zero
//! with the process, as Prometheus expects). Gauges are read when scraped: devices known
//! and online from the store, broker connections and sessions from the embedded broker,
//! the webhook's lag from the delivery head and its cursor.

use std::fmt;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::broker::CountsView;

/// Every series the fleet exports, under the `simpul_fleet_` prefix.
pub struct Metrics {
    registry: Registry,
    /// Devices the fleet has heard from.
    pub devices_known: Gauge,
    /// Devices online by the online rule (docs/design/fleet-health.md).
    pub devices_online: Gauge,
    /// Readings newly stored by ingest (repeats not counted).
    pub readings_stored: Counter,
    /// Heartbeats committed.
    pub heartbeats: Counter,
    /// Ingest commits.
    pub commits: Counter,
    /// Time each ingest commit took, seconds (the store call, retries included).
    pub commit_seconds: Histogram,
    broker: Option<(CountsView, Gauge, Gauge)>,
    /// Deliverable readings the webhook has not yet delivered.
    webhook_lag: Option<Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The fleet's metrics; broker series when it runs the embedded `broker`, the webhook
    /// lag when a webhook is configured.
    pub fn new(broker: Option<CountsView>, webhook: bool) -> Metrics {
        let mut registry = Registry::with_prefix("simpul_fleet");
        let devices_known = Gauge::default();
        registry.register("devices_known", "Devices the fleet has heard from", devices_known.clone());
        let devices_online = Gauge::default();
        registry.register(
            "devices_online",
            "Devices online (status online and a recent heartbeat)",
            devices_online.clone(),
        );
        let readings_stored = Counter::default();
        registry.register("readings_stored", "Readings newly stored by ingest", readings_stored.clone());
        let heartbeats = Counter::default();
        registry.register("heartbeats", "Heartbeats committed", heartbeats.clone());
        let commits = Counter::default();
        registry.register("commits", "Ingest commits", commits.clone());
        // 1 ms to about 16 s.
        let commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register("commit_seconds", "Time of each ingest commit, seconds", commit_seconds.clone());
        let broker = broker.map(|view| {
            let (connections, sessions) = (Gauge::default(), Gauge::default());
            registry.register(
                "broker_connections",
                "Open MQTT connections at the embedded broker",
                connections.clone(),
            );
            registry.register("broker_sessions", "MQTT sessions at the embedded broker", sessions.clone());
            (view, connections, sessions)
        });
        let webhook_lag = webhook.then(|| {
            let lag = Gauge::default();
            registry.register(
                "webhook_lag_readings",
                "Deliverable readings the webhook has not delivered",
                lag.clone(),
            );
            lag
        });
        Metrics {
            registry,
            devices_known,
            devices_online,
            readings_stored,
            heartbeats,
            commits,
            commit_seconds,
            broker,
            webhook_lag,
        }
    }

    /// Whether the webhook lag is exported (then the scrape reads its cursor).
    pub fn has_webhook(&self) -> bool {
        self.webhook_lag.is_some()
    }

    /// Sets the gauges read at scrape time (the broker's are read here) and returns the text.
    pub fn render(&self, known: usize, online: usize, webhook_lag: Option<u64>) -> Result<String, fmt::Error> {
        let g = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.devices_known.set(g(known as u64));
        self.devices_online.set(g(online as u64));
        if let Some((view, connections, sessions)) = &self.broker {
            let c = view.counts();
            connections.set(g(c.connections as u64));
            sessions.set(g(c.sessions as u64));
        }
        if let (Some(gauge), Some(lag)) = (&self.webhook_lag, webhook_lag) {
            gauge.set(g(lag));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_series_with_the_fleet_prefix() {
        let m = Metrics::new(None, true);
        m.readings_stored.inc_by(5);
        m.commits.inc();
        m.commit_seconds.observe(0.01);
        let text = m.render(3, 2, Some(7)).unwrap_or_default();
        for line in [
            "simpul_fleet_devices_known 3",
            "simpul_fleet_devices_online 2",
            "simpul_fleet_readings_stored_total 5",
            "simpul_fleet_commits_total 1",
            "simpul_fleet_commit_seconds_count 1",
            "simpul_fleet_webhook_lag_readings 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains("broker_connections"), "no broker series without the embedded broker");
    }
}
