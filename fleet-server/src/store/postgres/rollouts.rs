//! The rollout tables in PostgreSQL. Every change (a start, a step of the engine, a
//! control) is one transaction under [`super::LOCK_CONTROL`] that reads the rollout,
//! decides ([`crate::rollouts::txn`]) and writes the rollout, its devices and their desired
//! releases together, so fleet processes stepping the same rollout take turns; the
//! `rollouts_one_active` index is a second guard behind the one-active check.

use std::time::Duration;

use postgres::Transaction;
use simpul_protocol::DeviceId;

use super::releases::upsert_device_release;
use super::{Conn, PgTarget, control_tx};
use crate::rollouts::txn::{self, DeviceRow, HealthRow, RolloutRow, RolloutTx};
use crate::rollouts::{
    Changed, Control, ControlRefused, Rollout, RolloutDevice, RolloutSpec, RolloutStore, StartRefused, WaveProgress,
};
use crate::store::StoreError;

/// Rollouts in the fleet's PostgreSQL database.
#[derive(Debug)]
pub struct PgRolloutStore {
    conn: Conn,
}

impl PgRolloutStore {
    /// Connects to `target` (creating the schema if needed).
    pub fn open(target: &PgTarget) -> Result<PgRolloutStore, StoreError> {
        Ok(PgRolloutStore { conn: super::connect(target)? })
    }
}

/// The queries of a rollout transaction in PostgreSQL's SQL.
struct Pg<'a, 'b>(&'a mut Transaction<'b>);

impl RolloutTx for Pg<'_, '_> {
    fn rollout_row(&mut self, id: i64) -> Result<Option<RolloutRow>, StoreError> {
        let row = self.0.query_opt(
            "SELECT spec, state, reason, wave, accepted_failures, created_ms, created_by, updated_ms
             FROM rollouts WHERE id = $1",
            &[&id],
        )?;
        row.map(|r| {
            Ok(RolloutRow {
                spec: r.try_get(0)?,
                state: r.try_get(1)?,
                reason: r.try_get(2)?,
                wave: r.try_get(3)?,
                accepted_failures: r.try_get(4)?,
                created_ms: r.try_get(5)?,
                created_by: r.try_get(6)?,
                updated_ms: r.try_get(7)?,
            })
        })
        .transpose()
    }

