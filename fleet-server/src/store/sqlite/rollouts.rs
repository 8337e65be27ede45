//! The rollout tables on their own connection to the fleet database. Every change (a
//! start, a step of the engine, a control) is one `BEGIN IMMEDIATE` transaction that
//! reads the rollout, decides, and writes the rollout, its devices and their desired
//! releases together, so two fleet servers stepping the same rollout take turns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use simpul_protocol::DeviceId;

use super::releases::upsert_device_release;
use crate::health::online::is_online;
use crate::rollouts::store::{Changed, transition};
use crate::rollouts::{
    Control, ControlRefused, DeviceState, Observed, Rollout, RolloutDevice, RolloutSpec, RolloutState, RolloutStore,
    StartRefused, WaveProgress, engine, plan,
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

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u32 {
    u32::try_from(n).unwrap_or_default()
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

fn load_rollout(conn: &Connection, id: u64) -> Result<Option<Rollout>, StoreError> {
    let row = conn
        .query_row(
            "SELECT spec, state, reason, wave, accepted_failures, created_ms, created_by, updated_ms
             FROM rollouts WHERE id = ?1",
            [int(id)],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((spec, state, reason, wave, accepted, created_ms, created_by, updated_ms)) = row else {
        return Ok(None);
    };
    let spec: RolloutSpec = serde_json::from_str(&spec).map_err(|e| corrupt(format!("rollout {id}: its spec: {e}")))?;
    let state = RolloutState::parse(&state).ok_or_else(|| corrupt(format!("rollout {id}: state {state:?}")))?;
    Ok(Some(Rollout {
        id,
        spec,
        state,
        reason,
        wave: unsigned(wave),
        accepted_failures: unsigned(accepted),
        created_ms,
        created_by,
        updated_ms,
    }))
}

fn load_devices(conn: &Connection, id: u64) -> Result<Vec<RolloutDevice>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device, position, wave, state, since_ms, ordered_ms, detail FROM rollout_devices
         WHERE rollout = ?1 ORDER BY position",
    )?;
    let rows = stmt
        .query_map([int(id)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(device, position, wave, state, since_ms, ordered_ms, detail)| {
            Ok(RolloutDevice {
                device: DeviceId::new(device.clone()).map_err(|e| corrupt(format!("rollout {id}: {device:?}: {e}")))?,
                position: unsigned(position),
                wave: unsigned(wave),
                state: DeviceState::parse(&state)
                    .ok_or_else(|| corrupt(format!("rollout {id}: {device}: state {state:?}")))?,
                since_ms,
                ordered_ms,
                detail,
            })
        })
        .collect()
}

/// What the fleet knows now of the devices that await something.
fn observe(
    conn: &Connection,
    version: &str,
    devices: &[RolloutDevice],
    now_ms: i64,
    offline_after: Duration,
) -> Result<HashMap<DeviceId, Observed>, StoreError> {
    let mut health = conn.prepare_cached(
        "SELECT h.version, h.received_at_ms, d.online FROM devices d
         LEFT JOIN device_health h ON h.device_id = d.id WHERE d.name = ?1",
    )?;
    let mut verdicts = conn.prepare_cached(
        "SELECT e.kind, json_extract(e.detail, '$.reason') FROM device_events e JOIN devices d ON d.id = e.device_id
         WHERE d.name = ?1 AND e.kind IN ('update_rolled_back', 'update_refused')
           AND json_extract(e.detail, '$.version') = ?2
         ORDER BY e.id DESC LIMIT 1",
    )?;
    let mut out = HashMap::new();
    let awaiting = [DeviceState::Ordered, DeviceState::Updated, DeviceState::Unreachable];
    for d in devices.iter().filter(|d| awaiting.contains(&d.state)) {
        let (version_seen, at, status) = health
            .query_row([d.device.as_str()], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<bool>>(2)?))
            })
            .optional()?
            .unwrap_or((None, None, None));
        let verdict = verdicts
            .query_row(params![d.device.as_str(), version], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .optional()?
            .map(|(kind, reason)| {
                let state = if kind == "update_rolled_back" { DeviceState::RolledBack } else { DeviceState::Failed };
                (state, reason.unwrap_or_else(|| kind.replace('_', " ")))
            });
        out.insert(
            d.device.clone(),
            Observed { heartbeat: version_seen.zip(at), online: is_online(status, at, now_ms, offline_after), verdict },
        );
    }
    Ok(out)
}

