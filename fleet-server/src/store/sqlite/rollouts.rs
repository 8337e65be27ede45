//! The rollout tables on their own connection to the fleet database. Every change (a
//! start, a step of the engine, a control) is one `BEGIN IMMEDIATE` transaction that
//! reads the rollout, decides, and writes the rollout, its devices and their desired
//! releases together, so two fleet servers stepping the same rollout take turns. The
//! deciding is [`crate::rollouts::txn`]'s; this file answers its queries.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use simpul_protocol::DeviceId;

use super::releases::upsert_device_release;
use crate::rollouts::txn::{self, DeviceRow, HealthRow, RolloutRow, RolloutTx};
use crate::rollouts::{
    Changed, Control, ControlRefused, Rollout, RolloutDevice, RolloutSpec, RolloutStore, StartRefused, WaveProgress,
};
use crate::store::StoreError;

/// Rollouts in the fleet's SQLite database.
#[derive(Debug)]
pub struct SqliteRolloutStore {
    conn: Mutex<Connection>,
}

impl SqliteRolloutStore {
    /// Opens the database at `path` (creating it and its schema if needed).
    pub fn open(path: &Path) -> Result<SqliteRolloutStore, StoreError> {
        Ok(SqliteRolloutStore { conn: Mutex::new(super::open_side(path)?) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queries of a rollout transaction on a connection (or a transaction, through deref).
struct Sql<'a>(&'a Connection);

impl RolloutTx for Sql<'_> {
    fn rollout_row(&mut self, id: i64) -> Result<Option<RolloutRow>, StoreError> {
        let row = self
            .0
            .query_row(
                "SELECT spec, state, reason, wave, accepted_failures, created_ms, created_by, updated_ms
                 FROM rollouts WHERE id = ?1",
                [id],
                |r| {
                    Ok(RolloutRow {
                        spec: r.get(0)?,
                        state: r.get(1)?,
                        reason: r.get(2)?,
                        wave: r.get(3)?,
                        accepted_failures: r.get(4)?,
                        created_ms: r.get(5)?,
                        created_by: r.get(6)?,
                        updated_ms: r.get(7)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    fn device_rows(&mut self, id: i64) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT device, position, wave, state, since_ms, ordered_ms, detail FROM rollout_devices
             WHERE rollout = ?1 ORDER BY position",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(DeviceRow {
                    device: r.get(0)?,
                    position: r.get(1)?,
                    wave: r.get(2)?,
                    state: r.get(3)?,
                    since_ms: r.get(4)?,
                    ordered_ms: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn rollout_ids(&mut self) -> Result<Vec<i64>, StoreError> {
        let ids = self
            .0
            .prepare("SELECT id FROM rollouts ORDER BY id DESC")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn active_ids(&mut self) -> Result<Vec<i64>, StoreError> {
        let ids = self
            .0
            .prepare_cached("SELECT id FROM rollouts WHERE state IN ('running', 'paused') ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn health(&mut self, device: &str) -> Result<Option<HealthRow>, StoreError> {
        let row = self
            .0
            .prepare_cached(
                "SELECT h.version, h.received_at_ms, d.online FROM devices d
                 LEFT JOIN device_health h ON h.device_id = d.id WHERE d.name = ?1",
            )?
            .query_row([device], |r| Ok(HealthRow { version: r.get(0)?, received_at_ms: r.get(1)?, online: r.get(2)? }))
            .optional()?;
        Ok(row)
    }

    fn verdict(&mut self, device: &str, version: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = self
            .0
            .prepare_cached(
                "SELECT e.kind, json_extract(e.detail, '$.reason') FROM device_events e
                 JOIN devices d ON d.id = e.device_id
                 WHERE d.name = ?1 AND e.kind IN ('update_rolled_back', 'update_refused')
                   AND json_extract(e.detail, '$.version') = ?2
                 ORDER BY e.id DESC LIMIT 1",
            )?
            .query_row(params![device, version], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row)
    }

    fn release_published(&mut self, version: &str) -> Result<bool, StoreError> {
        let n: i64 = self.0.query_row("SELECT COUNT(*) FROM releases WHERE version = ?1", [version], |r| r.get(0))?;
        Ok(n > 0)
    }

    fn group_exists(&mut self, group: &str) -> Result<bool, StoreError> {
        let n: i64 = self.0.query_row("SELECT COUNT(*) FROM config_groups WHERE name = ?1", [group], |r| r.get(0))?;
        Ok(n > 0)
    }

    fn target_names(&mut self, group: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.0.prepare(
            "SELECT d.name FROM devices d JOIN device_health h ON h.device_id = d.id
             LEFT JOIN device_config c ON c.device_id = d.id
             WHERE (?1 IS NULL OR c.group_name = ?1)
               AND NOT (EXISTS (SELECT 1 FROM device_certs x WHERE x.device = d.name AND x.revoked_ms IS NOT NULL)
                        AND NOT EXISTS (SELECT 1 FROM device_certs y WHERE y.device = d.name AND y.revoked_ms IS NULL))",
        )?;
        let names = stmt.query_map([group], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(names)
    }

    fn insert_rollout(&mut self, spec_json: &str, at_ms: i64, by: &str) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO rollouts (spec, state, created_ms, created_by, updated_ms) VALUES (?1, 'running', ?2, ?3, ?2)",
            params![spec_json, at_ms, by],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn insert_device(
        &mut self,
        rollout: i64,
        device: &str,
        position: i64,
        wave: i64,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO rollout_devices (rollout, device, position, wave, state, since_ms)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?
            .execute(params![rollout, device, position, wave, at_ms])?;
        Ok(())
    }

    fn update_rollout(&mut self, r: &Rollout) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE rollouts SET state = ?2, reason = ?3, wave = ?4, accepted_failures = ?5, updated_ms = ?6
                 WHERE id = ?1",
            )?
            .execute(params![txn::int(r.id), r.state.as_str(), r.reason, r.wave, r.accepted_failures, r.updated_ms])?;
        Ok(())
    }

    fn update_device(&mut self, rollout: i64, d: &RolloutDevice) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE rollout_devices SET state = ?3, since_ms = ?4, ordered_ms = ?5, detail = ?6
                 WHERE rollout = ?1 AND device = ?2",
            )?
            .execute(params![rollout, d.device.as_str(), d.state.as_str(), d.since_ms, d.ordered_ms, d.detail])?;
        Ok(())
    }

    fn set_device_release(
        &mut self,
        device: &str,
        version: &str,
        rollout: i64,
        at_ms: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        upsert_device_release(self.0, device, version, Some(rollout), at_ms, by)
    }

    fn withdraw_release(&mut self, device: &str, rollout: i64) -> Result<bool, StoreError> {
        let n = self
            .0
            .prepare_cached("DELETE FROM device_releases WHERE device = ?1 AND rollout = ?2")?
            .execute(params![device, rollout])?;
        Ok(n > 0)
    }
}

impl RolloutStore for SqliteRolloutStore {
    fn start(&self, spec: &RolloutSpec, at_ms: i64, by: &str) -> Result<Result<Changed, StartRefused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let started = txn::start(&mut Sql(&tx), spec, at_ms, by)?;
        if started.is_ok() {
            tx.commit()?;
        }
        Ok(started)
    }

    fn rollouts(&self) -> Result<Vec<(Rollout, Vec<WaveProgress>)>, StoreError> {
        txn::list(&mut Sql(&self.conn()))
    }

    fn rollout(&self, id: u64) -> Result<Option<(Rollout, Vec<RolloutDevice>)>, StoreError> {
        txn::get(&mut Sql(&self.conn()), id)
    }

    fn active(&self) -> Result<Vec<u64>, StoreError> {
        txn::active(&mut Sql(&self.conn()))
    }

    fn advance(&self, id: u64, now_ms: i64, offline_after: Duration) -> Result<Vec<DeviceId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = txn::advance(&mut Sql(&tx), id, now_ms, offline_after)?;
        tx.commit()?;
        Ok(changed.map(|c| c.devices).unwrap_or_default())
    }

    fn control(
        &self,
        id: u64,
        control: Control,
        at_ms: i64,
        by: &str,
    ) -> Result<Result<Changed, ControlRefused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = txn::control(&mut Sql(&tx), id, control, at_ms, by)?;
        if changed.is_ok() {
            tx.commit()?;
        }
        Ok(changed)
    }
}
