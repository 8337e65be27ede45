//! Durable storage of readings, watermarks, clock offsets and delivery cursors.
//!
//! [`Store`] is the seam a PostgreSQL implementation will plug into; [`sqlite`] is the
//! default. The trait is **blocking** and is called through `tokio::task::spawn_blocking`:
//! rusqlite is blocking, a blocking trait stays object-safe (`Arc<dyn Store>`) without
//! boxed futures, and the hot path calls it once per commit batch (every ~50 ms), so the
//! thread hop costs nothing measurable. A PostgreSQL store can use the blocking `postgres`
//! client with a small pool behind the same trait.
//!
//! [`open_stores`] (open.rs) is the one place that opens the readings store and the side
//! stores (auth, releases, rollouts, trust), and [`StoreError`] names no backend, so
//! nothing outside [`sqlite`] depends on SQLite.
//!
//! Durability rules every implementation keeps:
//! - [`Store::commit`] applies a whole batch of inbound messages in one transaction; when
//!   it returns `Ok`, everything is durable, and only then does the fleet ack anything.
//! - Readings are unique on (device, seq): a repeat is ignored, never stored twice.
//! - The watermark and the done ranges above it live in the database, not in memory.
//! - A reading becomes *deliverable* when it gets its delivery id (its cursor): at commit
//!   if its time is known, else when its boot's clock offset arrives or its hold times out.
//!   Delivery ids increase in commit order, so a reader paging by cursor never misses one.

mod commit_state;
pub mod config;
mod error;
mod health;
pub mod leader;
mod open;
pub mod postgres;
mod rows;
mod series;
pub mod sqlite;

use simpul_protocol::control::{Event, Heartbeat};
use simpul_protocol::{BootId, DeviceId, ReadingBatch};

pub use config::{
    AcceptedProposal, ConfigChange, ConfigGroup, ConfigRefused, ConfigVersion, DeviceConfig, ProposalRefused,
    ReportedState,
};
pub use error::{BackendError, StoreError};
pub use health::{Acceptance, DeviceEvent, DeviceOverview, HealthPoint, HealthSummary, event_kind};
pub use open::{SideStores, Stores, open_side_stores, open_stores, pg_target};
pub use sqlite::SqliteStore;

/// One inbound MQTT message, decoded, ready to be committed.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// A reading batch from a device.
    Readings { device: DeviceId, batch: ReadingBatch },
    /// The device's clock synchronised during `boot_id`: its unsynced readings of that
    /// boot are corrected by `offset_ms`.
    ClockSynced { device: DeviceId, boot_id: BootId, offset_ms: i64 },
    /// The device said it is online or offline (its status or last will), received at
    /// `received_ms`: a status received before the one stored does not replace it (two
    /// fleet processes may commit a box's last will and its newer "online" in either order).
    Status { device: DeviceId, online: bool, received_ms: i64 },
    /// The device's heartbeat: its latest health, kept with its history.
    Heartbeat { device: DeviceId, heartbeat: Box<Heartbeat> },
    /// An event the device reported (other than a clock sync): recorded for people.
    Event { device: DeviceId, event: Event },
    /// What the device did with its desired config (docs/design/fleet-config-distribution.md).
    ConfigReported { device: DeviceId, report: simpul_protocol::control::ReportedConfig },
    /// A payload that did not decode: recorded as a protocol event.
    Malformed { device: DeviceId, channel: &'static str, error: String, bytes: usize },
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The watermark of every device that sent readings in this commit (acked even when
    /// unchanged, so an agent that resends after a reconnect hears back).
    pub acks: Vec<(DeviceId, u64)>,
    /// Readings that became deliverable (got a cursor).
    pub delivered: u64,
    /// Readings newly stored (repeats not counted).
    pub stored: u64,
}

/// One deliverable reading, as the API and the webhook hand it on.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReading {
    /// The delivery cursor: increases in the order readings became deliverable.
    pub cursor: u64,
    pub device: String,
    pub seq: u64,
    pub sensor: String,
    pub metric: String,
    pub unit: String,
    pub value: f64,
    /// The reading's time, ms since the Unix epoch (corrected when `time_corrected`).
    pub time_ms: i64,
    /// The box's clock was synchronised when the reading was taken.
    pub synced: bool,
    /// `time_ms` is the box's wall time plus the offset its clock sync reported.
    pub time_corrected: bool,
}

/// One series of a device (what one sensor measures) with its per-minute aggregates.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SeriesPoints {
    pub sensor: String,
    pub metric: String,
    pub unit: String,
    /// Minutes that had readings, oldest first.
    pub points: Vec<MinutePoint>,
}

/// A series' readings in one minute (by the reading's time).
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MinutePoint {
    /// The minute's start, ms since the Unix epoch (UTC).
    pub minute_ms: i64,
    /// How many readings (NaN left out).
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
}

/// What the fleet knows of one device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceSummary {
    pub device: String,
    /// Every seq up to this is stored or dropped.
    pub watermark: u64,
    /// Seqs the agent reported as evicted under its quota.
    pub dropped: u64,
    /// Readings stored.
    pub readings_stored: u64,
    /// Readings stored but held until the clock offset of their boot is known.
    pub readings_held: u64,
    /// Payloads from this device that did not decode.
    pub malformed: u64,
    /// The last status it published, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
}