/// Writes what a step or a control changed; returns the devices newly ordered.
fn save(
    tx: &Transaction<'_>,
    before: (&Rollout, &[RolloutDevice]),
    after: (&Rollout, &[RolloutDevice]),
) -> Result<Vec<DeviceId>, StoreError> {
    let (r, devices) = after;
    if r != before.0 {
        tx.prepare_cached(
            "UPDATE rollouts SET state = ?2, reason = ?3, wave = ?4, accepted_failures = ?5, updated_ms = ?6 WHERE id = ?1",
        )?
        .execute(params![int(r.id), r.state.as_str(), r.reason, r.wave, r.accepted_failures, r.updated_ms])?;
    }
    let mut ordered = Vec::new();
    let mut update = tx.prepare_cached(
        "UPDATE rollout_devices SET state = ?3, since_ms = ?4, ordered_ms = ?5, detail = ?6 WHERE rollout = ?1 AND device = ?2",
    )?;
    for (old, new) in before.1.iter().zip(devices) {
        if old == new {
            continue;
        }
        update.execute(params![
            int(r.id),
            new.device.as_str(),
            new.state.as_str(),
            new.since_ms,
            new.ordered_ms,
            new.detail
        ])?;
        if old.state == DeviceState::Pending && new.state == DeviceState::Ordered {
            let by = format!("rollout {}", r.id);
            upsert_device_release(tx, &new.device, &r.spec.version, Some(r.id), new.since_ms, &by)?;
            ordered.push(new.device.clone());
        }
    }
    Ok(ordered)
}

/// One engine step of `id` inside `tx`.
fn advance_in(
    tx: &Transaction<'_>,
    id: u64,
    now_ms: i64,
    offline_after: Duration,
) -> Result<Option<Changed>, StoreError> {
    let Some(rollout) = load_rollout(tx, id)? else { return Ok(None) };
    let devices = load_devices(tx, id)?;
    let seen = observe(tx, &rollout.spec.version, &devices, now_ms, offline_after)?;
    let (r, ds) = engine::step(&rollout, &devices, |d| seen.get(d).cloned().unwrap_or_default(), now_ms);
    let ordered = save(tx, (&rollout, &devices), (&r, &ds))?;
    if r.state != rollout.state {
        tracing::info!(rollout = id, state = r.state.as_str(), reason = ?r.reason, "rollout state changed");
    }
    Ok(Some(Changed { rollout: r, progress: WaveProgress::of(&ds), devices: ordered }))
}

