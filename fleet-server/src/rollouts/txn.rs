//! What a rollout store does inside its transactions, whatever the database: the
//! decisions (which devices a start takes, what a step or a control changes, what is
//! written back) over [`RolloutTx`], the queries each backend answers in its own SQL
//! (`store/sqlite/rollouts.rs`, `store/postgres/rollouts.rs`).
//!
//! The backend opens the transaction (and on PostgreSQL takes the control lock), calls
//! [`start`], [`advance`] or [`control`] with it, and commits.

use std::collections::HashMap;
use std::time::Duration;

use simpul_protocol::DeviceId;

use super::store::{Changed, Control, ControlRefused, StartRefused, transition};
use super::{DeviceState, Observed, Rollout, RolloutDevice, RolloutSpec, RolloutState, WaveProgress, engine, plan};
use crate::health::online::is_online;
use crate::store::StoreError;

/// A `rollouts` row as stored.
#[derive(Clone, Debug)]
pub struct RolloutRow {
    pub spec: String,
    pub state: String,
    pub reason: Option<String>,
    pub wave: i64,
    pub accepted_failures: i64,
    pub created_ms: i64,
    pub created_by: String,
    pub updated_ms: i64,
}

/// A `rollout_devices` row as stored.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub device: String,
    pub position: i64,
    pub wave: i64,
    pub state: String,
    pub since_ms: i64,
    pub ordered_ms: Option<i64>,
    pub detail: Option<String>,
}

/// A device's latest heartbeat (version, when it arrived) and last status, as stored.
#[derive(Clone, Debug, Default)]
pub struct HealthRow {
    pub version: Option<String>,
    pub received_at_ms: Option<i64>,
    pub online: Option<bool>,
}

/// The queries a rollout transaction needs; each backend answers them in its SQL.
/// Ids are the tables' (BIGINT / INTEGER) values.
pub trait RolloutTx {
    fn rollout_row(&mut self, id: i64) -> Result<Option<RolloutRow>, StoreError>;
    /// The rollout's devices by position.
    fn device_rows(&mut self, id: i64) -> Result<Vec<DeviceRow>, StoreError>;
    /// Every rollout id, newest first.
    fn rollout_ids(&mut self) -> Result<Vec<i64>, StoreError>;
    /// The running and paused rollouts, oldest first.
    fn active_ids(&mut self) -> Result<Vec<i64>, StoreError>;
    /// `None` when the fleet never heard from `device`.
    fn health(&mut self, device: &str) -> Result<Option<HealthRow>, StoreError>;
    /// `device`'s last `update_rolled_back` or `update_refused` event for `version`: its
    /// kind and the reason in its detail.
    fn verdict(&mut self, device: &str, version: &str) -> Result<Option<(String, Option<String>)>, StoreError>;
    fn release_published(&mut self, version: &str) -> Result<bool, StoreError>;
    fn group_exists(&mut self, group: &str) -> Result<bool, StoreError>;
    /// Devices that sent a heartbeat, of `group` when given, not revoked (some cert
    /// revoked and none live).
    fn target_names(&mut self, group: Option<&str>) -> Result<Vec<String>, StoreError>;
    /// A new running rollout; its id.
    fn insert_rollout(&mut self, spec_json: &str, at_ms: i64, by: &str) -> Result<i64, StoreError>;
    fn insert_device(
        &mut self,
        rollout: i64,
        device: &str,
        position: i64,
        wave: i64,
        at_ms: i64,
    ) -> Result<(), StoreError>;
    fn update_rollout(&mut self, r: &Rollout) -> Result<(), StoreError>;
    fn update_device(&mut self, rollout: i64, d: &RolloutDevice) -> Result<(), StoreError>;
    /// Sets the release `device` should run, asked by `rollout`.
    fn set_device_release(
        &mut self,
        device: &str,
        version: &str,
        rollout: i64,
        at_ms: i64,
        by: &str,
    ) -> Result<(), StoreError>;
    /// Takes back `device`'s desired release if `rollout` set it; whether it did.
    fn withdraw_release(&mut self, device: &str, rollout: i64) -> Result<bool, StoreError>;
}

