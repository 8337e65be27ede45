//! Sensor drivers: serial bytes in, [`Sample`]s out.
//!
//! [`spawn_all`] starts one task per sensor (one per serial port for Modbus sensors that
//! share an RS-485 bus), each in a tracing span named after the sensor. A task owns its
//! port: it opens it, reads until the port fails, marks itself disconnected, waits a
//! backoff ([`retry`]) and reopens, for as long as the agent runs, so a sensor unplugged
//! for a day comes back by itself when its device path reappears. Garbage, CRC errors and
//! timeouts are counted in [`SensorStats`] and never stop a task. Samples go to the buffer
//! over a bounded channel; when it is full the sensor waits (backpressure) and says so
//! in the log, at most every 30 s, rather than dropping. See docs/design/sensors.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::Sample;
use crate::clock::Clock;
use crate::config::{RetryConfig, SensorConfig};

pub mod ascii;
mod emit;
mod live;
pub mod modbus;
pub(crate) mod port;
pub(crate) mod retry;
pub mod simulated;
mod stats;
mod supervisor;

pub use emit::Channel;
pub use live::{LiveSensors, Running};
pub use stats::{SensorSnapshot, SensorStats, Trouble};
pub use supervisor::{Supervisor, UnitChanges};

/// The running sensors' counters, by sensor id.
#[derive(Debug, Default)]
pub struct SensorSet {
    stats: BTreeMap<String, Arc<SensorStats>>,
}

impl SensorSet {
    /// Live counters of every sensor.
    pub fn stats(&self) -> &BTreeMap<String, Arc<SensorStats>> {
        &self.stats
    }

    /// A copy of every sensor's counters now.
    pub fn snapshot(&self) -> BTreeMap<String, SensorSnapshot> {
        self.stats.iter().map(|(id, s)| (id.clone(), s.snapshot())).collect()
    }
}

/// Starts every sensor in `sensors` on `tracker`; they run until `shutdown` is cancelled
/// (or `out` is closed). Modbus sensors naming the same port path share one bus task.
pub fn spawn_all(
    sensors: &BTreeMap<String, SensorConfig>,
    retry: &RetryConfig,
    clock: Arc<dyn Clock>,
    out: Sender<Sample>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> SensorSet {
    let mut set = SensorSet::default();
    let mut buses: BTreeMap<PathBuf, Vec<modbus::bus::Member>> = BTreeMap::new();
    for (id, cfg) in sensors {
        let kind = match cfg {
            SensorConfig::Ascii(_) => "ascii",
            SensorConfig::Modbus(_) => "modbus",
            SensorConfig::Simulated(_) => "simulated",
        };
        let stats = Arc::new(SensorStats::new(kind));
        set.stats.insert(id.clone(), stats.clone());
        let emit = emit::Emitter::new(id, out.clone(), stats);
        let span = tracing::info_span!("sensor", id = %id, kind);
        match cfg {
            SensorConfig::Ascii(a) => {
                let task = ascii::driver::run(a.clone(), retry.clone(), clock.clone(), emit, shutdown.clone());
                tracker.spawn(task.instrument(span));
            }
            SensorConfig::Simulated(s) => {
                tracker.spawn(simulated::run(s.clone(), clock.clone(), emit, shutdown.clone()).instrument(span));
            }
            SensorConfig::Modbus(m) => {
                let member = modbus::bus::Member::new(id, m.clone(), emit);
                buses.entry(m.port.path.clone()).or_default().push(member);
            }
        }
    }
    for (path, members) in buses {
        let span = tracing::info_span!("modbus_bus", path = %path.display(), slaves = members.len());
        let task = modbus::bus::run(members, retry.clone(), clock.clone(), shutdown.clone());
        tracker.spawn(task.instrument(span));
    }
    set
}