/// The devices a rollout of `spec` goes to.
fn targets(tx: &Transaction<'_>, spec: &RolloutSpec) -> Result<Result<Vec<DeviceId>, StartRefused>, StoreError> {
    if let Some(g) = &spec.group {
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM config_groups WHERE name = ?1", [g], |r| r.get(0))?;
        if n == 0 {
            return Ok(Err(StartRefused::NoGroup(g.clone())));
        }
    }
    let mut stmt = tx.prepare(
        "SELECT d.name FROM devices d JOIN device_health h ON h.device_id = d.id
         LEFT JOIN device_config c ON c.device_id = d.id
         WHERE (?1 IS NULL OR c.group_name = ?1)
           AND NOT (EXISTS (SELECT 1 FROM device_certs x WHERE x.device = d.name AND x.revoked_ms IS NOT NULL)
                    AND NOT EXISTS (SELECT 1 FROM device_certs y WHERE y.device = d.name AND y.revoked_ms IS NULL))",
    )?;
    let names = stmt.query_map([spec.group.as_deref()], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(Ok(names.into_iter().filter_map(|n| DeviceId::new(n).ok()).collect()))
}

impl RolloutStore for SqliteRolloutStore {
    fn start(&self, spec: &RolloutSpec, at_ms: i64, by: &str) -> Result<Result<Changed, StartRefused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let published: i64 =
            tx.query_row("SELECT COUNT(*) FROM releases WHERE version = ?1", [&spec.version], |r| r.get(0))?;
        if published == 0 {
            return Ok(Err(StartRefused::NoRelease(spec.version.clone())));
        }
        let active: Option<i64> = tx
            .query_row("SELECT id FROM rollouts WHERE state IN ('running', 'paused') LIMIT 1", [], |r| r.get(0))
            .optional()?;
        if let Some(id) = active {
            return Ok(Err(StartRefused::Active(u64::try_from(id).unwrap_or_default())));
        }
        let devices = match targets(&tx, spec)? {
            Ok(d) if d.is_empty() => return Ok(Err(StartRefused::NoDevices)),
            Ok(d) => d,
            Err(refused) => return Ok(Err(refused)),
        };
        let json = serde_json::to_string(spec).map_err(|e| corrupt(format!("a rollout spec: {e}")))?;
        tx.execute(
            "INSERT INTO rollouts (spec, state, created_ms, created_by, updated_ms) VALUES (?1, 'running', ?2, ?3, ?2)",
            params![json, at_ms, by],
        )?;
        let id = u64::try_from(tx.last_insert_rowid()).unwrap_or_default();
        let ordered = plan::order(id, devices);
        let ends = plan::wave_ends(ordered.len(), spec.canary, &spec.waves);
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO rollout_devices (rollout, device, position, wave, state, since_ms)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?;
            for (i, d) in ordered.iter().enumerate() {
                let wave = plan::wave_of(i, &ends);
                insert.execute(params![int(id), d.as_str(), int(i as u64), int(wave as u64), at_ms])?;
            }
        }
        let changed = advance_in(&tx, id, at_ms, Duration::ZERO)?;
        tx.commit()?;
        changed.map(Ok).ok_or_else(|| corrupt(format!("rollout {id} vanished while it started")))
    }

    fn rollouts(&self) -> Result<Vec<(Rollout, Vec<WaveProgress>)>, StoreError> {
        let conn = self.conn();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM rollouts ORDER BY id DESC")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.into_iter().filter_map(|i| u64::try_from(i).ok()) {
            if let Some(r) = load_rollout(&conn, id)? {
                let progress = WaveProgress::of(&load_devices(&conn, id)?);
                out.push((r, progress));
            }
        }
        Ok(out)
    }

    fn rollout(&self, id: u64) -> Result<Option<(Rollout, Vec<RolloutDevice>)>, StoreError> {
        let conn = self.conn();
        let Some(r) = load_rollout(&conn, id)? else { return Ok(None) };
        Ok(Some((r, load_devices(&conn, id)?)))
    }

    fn active(&self) -> Result<Vec<u64>, StoreError> {
        let conn = self.conn();
        let ids: Vec<i64> = conn
            .prepare_cached("SELECT id FROM rollouts WHERE state IN ('running', 'paused') ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids.into_iter().filter_map(|i| u64::try_from(i).ok()).collect())
    }

    fn advance(&self, id: u64, now_ms: i64, offline_after: Duration) -> Result<Vec<DeviceId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = advance_in(&tx, id, now_ms, offline_after)?;
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
        let Some(before) = load_rollout(&tx, id)? else { return Ok(Err(ControlRefused::NotFound(id))) };
        let Some(to) = transition(control, before.state) else {
            return Ok(Err(ControlRefused::Wrong { id, state: before.state.as_str() }));
        };
        let devices = load_devices(&tx, id)?;
        let mut r = Rollout { state: to, updated_ms: at_ms, ..before.clone() };
        let mut ds = devices.clone();
        match control {
            Control::Pause => r.reason = Some(format!("paused by {by}")),
            Control::Resume => {
                r.reason = None;
                let failed = ds.iter().filter(|d| d.wave == r.wave && d.state.is_failure()).count();
                r.accepted_failures = u32::try_from(failed).unwrap_or(u32::MAX);
            }
            Control::Abort => {
                r.reason = Some(format!("aborted by {by}"));
                for d in ds.iter_mut().filter(|d| d.state == DeviceState::Ordered) {
                    d.state = DeviceState::Withdrawn;
                    d.since_ms = at_ms;
                    d.detail = Some("the rollout was aborted before it updated".to_owned());
                }
            }
        }
        save(&tx, (&before, &devices), (&r, &ds))?;
        let mut withdrawn = Vec::new();
        for d in ds.iter().filter(|d| d.state == DeviceState::Withdrawn) {
            let n = tx
                .prepare_cached("DELETE FROM device_releases WHERE device = ?1 AND rollout = ?2")?
                .execute(params![d.device.as_str(), int(id)])?;
            if n > 0 {
                withdrawn.push(d.device.clone());
            }
        }
        tx.commit()?;
        tracing::info!(rollout = id, state = r.state.as_str(), %by, "rollout {}", r.state.as_str());
        Ok(Ok(Changed { rollout: r, progress: WaveProgress::of(&ds), devices: withdrawn }))
    }
}