    fn device_rows(&mut self, id: i64) -> Result<Vec<DeviceRow>, StoreError> {
        let rows = self.0.query(
            "SELECT device, position, wave, state, since_ms, ordered_ms, detail FROM rollout_devices
             WHERE rollout = $1 ORDER BY position",
            &[&id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DeviceRow {
                    device: r.try_get(0)?,
                    position: r.try_get(1)?,
                    wave: r.try_get(2)?,
                    state: r.try_get(3)?,
                    since_ms: r.try_get(4)?,
                    ordered_ms: r.try_get(5)?,
                    detail: r.try_get(6)?,
                })
            })
            .collect()
    }

    fn rollout_ids(&mut self) -> Result<Vec<i64>, StoreError> {
        let rows = self.0.query("SELECT id FROM rollouts ORDER BY id DESC", &[])?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    fn active_ids(&mut self) -> Result<Vec<i64>, StoreError> {
        let rows = self.0.query("SELECT id FROM rollouts WHERE state IN ('running', 'paused') ORDER BY id", &[])?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    fn health(&mut self, device: &str) -> Result<Option<HealthRow>, StoreError> {
        let row = self.0.query_opt(
            "SELECT h.version, h.received_at_ms, d.online FROM devices d
             LEFT JOIN device_health h ON h.device_id = d.id WHERE d.name = $1",
            &[&device],
        )?;
        row.map(|r| Ok(HealthRow { version: r.try_get(0)?, received_at_ms: r.try_get(1)?, online: r.try_get(2)? }))
            .transpose()
    }

    fn verdict(&mut self, device: &str, version: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        // The detail is read as JSON only for the two kinds (the CASE keeps that order), as
        // SQLite's json_extract does after the kind test.
        let row = self.0.query_opt(
            "SELECT e.kind, e.detail::jsonb ->> 'reason' FROM device_events e JOIN devices d ON d.id = e.device_id
             WHERE d.name = $1 AND e.kind IN ('update_rolled_back', 'update_refused')
               AND CASE WHEN e.kind IN ('update_rolled_back', 'update_refused')
                        THEN (e.detail::jsonb ->> 'version') = $2 ELSE false END
             ORDER BY e.id DESC LIMIT 1",
            &[&device, &version],
        )?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    fn release_published(&mut self, version: &str) -> Result<bool, StoreError> {
        let row = self.0.query_one("SELECT EXISTS (SELECT 1 FROM releases WHERE version = $1)", &[&version])?;
        Ok(row.try_get(0)?)
    }

    fn group_exists(&mut self, group: &str) -> Result<bool, StoreError> {
        let row = self.0.query_one("SELECT EXISTS (SELECT 1 FROM config_groups WHERE name = $1)", &[&group])?;
        Ok(row.try_get(0)?)
    }

    fn target_names(&mut self, group: Option<&str>) -> Result<Vec<String>, StoreError> {
        let rows = self.0.query(
            "SELECT d.name FROM devices d JOIN device_health h ON h.device_id = d.id
             LEFT JOIN device_config c ON c.device_id = d.id
             WHERE ($1::TEXT IS NULL OR c.group_name = $1)
               AND NOT (EXISTS (SELECT 1 FROM device_certs x WHERE x.device = d.name AND x.revoked_ms IS NOT NULL)
                        AND NOT EXISTS (SELECT 1 FROM device_certs y WHERE y.device = d.name AND y.revoked_ms IS NULL))",
            &[&group],
        )?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    fn insert_rollout(&mut self, spec_json: &str, at_ms: i64, by: &str) -> Result<i64, StoreError> {
        let row = self.0.query_one(
            "INSERT INTO rollouts (spec, state, created_ms, created_by, updated_ms) VALUES ($1, 'running', $2, $3, $2)
             RETURNING id",
            &[&spec_json, &at_ms, &by],
        )?;
        Ok(row.try_get(0)?)
    }

    fn insert_device(
        &mut self,
        rollout: i64,
        device: &str,
        position: i64,
        wave: i64,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO rollout_devices (rollout, device, position, wave, state, since_ms)
             VALUES ($1, $2, $3, $4, 'pending', $5)",
            &[&rollout, &device, &position, &wave, &at_ms],
        )?;
        Ok(())
    }

    fn update_rollout(&mut self, r: &Rollout) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE rollouts SET state = $2, reason = $3, wave = $4, accepted_failures = $5, updated_ms = $6
             WHERE id = $1",
            &[
                &txn::int(r.id),
                &r.state.as_str(),
                &r.reason,
                &i64::from(r.wave),
                &i64::from(r.accepted_failures),
                &r.updated_ms,
            ],
        )?;
        Ok(())
    }

    fn update_device(&mut self, rollout: i64, d: &RolloutDevice) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE rollout_devices SET state = $3, since_ms = $4, ordered_ms = $5, detail = $6
             WHERE rollout = $1 AND device = $2",
            &[&rollout, &d.device.as_str(), &d.state.as_str(), &d.since_ms, &d.ordered_ms, &d.detail],
        )?;
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
        let n =
            self.0.execute("DELETE FROM device_releases WHERE device = $1 AND rollout = $2", &[&device, &rollout])?;
        Ok(n > 0)
    }
}

/// A read-only transaction that sees one snapshot throughout (a rollout and its devices
/// as of one moment, as SQLite's reader sees them).
fn snapshot(client: &mut postgres::Client) -> Result<Transaction<'_>, StoreError> {
    let tx = client.build_transaction().read_only(true).isolation_level(postgres::IsolationLevel::RepeatableRead);
    Ok(tx.start()?)
}

impl RolloutStore for PgRolloutStore {
    fn start(&self, spec: &RolloutSpec, at_ms: i64, by: &str) -> Result<Result<Changed, StartRefused>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let started = txn::start(&mut Pg(&mut tx), spec, at_ms, by)?;
        if started.is_ok() {
            tx.commit()?;
        }
        Ok(started)
    }

    fn rollouts(&self) -> Result<Vec<(Rollout, Vec<WaveProgress>)>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = snapshot(&mut client)?;
        let list = txn::list(&mut Pg(&mut tx))?;
        tx.commit()?;
        Ok(list)
    }

    fn rollout(&self, id: u64) -> Result<Option<(Rollout, Vec<RolloutDevice>)>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = snapshot(&mut client)?;
        let found = txn::get(&mut Pg(&mut tx), id)?;
        tx.commit()?;
        Ok(found)
    }

    fn active(&self) -> Result<Vec<u64>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = snapshot(&mut client)?;
        let ids = txn::active(&mut Pg(&mut tx))?;
        tx.commit()?;
        Ok(ids)
    }

    fn advance(&self, id: u64, now_ms: i64, offline_after: Duration) -> Result<Vec<DeviceId>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let changed = txn::advance(&mut Pg(&mut tx), id, now_ms, offline_after)?;
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
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let changed = txn::control(&mut Pg(&mut tx), id, control, at_ms, by)?;
        if changed.is_ok() {
            tx.commit()?;
        }
        Ok(changed)
    }
}