/// A u64 id as the tables' BIGINT.
pub fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn id_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn unsigned(n: i64) -> u32 {
    u32::try_from(n).unwrap_or_default()
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// Rollout `id`, parsed.
pub fn load_rollout(tx: &mut impl RolloutTx, id: u64) -> Result<Option<Rollout>, StoreError> {
    let Some(row) = tx.rollout_row(int(id))? else { return Ok(None) };
    let spec: RolloutSpec =
        serde_json::from_str(&row.spec).map_err(|e| corrupt(format!("rollout {id}: its spec: {e}")))?;
    let state =
        RolloutState::parse(&row.state).ok_or_else(|| corrupt(format!("rollout {id}: state {:?}", row.state)))?;
    Ok(Some(Rollout {
        id,
        spec,
        state,
        reason: row.reason,
        wave: unsigned(row.wave),
        accepted_failures: unsigned(row.accepted_failures),
        created_ms: row.created_ms,
        created_by: row.created_by,
        updated_ms: row.updated_ms,
    }))
}

/// Rollout `id`'s devices, parsed, in rollout order.
pub fn load_devices(tx: &mut impl RolloutTx, id: u64) -> Result<Vec<RolloutDevice>, StoreError> {
    tx.device_rows(int(id))?
        .into_iter()
        .map(|row| {
            let device = &row.device;
            Ok(RolloutDevice {
                device: DeviceId::new(device.clone()).map_err(|e| corrupt(format!("rollout {id}: {device:?}: {e}")))?,
                position: unsigned(row.position),
                wave: unsigned(row.wave),
                state: DeviceState::parse(&row.state)
                    .ok_or_else(|| corrupt(format!("rollout {id}: {device}: state {:?}", row.state)))?,
                since_ms: row.since_ms,
                ordered_ms: row.ordered_ms,
                detail: row.detail,
            })
        })
        .collect()
}

/// Every rollout, newest first, with its progress per wave.
pub fn list(tx: &mut impl RolloutTx) -> Result<Vec<(Rollout, Vec<WaveProgress>)>, StoreError> {
    let ids = tx.rollout_ids()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids.into_iter().filter_map(|i| u64::try_from(i).ok()) {
        if let Some(r) = load_rollout(tx, id)? {
            let progress = WaveProgress::of(&load_devices(tx, id)?);
            out.push((r, progress));
        }
    }
    Ok(out)
}

/// One rollout and its devices.
pub fn get(tx: &mut impl RolloutTx, id: u64) -> Result<Option<(Rollout, Vec<RolloutDevice>)>, StoreError> {
    let Some(r) = load_rollout(tx, id)? else { return Ok(None) };
    Ok(Some((r, load_devices(tx, id)?)))
}

/// The running and paused rollouts.
pub fn active(tx: &mut impl RolloutTx) -> Result<Vec<u64>, StoreError> {
    Ok(tx.active_ids()?.into_iter().filter_map(|i| u64::try_from(i).ok()).collect())
}

/// What the fleet knows now of the devices that await something.
fn observe(
    tx: &mut impl RolloutTx,
    version: &str,
    devices: &[RolloutDevice],
    now_ms: i64,
    offline_after: Duration,
) -> Result<HashMap<DeviceId, Observed>, StoreError> {
    let mut out = HashMap::new();
    let awaiting = [DeviceState::Ordered, DeviceState::Updated, DeviceState::Unreachable];
    for d in devices.iter().filter(|d| awaiting.contains(&d.state)) {
        let health = tx.health(d.device.as_str())?.unwrap_or_default();
        let verdict = tx.verdict(d.device.as_str(), version)?.map(|(kind, reason)| {
            let state = if kind == "update_rolled_back" { DeviceState::RolledBack } else { DeviceState::Failed };
            (state, reason.unwrap_or_else(|| kind.replace('_', " ")))
        });
        let online = is_online(health.online, health.received_at_ms, now_ms, offline_after);
        out.insert(
            d.device.clone(),
            Observed { heartbeat: health.version.zip(health.received_at_ms), online, verdict },
        );
    }
    Ok(out)
}

/// Writes what a step or a control changed; returns the devices newly ordered.
fn save(
    tx: &mut impl RolloutTx,
    before: (&Rollout, &[RolloutDevice]),
    after: (&Rollout, &[RolloutDevice]),
) -> Result<Vec<DeviceId>, StoreError> {
    let (r, devices) = after;
    if r != before.0 {
        tx.update_rollout(r)?;
    }
    let mut ordered = Vec::new();
    for (old, new) in before.1.iter().zip(devices) {
        if old == new {
            continue;
        }
        tx.update_device(int(r.id), new)?;
        if old.state == DeviceState::Pending && new.state == DeviceState::Ordered {
            let by = format!("rollout {}", r.id);
            tx.set_device_release(new.device.as_str(), &r.spec.version, int(r.id), new.since_ms, &by)?;
            ordered.push(new.device.clone());
        }
    }
    Ok(ordered)
}

/// One engine step of `id`.
pub fn advance(
    tx: &mut impl RolloutTx,
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
fn targets(tx: &mut impl RolloutTx, spec: &RolloutSpec) -> Result<Result<Vec<DeviceId>, StartRefused>, StoreError> {
    if let Some(g) = &spec.group {
        if !tx.group_exists(g)? {
            return Ok(Err(StartRefused::NoGroup(g.clone())));
        }
    }
    let names = tx.target_names(spec.group.as_deref())?;
    Ok(Ok(names.into_iter().filter_map(|n| DeviceId::new(n).ok()).collect()))
}

/// Starts a rollout of `spec`: checks, plans its waves, orders the canaries.
pub fn start(
    tx: &mut impl RolloutTx,
    spec: &RolloutSpec,
    at_ms: i64,
    by: &str,
) -> Result<Result<Changed, StartRefused>, StoreError> {
    if !tx.release_published(&spec.version)? {
        return Ok(Err(StartRefused::NoRelease(spec.version.clone())));
    }
    if let Some(id) = tx.active_ids()?.first() {
        return Ok(Err(StartRefused::Active(id_of(*id))));
    }
    let devices = match targets(tx, spec)? {
        Ok(d) if d.is_empty() => return Ok(Err(StartRefused::NoDevices)),
        Ok(d) => d,
        Err(refused) => return Ok(Err(refused)),
    };
    let json = serde_json::to_string(spec).map_err(|e| corrupt(format!("a rollout spec: {e}")))?;
    let id = id_of(tx.insert_rollout(&json, at_ms, by)?);
    let ordered = plan::order(id, devices);
    let ends = plan::wave_ends(ordered.len(), spec.canary, &spec.waves);
    for (i, d) in ordered.iter().enumerate() {
        let wave = plan::wave_of(i, &ends);
        tx.insert_device(int(id), d.as_str(), int(i as u64), int(wave as u64), at_ms)?;
    }
    let changed = advance(tx, id, at_ms, Duration::ZERO)?;
    changed.map(Ok).ok_or_else(|| corrupt(format!("rollout {id} vanished while it started")))
}

/// Pauses, resumes or aborts rollout `id`.
pub fn control(
    tx: &mut impl RolloutTx,
    id: u64,
    control: Control,
    at_ms: i64,
    by: &str,
) -> Result<Result<Changed, ControlRefused>, StoreError> {
    let Some(before) = load_rollout(tx, id)? else { return Ok(Err(ControlRefused::NotFound(id))) };
    let Some(to) = transition(control, before.state) else {
        return Ok(Err(ControlRefused::Wrong { id, state: before.state.as_str() }));
    };
    let devices = load_devices(tx, id)?;
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
    save(tx, (&before, &devices), (&r, &ds))?;
    let mut withdrawn = Vec::new();
    for d in ds.iter().filter(|d| d.state == DeviceState::Withdrawn) {
        if tx.withdraw_release(d.device.as_str(), int(id))? {
            withdrawn.push(d.device.clone());
        }
    }
    tracing::info!(rollout = id, state = r.state.as_str(), %by, "rollout {}", r.state.as_str());
    Ok(Ok(Changed { rollout: r, progress: WaveProgress::of(&ds), devices: withdrawn }))
}