/// A protocol or security event: something a device sent that was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolEvent {
    pub device: String,
    pub at_ms: i64,
    pub kind: String,
    pub detail: String,
}

/// The fleet's storage. Blocking: call it through `spawn_blocking` (see the module docs).
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Applies `items` in order, in one transaction. `now_ms` is the fleet's wall clock,
    /// recorded as each reading's arrival (the hold timeout counts from it).
    fn commit(&self, items: &[Inbound], now_ms: i64) -> Result<CommitOutcome, StoreError>;

    /// Makes deliverable, uncorrected, every held reading that arrived at or before
    /// `arrived_by_ms`; returns how many.
    fn release_held(&self, arrived_by_ms: i64) -> Result<u64, StoreError>;

    /// Up to `limit` deliverable readings with a cursor above `after`, in cursor order.
    fn readings_after(&self, after: u64, limit: usize) -> Result<Vec<StoredReading>, StoreError>;

    /// A device's watermark and counts; `None` if the fleet never heard from it.
    fn device(&self, device: &DeviceId) -> Result<Option<DeviceSummary>, StoreError>;

    /// Recent protocol events, newest first.
    fn protocol_events(&self, limit: usize) -> Result<Vec<ProtocolEvent>, StoreError>;

    /// A named consumer's persisted cursor (0 if it never advanced).
    fn consumer_cursor(&self, consumer: &str) -> Result<u64, StoreError>;

    /// Persists a named consumer's cursor.
    fn set_consumer_cursor(&self, consumer: &str, cursor: u64) -> Result<(), StoreError>;

    /// The highest delivery cursor given so far (0 before the first).
    fn delivery_head(&self) -> Result<u64, StoreError>;

    /// Every series of `device` with its per-minute aggregates from `since_ms` to `until_ms`
    /// (the minutes those fall in, inclusive); empty if the device is unknown.
    fn series_minutes(&self, device: &DeviceId, since_ms: i64, until_ms: i64) -> Result<Vec<SeriesPoints>, StoreError>;

    /// Every device the fleet heard from, by name, with its latest health.
    fn devices(&self) -> Result<Vec<DeviceOverview>, StoreError>;

    /// Up to `limit` heartbeats of `device` received at or after `since_ms`, newest first.
    fn device_health(&self, device: &DeviceId, since_ms: i64, limit: usize) -> Result<Vec<HealthPoint>, StoreError>;

    /// Up to `limit` events `device` reported, newest first.
    fn device_events(&self, device: &DeviceId, limit: usize) -> Result<Vec<DeviceEvent>, StoreError>;

    /// Deletes heartbeat history received before `before_ms`; returns how many.
    fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Sets `device`'s own config override (TOML, syntax already checked) and writes its
    /// next desired version (docs/design/fleet-config-distribution.md).
    fn set_device_config(
        &self,
        device: &DeviceId,
        toml: &str,
        change: &ConfigChange,
    ) -> Result<ConfigVersion, StoreError>;

    /// Creates or replaces a group's defaults and writes the next version of each member.
    fn set_group_defaults(
        &self,
        group: &str,
        toml: &str,
        change: &ConfigChange,
    ) -> Result<Vec<ConfigVersion>, StoreError>;

    /// Puts `device` in `group` (`None`: in no group) and writes its next version.
    fn set_device_group(
        &self,
        device: &DeviceId,
        group: Option<&str>,
        change: &ConfigChange,
    ) -> Result<Result<ConfigVersion, ConfigRefused>, StoreError>;

    /// `device`'s group, override, latest desired version and reported state.
    fn device_config(&self, device: &DeviceId) -> Result<Option<DeviceConfig>, StoreError>;

    /// Up to `limit` desired versions of `device`, newest first.
    fn config_history(&self, device: &DeviceId, limit: usize) -> Result<Vec<ConfigVersion>, StoreError>;

    /// Accepts sensor proposal `event` of `device` into its override (under `sensor_id`
    /// when given) and writes its next desired version, recording who accepted it.
    fn accept_proposal(
        &self,
        device: &DeviceId,
        event: i64,
        sensor_id: Option<&str>,
        change: &ConfigChange,
    ) -> Result<Result<AcceptedProposal, ProposalRefused>, StoreError>;

    /// Every config group with its devices.
    fn config_groups(&self) -> Result<Vec<ConfigGroup>, StoreError>;

    /// The latest desired version of `device`, or of every device that has one (`None`).
    fn latest_desired(&self, device: Option<&DeviceId>) -> Result<Vec<ConfigVersion>, StoreError>;
}

/// Runs a blocking call on a store (the readings store, or a side store: auth, trust,
/// releases, rollouts) on the blocking pool.
pub async fn blocking<S, T, F>(store: &std::sync::Arc<S>, f: F) -> Result<T, StoreError>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
{
    let store = std::sync::Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref())).await.map_err(|e| StoreError::Task(e.to_string()))?
}
