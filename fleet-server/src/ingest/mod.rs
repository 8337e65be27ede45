//! Ingest: subscribe, decode, commit in batches, then ack.
//!
//! Order of a message's life, which is what makes it safe:
//! 1. the broker delivers a QoS 1 publish (the fleet's session is persistent:
//!    fixed client id, clean_session = false, manual acks);
//! 2. it is decoded and queued for the next commit (every `commit_interval` or
//!    `commit_max_messages`, many devices in one transaction);
//! 3. the transaction commits (durable: `synchronous = FULL`);
//! 4. each device that sent readings gets `Ack { watermark }`, retained, QoS 1;
//! 5. only then the fleet PUBACKs the broker.
//!
//! A fleet killed before 5 leaves the publish unacknowledged in its broker session, so the
//! broker delivers it again; the (device, seq) key makes the repeat harmless.

mod decode;
pub(crate) mod mqtt;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Publish, QoS};
use simpul_protocol::control::Ack;
use simpul_protocol::{Channel, ControlMessage, Topic};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FleetConfig;
use crate::metrics::Metrics;
use crate::store::{self, CommitOutcome, Inbound, Store};

pub use decode::{Decoded, decode};
pub use mqtt::parse_broker;

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no MQTT broker configured (mqtt.broker)")]
    NoBroker,
    #[error("mqtt.broker {0:?} is not host:port")]
    BadBroker(String),
}

/// How often heartbeat history past `store.health_retention` is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A received message waiting for its commit.
struct Pending {
    publish: Publish,
    inbound: Inbound,
}

