//! The running sensors, changed one unit at a time.
//!
//! A *unit* is what one task drives: an ascii or simulated sensor, or one Modbus bus (all
//! Modbus sensors on one serial port path share a task, since only one may talk on the
//! RS-485 line at a time). Each unit has its own child of the agent's shutdown token, so
//! [`Supervisor::apply`] can stop or restart one unit and leave every other unit's task,
//! port and counters alone. Changing, adding or removing one Modbus sensor restarts its
//! bus (the other slaves on that port miss a poll or two); sensors on other ports are
//! untouched. A sensor that keeps its kind keeps its [`SensorStats`] across a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{LiveSensors, Running, SensorSet, SensorStats, ascii, emit, modbus, simulated};
use crate::Sample;
use crate::clock::Clock;
use crate::config::{RetryConfig, SensorConfig};

/// How long a stopped unit may take to let go of its port before a restart goes ahead.
const UNIT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What one task drives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum UnitKey {
    /// An ascii or simulated sensor, by id.
    Sensor(String),
    /// The Modbus sensors on one serial port.
    Bus(PathBuf),
}

/// A running unit: its config (to compare), its token and its task.
#[derive(Debug)]
struct Unit {
    members: BTreeMap<String, SensorConfig>,
    retry: RetryConfig,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// What [`Supervisor::apply`] did, by sensor id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitChanges {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
}

/// Owns the sensor tasks; see the module doc.
pub struct Supervisor {
    clock: Arc<dyn Clock>,
    out: Sender<Sample>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    units: BTreeMap<UnitKey, Unit>,
    stats: BTreeMap<String, Arc<SensorStats>>,
    live: watch::Sender<Running>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("units", &self.units).finish_non_exhaustive()
    }
}

impl Supervisor {
    /// No sensors yet; tasks go on `tracker` and stop when `shutdown` is cancelled.
    pub fn new(clock: Arc<dyn Clock>, out: Sender<Sample>, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        Supervisor {
            clock,
            out,
            shutdown,
            tracker,
            units: BTreeMap::new(),
            stats: BTreeMap::new(),
            live: watch::Sender::new(Running::default()),
        }
    }

    /// The running sensors' counters now (a copy of the map; the counters are live).
    pub fn set(&self) -> SensorSet {
        SensorSet { stats: self.stats.clone() }
    }

    /// The running sensors, updated after every [`Supervisor::apply`].
    pub fn live(&self) -> LiveSensors {
        LiveSensors::new(self.live.subscribe())
    }

    /// Makes the running sensors match `sensors`: starts new units, stops removed ones,
    /// restarts changed ones (a stopped unit's task has ended before its replacement
    /// opens the port), and leaves the rest running.
    pub async fn apply(&mut self, sensors: &BTreeMap<String, SensorConfig>, retry: &RetryConfig) -> UnitChanges {
        let wanted = units_of(sensors);
        let mut changes = UnitChanges::default();
        let old_keys: Vec<UnitKey> = self.units.keys().cloned().collect();
        for key in old_keys {
            let keep = wanted
                .get(&key)
                .is_some_and(|m| self.units.get(&key).is_some_and(|u| u.members == *m && u.retry == *retry));
            if keep {
                continue;
            }
            if let Some(unit) = self.units.remove(&key) {
                stop(&key, unit).await;
            }
        }
        for (key, members) in wanted {
            if self.units.contains_key(&key) {
                continue;
            }
            for (id, cfg) in &members {
                let reused = self.stats.get(id).filter(|s| s.snapshot().kind == kind(cfg)).cloned();
                let was_running = self.stats.contains_key(id);
                if was_running {
                    changes.restarted.push(id.clone())
                } else {
                    changes.started.push(id.clone())
                }
                let stats = reused.unwrap_or_else(|| Arc::new(SensorStats::new(kind(cfg))));
                self.stats.insert(id.clone(), stats);
            }
            let unit = self.start(&key, members, retry);
            self.units.insert(key, unit);
        }
        let running: Vec<String> = self.stats.keys().filter(|id| !sensors.contains_key(*id)).cloned().collect();
        for id in running {
            self.stats.remove(&id);
            changes.stopped.push(id);
        }
        changes.restarted.retain(|id| sensors.contains_key(id));
        let ports = sensors.values().filter_map(|s| s.port()).map(|p| p.path.clone()).collect();
        self.live.send_replace(Running { stats: self.stats.clone(), ports });
        changes
    }

