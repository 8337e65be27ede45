//! Ingest against a real Mosquitto: store once, ack the contiguous watermark after the
//! commit, count drops and malformed payloads, survive a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Agent, Fleet, Mosquitto, Setup, batch, fleet_config, read_all, reading};
use simpul_fleet::protocol::{Channel, DeviceId, ReadingBatch, SeqRange};
use simpul_fleet::store::{
    AcceptedProposal, ConfigChange, ConfigGroup, ConfigRefused, ConfigVersion, DeviceConfig, ProposalRefused,
};
use simpul_fleet::store::{
    CommitOutcome, DeviceEvent, DeviceOverview, DeviceSummary, HealthPoint, Inbound, ProtocolEvent, SqliteStore, Store,
    StoreError, StoredReading,
};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_once_and_acked_with_the_contiguous_watermark_after_commit() {
    let s = Setup::start(|_| {}).await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-a").await;

    agent.publish(&batch(1..=5)).await;
    agent.wait_ack(5).await;
    // The ack came after the commit: the store already holds all five.
    let running = fleet.running.as_ref().unwrap();
    let d = running.store.device(&DeviceId::new("kel-a").unwrap()).unwrap().unwrap();
    assert_eq!((d.watermark, d.readings_stored, d.dropped), (5, 5, 0));

    agent.publish(&batch(1..=5)).await;
    agent.wait_ack(5).await;
    let d = fleet.get_json("/api/v1/devices/kel-a").await;
    assert_eq!(d["readings_stored"], 5, "a resent batch is stored once: {d}");
    assert_eq!(d["watermark"], 5);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_batches_are_stored_once_and_the_watermark_waits_for_gaps() {
    let s = Setup::start(|_| {}).await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-b").await;

    // The live lane runs ahead of the backlog lane.
    agent.publish(&batch(6..=8)).await;
    agent.wait_ack(0).await;
    agent.publish(&batch(1..=3)).await;
    agent.wait_ack(3).await;
    agent.publish(&batch([2, 3, 4, 7])).await;
    agent.wait_ack(4).await;
    agent.publish(&batch([5])).await;
    agent.wait_ack(8).await;

    let d = fleet.get_json("/api/v1/devices/kel-b").await;
    assert_eq!((d["watermark"].as_u64(), d["readings_stored"].as_u64()), (Some(8), Some(8)), "{d}");
    let (all, _) = read_all(fleet, "", 100).await;
    let mut seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_ranges_advance_the_watermark_and_are_counted() {
    let s = Setup::start(|_| {}).await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-c").await;

    let b = ReadingBatch {
        readings: vec![reading(1), reading(2), reading(9)],
        dropped: vec![SeqRange { first: 3, last: 6 }],
    };
    agent.publish(&b).await;
    agent.wait_ack(6).await;
    // The same drop reported again (a resend) is not counted twice.
    let b = ReadingBatch { readings: vec![reading(8)], dropped: vec![SeqRange { first: 3, last: 7 }] };
    agent.publish(&b).await;
    agent.wait_ack(9).await;

    let d = fleet.get_json("/api/v1/devices/kel-c").await;
    assert_eq!(d["dropped"], 5, "{d}");
    assert_eq!(d["readings_stored"], 4, "{d}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_is_counted_and_recorded_and_ingest_goes_on() {
    let s = Setup::start(|_| {}).await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-d").await;

    agent.publish_raw(Channel::Readings, vec![1, 0, 0xff, 0xff, 0xff]).await;
    agent.publish_raw(Channel::Readings, Vec::new()).await;
    agent.publish_raw(Channel::Events, b"{not json".to_vec()).await;
    agent.publish(&batch(1..=2)).await;
    agent.wait_ack(2).await;

    let d = fleet.get_json("/api/v1/devices/kel-d").await;
    assert_eq!(d["malformed"], 3, "{d}");
    let events = fleet.running.as_ref().unwrap().store.protocol_events(10).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.device == "kel-d" && e.kind == "malformed_payload"), "{events:?}");
    assert!(events.iter().any(|e| e.detail.starts_with("events: ")), "{events:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_restart_keeps_watermarks_and_cursor() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let dir = tempfile::tempdir().unwrap();
    let config = fleet_config(broker.port(), dir.path());

    let fleet = Fleet::start(config.clone()).await;
    let mut agent = Agent::connect(broker.port(), "kel-e").await;
    agent.publish(&batch([1, 2, 4])).await;
    agent.wait_ack(2).await;
    let (before, cursor) = read_all(&fleet, "", 2).await;
    assert_eq!(before.len(), 3);
    fleet.stop().await;

    let fleet = Fleet::start(config).await;
    // The gap at 3 is remembered in the database: filling it jumps to 4.
    agent.publish(&batch([3])).await;
    agent.wait_ack(4).await;
    let (after, _) = read_all(&fleet, &cursor, 2).await;
    assert_eq!(after.len(), 1, "only the new reading is after the old cursor: {after:?}");
    assert_eq!(after[0]["seq"], 3);
    let (again, _) = read_all(&fleet, "", 2).await;
    assert_eq!(&again[..3], &before[..], "delivered readings and their cursors did not change");
    fleet.stop().await;
}

/// A store whose commits fail, as a full or broken disk would.
#[derive(Debug)]
struct FailingStore {
    inner: SqliteStore,
    tried: Arc<Notify>,
}

impl Store for FailingStore {
    fn commit(&self, _: &[Inbound], _: i64) -> Result<CommitOutcome, StoreError> {
        self.tried.notify_one();
        Err(StoreError::Corrupt("the disk is on fire".to_owned()))
    }
    fn release_held(&self, by: i64) -> Result<u64, StoreError> {
        self.inner.release_held(by)
    }
    fn readings_after(&self, after: u64, limit: usize) -> Result<Vec<StoredReading>, StoreError> {
        self.inner.readings_after(after, limit)
    }
    fn device(&self, d: &DeviceId) -> Result<Option<DeviceSummary>, StoreError> {
        self.inner.device(d)
    }
    fn protocol_events(&self, limit: usize) -> Result<Vec<ProtocolEvent>, StoreError> {
        self.inner.protocol_events(limit)
    }
    fn consumer_cursor(&self, c: &str) -> Result<u64, StoreError> {
        self.inner.consumer_cursor(c)
    }
    fn set_consumer_cursor(&self, c: &str, v: u64) -> Result<(), StoreError> {
        self.inner.set_consumer_cursor(c, v)
    }
    fn delivery_head(&self) -> Result<u64, StoreError> {
        self.inner.delivery_head()
    }
    fn devices(&self) -> Result<Vec<DeviceOverview>, StoreError> {
        self.inner.devices()
    }
    fn series_minutes(
        &self,
        d: &DeviceId,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<simpul_fleet::store::SeriesPoints>, StoreError> {
        self.inner.series_minutes(d, since_ms, until_ms)
    }
    fn device_health(&self, d: &DeviceId, since_ms: i64, limit: usize) -> Result<Vec<HealthPoint>, StoreError> {
        self.inner.device_health(d, since_ms, limit)
    }
    fn device_events(&self, d: &DeviceId, limit: usize) -> Result<Vec<DeviceEvent>, StoreError> {
        self.inner.device_events(d, limit)
    }
    fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.inner.prune_health(before_ms)
    }
    fn set_device_config(&self, d: &DeviceId, toml: &str, c: &ConfigChange) -> Result<ConfigVersion, StoreError> {
        self.inner.set_device_config(d, toml, c)
    }
    fn set_group_defaults(&self, g: &str, toml: &str, c: &ConfigChange) -> Result<Vec<ConfigVersion>, StoreError> {
        self.inner.set_group_defaults(g, toml, c)
    }
    fn set_device_group(
        &self,
        d: &DeviceId,
        g: Option<&str>,
        c: &ConfigChange,
    ) -> Result<Result<ConfigVersion, ConfigRefused>, StoreError> {
        self.inner.set_device_group(d, g, c)
    }
    fn accept_proposal(
        &self,
        d: &DeviceId,
        e: i64,
        id: Option<&str>,
        c: &ConfigChange,
    ) -> Result<Result<AcceptedProposal, ProposalRefused>, StoreError> {
        self.inner.accept_proposal(d, e, id, c)
    }
    fn device_config(&self, d: &DeviceId) -> Result<Option<DeviceConfig>, StoreError> {
        self.inner.device_config(d)
    }
    fn config_history(&self, d: &DeviceId, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
        self.inner.config_history(d, limit)
    }
    fn config_groups(&self) -> Result<Vec<ConfigGroup>, StoreError> {
        self.inner.config_groups()
    }
    fn latest_desired(&self, d: Option<&DeviceId>) -> Result<Vec<ConfigVersion>, StoreError> {
        self.inner.latest_desired(d)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_fleet_could_not_commit_is_not_acked_and_the_broker_redelivers_it_after_a_restart() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let dir = tempfile::tempdir().unwrap();
    let config = fleet_config(broker.port(), dir.path());
    let tried = Arc::new(Notify::new());
    let failing = FailingStore { inner: SqliteStore::open(&config.store.path).unwrap(), tried: Arc::clone(&tried) };
    let fleet = Fleet::start_with(config.clone(), Arc::new(failing)).await;
    let mut agent = Agent::connect(broker.port(), "kel-k").await;

    agent.publish(&batch(1..=3)).await;
    tokio::time::timeout(common::WAIT, tried.notified()).await.expect("a commit was tried");
    fleet.stop().await;
    assert_eq!(agent.last_ack, 0, "nothing acked without a commit");

    // Same client id, persistent session: the broker delivers the unacked batch again.
    let fleet = Fleet::start(config).await;
    agent.wait_ack(3).await;
    let d = fleet.get_json("/api/v1/devices/kel-k").await;
    assert_eq!(d["readings_stored"], 3, "{d}");
    fleet.stop().await;
}