/// Starts ingest: the MQTT event loop and the committer, both on `tracker`. After each
/// commit that made readings deliverable, `delivered` is notified. The returned token is
/// cancelled once the first subscriptions are acknowledged by the broker.
pub fn spawn(
    config: &FleetConfig,
    store: Arc<dyn Store>,
    delivered: Arc<Notify>,
    metrics: Arc<Metrics>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<CancellationToken, IngestError> {
    let (client, eventloop) = mqtt::connect(&config.mqtt, tls)?;
    let (tx, rx) = mpsc::channel(4096);
    let loop_done = CancellationToken::new();
    let ready = CancellationToken::new();
    let poll = mqtt::Poll {
        client: client.clone(),
        filters: mqtt::filters(&config.mqtt),
        tx,
        shutdown: shutdown.clone(),
        ready: ready.clone(),
        done: loop_done.clone(),
    };
    tracker.spawn(poll.run(eventloop));
    let committer = Committer {
        store,
        client,
        delivered,
        interval: config.store.commit_interval,
        max_messages: config.store.commit_max_messages,
        hold: config.time.hold_unsynced,
        metrics,
        health_retention: config.store.health_retention,
    };
    tracker.spawn(committer.run(rx, shutdown, loop_done));
    Ok(ready)
}

/// Batches messages into commits, acks after each, releases held readings on time.
struct Committer {
    store: Arc<dyn Store>,
    client: AsyncClient,
    delivered: Arc<Notify>,
    interval: Duration,
    max_messages: usize,
    hold: Duration,
    metrics: Arc<Metrics>,
    health_retention: Duration,
}

impl Committer {
    async fn run(self, mut rx: mpsc::Receiver<Publish>, shutdown: CancellationToken, loop_done: CancellationToken) {
        let mut release =
            tokio::time::interval((self.hold / 10).clamp(Duration::from_millis(100), Duration::from_secs(10)));
        release.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = release.tick() => {
                    self.release_held().await;
                    if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                        pruned_at = Some(tokio::time::Instant::now());
                        self.prune_health().await;
                    }
                    continue
                }
                m = rx.recv() => match m { Some(m) => m, None => break },
            };
            let mut batch = Vec::new();
            self.take(first, &mut batch).await;
            let deadline = tokio::time::Instant::now() + self.interval;
            while batch.len() < self.max_messages {
                tokio::select! {
                    biased;
                    m = rx.recv() => match m { Some(m) => self.take(m, &mut batch).await, None => break },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = shutdown.cancelled() => break,
                }
            }
            if !batch.is_empty() && !self.commit_and_ack(batch, &shutdown).await {
                break;
            }
        }
        // Messages still queued are not acked: the broker delivers them again next session.
        if let Err(e) = self.client.disconnect().await {
            tracing::debug!(error = %e, "mqtt disconnect");
        }
        // Give the event loop a moment to send the last acks and the disconnect.
        let _ = tokio::time::timeout(Duration::from_secs(5), loop_done.cancelled()).await;
        tracing::info!("ingest stopped");
    }

    /// Queues a message for the commit, or acks at once what there is nothing to store of.
    async fn take(&self, publish: Publish, batch: &mut Vec<Pending>) {
        match decode(&publish, now_ms()) {
            Decoded::Commit(inbound) => batch.push(Pending { publish, inbound }),
            Decoded::Ignore(why) => {
                tracing::debug!(topic = %publish.topic, %why, "ignored");
                self.puback(&publish).await;
            }
        }
    }

    /// Commits (retrying while the store fails, unless stopping), then acks. Returns
    /// false if it gave up because of shutdown.
    async fn commit_and_ack(&self, batch: Vec<Pending>, shutdown: &CancellationToken) -> bool {
        let items: Arc<Vec<Inbound>> = Arc::new(batch.iter().map(|p| p.inbound.clone()).collect());
        let mut delay = Duration::from_millis(100);
        let started = tokio::time::Instant::now();
        let outcome = loop {
            let shared = Arc::clone(&items);
            match store::blocking(&self.store, move |s| s.commit(&shared, now_ms())).await {
                Ok(o) => break o,
                Err(e) => {
                    tracing::error!(error = %e, messages = items.len(), "commit failed; nothing acked, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        let commit_ms = started.elapsed().as_millis();
        self.metrics.commits.inc();
        self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.readings_stored.inc_by(outcome.stored);
        let heartbeats = items.iter().filter(|i| matches!(i, Inbound::Heartbeat { .. })).count();
        self.metrics.heartbeats.inc_by(heartbeats as u64);
        self.after_commit(&outcome, &batch).await;
        tracing::debug!(commit_ms, acked_ms = started.elapsed().as_millis(), "commit and acks");
        true
    }

    async fn after_commit(&self, outcome: &CommitOutcome, batch: &[Pending]) {
        tracing::debug!(messages = batch.len(), stored = outcome.stored, delivered = outcome.delivered, "committed");
        for (device, watermark) in &outcome.acks {
            let topic = Topic::new(device.clone(), Channel::Ack).name();
            match (Ack { watermark: *watermark }).to_json() {
                Ok(json) => {
                    if let Err(e) = self.client.publish(topic, QoS::AtLeastOnce, true, json).await {
                        tracing::warn!(%device, error = %e, "cannot publish ack");
                    }
                }
                Err(e) => tracing::error!(%device, error = %e, "cannot encode ack"),
            }
        }
        for p in batch {
            self.puback(&p.publish).await;
        }
        if outcome.delivered > 0 {
            self.delivered.notify_waiters();
        }
    }

    async fn puback(&self, publish: &Publish) {
        if let Err(e) = self.client.ack(publish).await {
            tracing::warn!(topic = %publish.topic, error = %e, "cannot ack to the broker; it will redeliver");
        }
    }

    /// Deletes heartbeat history older than `store.health_retention`.
    async fn prune_health(&self) {
        let keep = i64::try_from(self.health_retention.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(keep);
        match store::blocking(&self.store, move |s| s.prune_health(before)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(heartbeats = n, "heartbeat history past its retention pruned"),
            Err(e) => tracing::warn!(error = %e, "cannot prune heartbeat history"),
        }
    }

    async fn release_held(&self) {
        let by = now_ms().saturating_sub(i64::try_from(self.hold.as_millis()).unwrap_or(i64::MAX));
        match store::blocking(&self.store, move |s| s.release_held(by)).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(readings = n, "held unsynced readings released uncorrected (hold timed out)");
                self.delivered.notify_waiters();
            }
            Err(e) => tracing::warn!(error = %e, "cannot release held readings"),
        }
    }
}

/// The fleet's wall clock in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    ms_since_epoch(SystemTime::now())
}

/// `t` in ms since the Unix epoch (0 before it).
pub fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