    fn start(&self, key: &UnitKey, members: BTreeMap<String, SensorConfig>, retry: &RetryConfig) -> Unit {
        let cancel = self.shutdown.child_token();
        let emitter = |id: &str| {
            let stats = self.stats.get(id).cloned().unwrap_or_else(|| Arc::new(SensorStats::new("unknown")));
            emit::Emitter::new(id, self.out.clone(), stats)
        };
        let clock = Arc::clone(&self.clock);
        let task = match key {
            UnitKey::Bus(path) => {
                let list: Vec<modbus::bus::Member> = members
                    .iter()
                    .filter_map(|(id, cfg)| match cfg {
                        SensorConfig::Modbus(m) => Some(modbus::bus::Member::new(id, m.clone(), emitter(id))),
                        _ => None,
                    })
                    .collect();
                let span = tracing::info_span!("modbus_bus", path = %path.display(), slaves = list.len());
                self.tracker.spawn(modbus::bus::run(list, retry.clone(), clock, cancel.clone()).instrument(span))
            }
            UnitKey::Sensor(id) => {
                let emit = emitter(id);
                match members.get(id) {
                    Some(SensorConfig::Ascii(a)) => {
                        let span = tracing::info_span!("sensor", id = %id, kind = "ascii");
                        let task = ascii::driver::run(a.clone(), retry.clone(), clock, emit, cancel.clone());
                        self.tracker.spawn(task.instrument(span))
                    }
                    Some(SensorConfig::Simulated(s)) => {
                        let span = tracing::info_span!("sensor", id = %id, kind = "simulated");
                        self.tracker.spawn(simulated::run(s.clone(), clock, emit, cancel.clone()).instrument(span))
                    }
                    Some(SensorConfig::Modbus(_)) | None => self.tracker.spawn(async {}),
                }
            }
        };
        Unit { members, retry: retry.clone(), cancel, task }
    }
}

/// Stops one unit and waits (bounded) until its task has let go of the port.
async fn stop(key: &UnitKey, unit: Unit) {
    unit.cancel.cancel();
    match tokio::time::timeout(UNIT_STOP_TIMEOUT, unit.task).await {
        Ok(Ok(())) => tracing::info!(unit = ?key, "sensor task stopped"),
        Ok(Err(e)) => tracing::warn!(unit = ?key, error = %e, "sensor task failed"),
        Err(_) => tracing::warn!(unit = ?key, timeout = ?UNIT_STOP_TIMEOUT, "sensor task did not stop in time"),
    }
}

fn kind(cfg: &SensorConfig) -> &'static str {
    match cfg {
        SensorConfig::Ascii(_) => "ascii",
        SensorConfig::Modbus(_) => "modbus",
        SensorConfig::Simulated(_) => "simulated",
    }
}

/// Sensors grouped into the units that drive them.
fn units_of(sensors: &BTreeMap<String, SensorConfig>) -> BTreeMap<UnitKey, BTreeMap<String, SensorConfig>> {
    let mut units: BTreeMap<UnitKey, BTreeMap<String, SensorConfig>> = BTreeMap::new();
    for (id, cfg) in sensors {
        let key = match cfg {
            SensorConfig::Modbus(m) => UnitKey::Bus(m.port.path.clone()),
            _ => UnitKey::Sensor(id.clone()),
        };
        units.entry(key).or_default().insert(id.clone(), cfg.clone());
    }
    units
}
