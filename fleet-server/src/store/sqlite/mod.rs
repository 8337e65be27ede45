//! The SQLite [`Store`]: WAL mode, `synchronous = FULL`.
//!
//! FULL, not NORMAL: an ack tells the agent it may delete the readings, so a commit must
//! survive a power cut, not only a crash of the process; in WAL mode NORMAL may lose the
//! last transactions on power loss. Commits are batched (one per ~50 ms at most), so the
//! extra fsync per commit is cheap.
//!
//! One connection writes and one reads (WAL lets the API read while ingest writes).

mod auth;
mod checkpoint;
mod commit;
mod config;
mod error;
mod health;
mod proposals;
mod read;
mod releases;
mod rollouts;
mod schema;
mod series;
mod trust;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};
use simpul_protocol::DeviceId;

use super::config::{
    AcceptedProposal, ConfigChange, ConfigGroup, ConfigRefused, ConfigVersion, DeviceConfig, ProposalRefused,
};
use super::{
    CommitOutcome, DeviceEvent, DeviceOverview, DeviceSummary, HealthPoint, Inbound, ProtocolEvent, SeriesPoints,
    Store, StoreError, StoredReading,
};

pub use auth::SqliteAuthStore;
pub use releases::SqliteReleaseStore;
pub use rollouts::SqliteRolloutStore;
pub use trust::SqliteTrustStore;

/// How often the WAL is checkpointed into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    _checkpointer: checkpoint::Checkpointer,
    /// A heartbeat goes into the history when the device's last one there is at least this
    /// old (ms), or its failing sensors or throttling changed; 0: every heartbeat.
    history_every_ms: i64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its parent folder.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        }
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // Checkpoints run on their own thread (checkpoint.rs), not inside a commit.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        schema::upgrade(&mut writer, &path.display().to_string())?;
        let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        configure(&reader)?;
        let checkpointer = checkpoint::Checkpointer::start(path, CHECKPOINT_EVERY).map_err(StoreError::Checkpointer)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            _checkpointer: checkpointer,
            history_every_ms: 0,
        })
    }

    /// Samples the heartbeat history: one per device per `every` (`store.health_history_every`),
    /// plus each one whose failing sensors or throttling changed. `open` keeps every one.
    pub fn with_health_history_every(mut self, every: std::time::Duration) -> SqliteStore {
        self.history_every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        self
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock rolled its transaction back; the connection is fine.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection of its own to the database at `path` (its folder and schema made if
/// needed), for the tables the API and the offline CLI use apart from ingest.
fn open_side(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
    }
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    schema::upgrade(&mut conn, &path.display().to_string())?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store for SqliteStore {
    fn commit(&self, items: &[Inbound], now_ms: i64) -> Result<CommitOutcome, StoreError> {
        let mut conn = self.writer();
        commit::commit(&mut conn, items, now_ms, self.history_every_ms)
    }

    fn release_held(&self, arrived_by_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer();
        commit::release_held(&mut conn, arrived_by_ms)
    }

    fn readings_after(&self, after: u64, limit: usize) -> Result<Vec<StoredReading>, StoreError> {
        read::readings_after(&self.reader(), after, limit)
    }

    fn device(&self, device: &DeviceId) -> Result<Option<DeviceSummary>, StoreError> {
        read::device(&self.reader(), device)
    }

    fn protocol_events(&self, limit: usize) -> Result<Vec<ProtocolEvent>, StoreError> {
        read::protocol_events(&self.reader(), limit)
    }

    fn consumer_cursor(&self, consumer: &str) -> Result<u64, StoreError> {
        read::consumer_cursor(&self.reader(), consumer)
    }

    fn set_consumer_cursor(&self, consumer: &str, cursor: u64) -> Result<(), StoreError> {
        let conn = self.writer();
        conn.execute(
            "INSERT INTO consumer_cursors (name, cursor) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET cursor = excluded.cursor",
            rusqlite::params![consumer, to_i64(cursor)?],
        )?;
        Ok(())
    }

    fn delivery_head(&self) -> Result<u64, StoreError> {
        let last: i64 =
            self.reader().query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
        to_u64(last)
    }

    fn series_minutes(&self, device: &DeviceId, since_ms: i64, until_ms: i64) -> Result<Vec<SeriesPoints>, StoreError> {
        series::series_minutes(&self.reader(), device, since_ms, until_ms)
    }

    fn devices(&self) -> Result<Vec<DeviceOverview>, StoreError> {
        health::devices(&self.reader())
    }

    fn device_health(&self, device: &DeviceId, since_ms: i64, limit: usize) -> Result<Vec<HealthPoint>, StoreError> {
        health::device_health(&self.reader(), device, since_ms, limit)
    }

    fn device_events(&self, device: &DeviceId, limit: usize) -> Result<Vec<DeviceEvent>, StoreError> {
        health::device_events(&self.reader(), device, limit)
    }

    fn prune_health(&self, before_ms: i64) -> Result<u64, StoreError> {
        // Taking the writer for each chunk.
        super::health::prune_in_chunks(|| health::prune_chunk(&self.writer(), before_ms))
    }

    fn set_device_config(
        &self,
        device: &DeviceId,
        toml: &str,
        change: &ConfigChange,
    ) -> Result<ConfigVersion, StoreError> {
        config::set_device_override(&mut self.writer(), device, toml, change)
    }

    fn set_group_defaults(
        &self,
        group: &str,
        toml: &str,
        change: &ConfigChange,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        config::set_group_defaults(&mut self.writer(), group, toml, change)
    }

    fn set_device_group(
        &self,
        device: &DeviceId,
        group: Option<&str>,
        change: &ConfigChange,
    ) -> Result<Result<ConfigVersion, ConfigRefused>, StoreError> {
        config::set_device_group(&mut self.writer(), device, group, change)
    }

    fn accept_proposal(
        &self,
        device: &DeviceId,
        event: i64,
        sensor_id: Option<&str>,
        change: &ConfigChange,
    ) -> Result<Result<AcceptedProposal, ProposalRefused>, StoreError> {
        proposals::accept(&mut self.writer(), device, event, sensor_id, change)
    }

    fn device_config(&self, device: &DeviceId) -> Result<Option<DeviceConfig>, StoreError> {
        config::device_config(&self.reader(), device)
    }

    fn config_history(&self, device: &DeviceId, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
        config::history(&self.reader(), device, limit)
    }

    fn config_groups(&self) -> Result<Vec<ConfigGroup>, StoreError> {
        config::groups(&self.reader())
    }

    fn latest_desired(&self, device: Option<&DeviceId>) -> Result<Vec<ConfigVersion>, StoreError> {
        config::latest_desired(&self.reader(), device)
    }
}

/// A u64 as SQLite's i64, refusing what does not fit.
pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} does not fit a 64-bit signed integer")))
}

/// An i64 from SQLite as a u64, refusing negatives.
pub(crate) fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v} where a count or seq belongs")))
}
