//! The PostgreSQL [`Store`]: one connection writes (ingest, hold release, control-plane
//! writes) and one reads, like the SQLite store; several fleet processes may share the
//! database (see the module docs of `store::postgres` for the locks that make that safe).

use simpul_protocol::DeviceId;

use super::{Conn, PgTarget, to_i64, to_u64};
use crate::store::config::{
    AcceptedProposal, ConfigChange, ConfigGroup, ConfigRefused, ConfigVersion, DeviceConfig, ProposalRefused,
};
use crate::store::{
    CommitOutcome, DeviceEvent, DeviceOverview, DeviceSummary, HealthPoint, Inbound, ProtocolEvent, SeriesPoints,
    Store, StoreError, StoredReading,
};

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    writer: Conn,
    reader: Conn,
    /// A heartbeat goes into the history when the device's last one there is at least this
    /// old (ms), or its failing sensors or throttling changed; 0: every heartbeat.
    history_every_ms: i64,
}

impl PgStore {
    /// Connects to the database at `target` (creating or checking the schema) with a writer
    /// and a reader connection.
    pub fn open(target: &PgTarget) -> Result<PgStore, StoreError> {
        let writer = super::connect(target)?;
        let reader = Conn::connect(target)?;
        Ok(PgStore { writer, reader, history_every_ms: 0 })
    }

    /// Samples the heartbeat history: one per device per `every`, plus each one whose
    /// failing sensors or throttling changed. `open` keeps every one.
    pub fn with_health_history_every(mut self, every: std::time::Duration) -> PgStore {
        self.history_every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        self
    }
}

impl Store for PgStore {
    fn commit(&self, items: &[Inbound], now_ms: i64) -> Result<CommitOutcome, StoreError> {
        super::commit::commit(&mut *self.writer.get()?, items, now_ms, self.history_every_ms)
    }

    fn release_held(&self, arrived_by_ms: i64) -> Result<u64, StoreError> {
        super::commit::release_held(&mut *self.writer.get()?, arrived_by_ms)
    }

    fn readings_after(&self, after: u64, limit: usize) -> Result<Vec<StoredReading>, StoreError> {
        super::read::readings_after(&mut *self.reader.get()?, after, limit)
    }

    fn device(&self, device: &DeviceId) -> Result<Option<DeviceSummary>, StoreError> {
        super::read::device(&mut *self.reader.get()?, device)
    }

    fn protocol_events(&self, limit: usize) -> Result<Vec<ProtocolEvent>, StoreError> {
        super::read::protocol_events(&mut *self.reader.get()?, limit)
    }

    fn consumer_cursor(&self, consumer: &str) -> Result<u64, StoreError> {
        super::read::consumer_cursor(&mut *self.reader.get()?, consumer)
    }

    fn set_consumer_cursor(&self, consumer: &str, cursor: u64) -> Result<(), StoreError> {
        self.writer.get()?.execute(
            "INSERT INTO consumer_cursors (name, cursor) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
            &[&consumer, &to_i64(cursor)?],
        )?;
        Ok(())
    }

    fn delivery_head(&self) -> Result<u64, StoreError> {
        let row = self.reader.get()?.query_one("SELECT last_id FROM delivery_counter WHERE one = 1", &[])?;
        to_u64(row.try_get(0)?)
    }

    fn series_minutes(&self, device: &DeviceId, since_ms: i64, until_ms: i64) -> Result<Vec<SeriesPoints>, StoreError> {
        super::series::series_minutes(&mut *self.reader.get()?, device, since_ms, until_ms)
    }

    fn devices(&self) -> Result<Vec<DeviceOverview>, StoreError> {
        super::health::devices(&mut *self.reader.get()?)
    }

    fn device_health(&self, device: &DeviceId, since_ms: i64, limit: usize) -> Result<Vec<HealthPoint>, StoreError> {
        super::health::device_health(&mut *self.reader.get()?, device, since_ms, limit)
    }

    fn device_events(&self, device: &DeviceId, limit: usize) -> Result<Vec<DeviceEvent>, StoreError> {
        super::health::device_events(&mut *self.reader.get()?, device, limit)
    }

    fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError> {
        crate::store::health::prune_in_chunks(|| super::health::prune_chunk(&mut *self.writer.get()?, before_ms))
    }

    fn set_device_config(
        &self,
        device: &DeviceId,
        toml: &str,
        change: &ConfigChange,
    ) -> Result<ConfigVersion, StoreError> {
        super::config::set_device_override(&mut *self.writer.get()?, device, toml, change)
    }

    fn set_group_defaults(
        &self,
        group: &str,
        toml: &str,
        change: &ConfigChange,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        super::config::set_group_defaults(&mut *self.writer.get()?, group, toml, change)
    }

    fn set_device_group(
        &self,
        device: &DeviceId,
        group: Option<&str>,
        change: &ConfigChange,
    ) -> Result<Result<ConfigVersion, ConfigRefused>, StoreError> {
        super::config::set_device_group(&mut *self.writer.get()?, device, group, change)
    }

    fn accept_proposal(
        &self,
        device: &DeviceId,
        event: i64,
        sensor_id: Option<&str>,
        change: &ConfigChange,
    ) -> Result<Result<AcceptedProposal, ProposalRefused>, StoreError> {
        super::proposals::accept(&mut *self.writer.get()?, device, event, sensor_id, change)
    }

    fn device_config(&self, device: &DeviceId) -> Result<Option<DeviceConfig>, StoreError> {
        super::config::device_config(&mut *self.reader.get()?, device)
    }

    fn config_history(&self, device: &DeviceId, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
        super::config::history(&mut *self.reader.get()?, device, limit)
    }

    fn config_groups(&self) -> Result<Vec<ConfigGroup>, StoreError> {
        super::config::groups(&mut *self.reader.get()?)
    }

    fn latest_desired(&self, device: Option<&DeviceId>) -> Result<Vec<ConfigVersion>, StoreError> {
        super::config::latest_desired(&mut *self.reader.get()?, device)
    }
}
