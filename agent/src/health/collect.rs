//! The [`Collector`]: gathers sensors, uplink, buffer and the box into a [`Heartbeat`].
//!
//! The heartbeat task calls [`Collector::heartbeat`], which moves the CPU and sensor
//! baselines on (CPU use and sensor state are "since the previous heartbeat"); the
//! `/metrics` server calls [`Collector::view`], which reads the same sources without
//! moving them. File and database reads run on the blocking pool.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use simpul_protocol::ReadingTime;
use simpul_protocol::control::{Heartbeat, LinkHealth, SystemHealth};

use super::procfs::{self, CpuTimes};
use super::sensors::{self, Progress};
use super::system::SystemReader;
use crate::buffer::{Buffer, BufferStats};
use crate::clock::Clock;
use crate::sensor::{LiveSensors, SensorSnapshot};
use crate::uplink::{UplinkSnapshot, UplinkStats};

/// What the collector reads.
pub struct Sources {
    /// The running sensors (a sensor the fleet adds shows up in the next heartbeat).
    pub sensors: LiveSensors,
    /// The uplink's state; `None` when the uplink is disabled.
    pub uplink: Option<Arc<UplinkStats>>,
    /// A read-only connection to the buffer; `None` when it could not be opened.
    pub buffer: Option<Buffer>,
    /// The box's files.
    pub system: SystemReader,
    /// The time readings are stamped with (for ages).
    pub clock: Arc<dyn Clock>,
    /// When the agent started.
    pub started: Instant,
    /// The cameras' states.
    pub cameras: crate::camera::CameraStates,
}

/// Everything one collection saw: the heartbeat and the raw counters behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub heartbeat: Heartbeat,
    pub sensors: BTreeMap<String, SensorSnapshot>,
    pub uplink: Option<UplinkSnapshot>,
}

/// Baselines that move with each heartbeat.
#[derive(Debug, Default)]
struct Baseline {
    cpu: Option<CpuTimes>,
    cpu_percent: Option<f64>,
    sensors: BTreeMap<String, Progress>,
}

/// Builds heartbeats from [`Sources`]; shared by the heartbeat task and `/metrics`.
pub struct Collector {
    sensors: LiveSensors,
    uplink: Option<Arc<UplinkStats>>,
    buffer: Option<Arc<Mutex<Buffer>>>,
    system: SystemReader,
    clock: Arc<dyn Clock>,
    started: Instant,
    cameras: crate::camera::CameraStates,
    baseline: Mutex<Baseline>,
    /// The desired-config version running, set by the remote config.
    config_version: Mutex<Option<u64>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("sensors", &self.sensors.ids()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("sensors", &self.sensors.ids()).finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector over `sources`.
    pub fn new(sources: Sources) -> Collector {
        Collector {
            sensors: sources.sensors,
            uplink: sources.uplink,
            buffer: sources.buffer.map(|b| Arc::new(Mutex::new(b))),
            system: sources.system,
            clock: sources.clock,
            started: sources.started,
            cameras: sources.cameras,
            baseline: Mutex::new(Baseline::default()),
            config_version: Mutex::new(None),
        }
    }

    /// The desired-config version the agent runs now (reported in every heartbeat).
    pub fn set_config_version(&self, version: Option<u64>) {
        *self.config_version.lock().unwrap_or_else(|p| p.into_inner()) = version;
    }

    /// The uplink's state now, if there is an uplink.
    pub fn uplink(&self) -> Option<UplinkSnapshot> {
        self.uplink.as_ref().map(|u| u.snapshot())
    }

    /// The next heartbeat: CPU use and sensor states since the previous one (no CPU use
    /// on the first).
    pub async fn heartbeat(&self) -> Heartbeat {
        self.collect(true).await.heartbeat
    }

    /// The same figures without moving the baselines (CPU use is the last heartbeat's).
    pub async fn view(&self) -> View {
        self.collect(false).await
    }

    async fn collect(&self, advance: bool) -> View {
        let system = self.system.clone();
        let buffer = self.buffer.clone();
        let blocking = tokio::task::spawn_blocking(move || {
            let (system, cpu) = system.read();
            (system, cpu, buffer.and_then(|b| buffer_stats(&b)))
        })
        .await;
        let (mut system, cpu, buffer) = blocking.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "health: reading the box failed");
            (SystemHealth::default(), None, None)
        });
        let now = self.clock.now();
        let snaps: BTreeMap<String, SensorSnapshot> =
            self.sensors.stats().iter().map(|(id, s)| (id.clone(), s.snapshot())).collect();
        let mut base = self.baseline.lock().unwrap_or_else(|p| p.into_inner());
        if advance {
            base.cpu_percent = base.cpu.zip(cpu).and_then(|(a, b)| procfs::cpu_percent(a, b));
            base.cpu = cpu;
        }
        system.cpu_percent = base.cpu_percent;
        let sensor_health =
            snaps.iter().map(|(id, s)| (id.clone(), sensors::health(s, base.sensors.get(id).copied(), now))).collect();
        if advance {
            base.sensors = snaps.iter().map(|(id, s)| (id.clone(), Progress::from(s))).collect();
        }
        drop(base);
        let uplink = self.uplink();
        let heartbeat = Heartbeat {
            version: crate::version::current(),
            uptime_s: self.started.elapsed().as_secs(),
            config_version: *self.config_version.lock().unwrap_or_else(|p| p.into_inner()),
            system,
            link: uplink.as_ref().map(link_health),
            buffer_depth: buffer.as_ref().map(|b| b.readings),
            oldest_unsent_age_s: buffer.as_ref().and_then(|b| oldest_age_s(b, now)),
            sensors: sensor_health,
            cameras: self.cameras.snapshot(),
        };
        View { heartbeat, sensors: snaps, uplink }
    }
}

fn buffer_stats(buffer: &Mutex<Buffer>) -> Option<BufferStats> {
    let guard = buffer.lock().unwrap_or_else(|p| p.into_inner());
    match guard.stats() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "health: buffer stats unavailable");
            None
        }
    }
}

/// Seconds since the oldest reading held was taken; `None` when the buffer is empty or
/// the reading is "in the future" by this clock.
fn oldest_age_s(b: &BufferStats, now: ReadingTime) -> Option<u64> {
    let ms = now.wall_ms.checked_sub(b.oldest_wall_ms?)?;
    u64::try_from(ms).ok().map(|ms| ms / 1000)
}

fn link_health(u: &UplinkSnapshot) -> LinkHealth {
    LinkHealth {
        connected: u.connected,
        connects: u.connects,
        watermark: u.watermark,
        last_error: u.last_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use simpul_protocol::ControlMessage;
    use simpul_protocol::control::{SensorState, Throttled};

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::HealthConfig;
    use crate::sensor::SensorStats;

    fn config(dir: &Path) -> HealthConfig {
        HealthConfig {
            proc_path: dir.join("proc"),
            thermal_path: dir.join("temp"),
            throttled_path: dir.join("get_throttled"),
            ..HealthConfig::default()
        }
    }

    fn write_proc(dir: &Path, stat: &str) {
        let proc = dir.join("proc");
        std::fs::create_dir_all(&proc).expect("mkdir");
        std::fs::write(proc.join("stat"), stat).expect("stat");
        std::fs::write(proc.join("meminfo"), "MemTotal: 1000 kB\nMemAvailable: 250 kB\n").expect("meminfo");
        std::fs::write(proc.join("loadavg"), "0.25 0.10 0.05 1/100 42\n").expect("loadavg");
    }

    fn collector(dir: &Path, sensors: BTreeMap<String, Arc<SensorStats>>, buffer: Option<Buffer>) -> Collector {
        Collector::new(Sources {
            sensors: LiveSensors::fixed(sensors),
            uplink: None,
            buffer,
            system: SystemReader::new(&config(dir), &dir.join("buffer.db")),
            clock: Arc::new(ManualClock::new(1_800_000_000_000, true)),
            started: Instant::now(),
            cameras: Default::default(),
        })
    }

    #[tokio::test]
    async fn a_collector_fed_fixture_files_reports_them_and_cpu_use_from_the_second_heartbeat_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_proc(dir.path(), "cpu  100 0 50 800 50 0 0 0 0 0\n");
        std::fs::write(dir.path().join("temp"), "51234\n").expect("temp");
        std::fs::write(dir.path().join("get_throttled"), "50005\n").expect("throttled");
        let river = Arc::new(SensorStats::new("ascii"));
        river.opened(true);
        river.record("level", 12.5, ManualClock::new(1_800_000_000_000, true).now());
        river.frame_ok();
        river.trouble(crate::sensor::Trouble::Garbage, "not a number");
        let path = dir.path().join("buffer.db");
        let mut writer = Buffer::open(&path, crate::buffer::BufferOptions::default()).expect("buffer");
        let sample = crate::Sample {
            sensor: Arc::from("river"),
            metric: Arc::from("level"),
            unit: Arc::from("cm"),
            value: 12.5,
            time: ReadingTime { wall_ms: 1_800_000_000_000 - 90_000, ..ManualClock::new(0, true).now() },
        };
        writer.append(vec![sample]).expect("append");
        let reader = Buffer::open_read_only(&path).expect("read-only");
        let c = collector(dir.path(), BTreeMap::from([("river".to_owned(), river)]), Some(reader));

        let first = c.heartbeat().await;
        assert_eq!(first.system.cpu_percent, None, "one sample is not a rate");
        assert_eq!(first.system.load_1m, Some(0.25));
        assert_eq!((first.system.mem_total_bytes, first.system.mem_used_bytes), (Some(1_024_000), Some(768_000)));
        assert_eq!(first.system.soc_temp_c, Some(51.234));
        assert_eq!(first.system.throttled, Some(Throttled::from_raw(0x50005)));
        let (used, total) = (first.system.disk_used_bytes, first.system.disk_total_bytes);
        assert!(total.is_some_and(|t| used.is_some_and(|u| u <= t && t > 0)), "{used:?} of {total:?}");
        assert_eq!((first.buffer_depth, first.oldest_unsent_age_s), (Some(1), Some(90)));
        assert_eq!(first.link, None, "no uplink, no link health");
        let river = &first.sensors["river"];
        assert_eq!(river.state, SensorState::Ok);
        assert_eq!(river.last_values, BTreeMap::from([("level".to_owned(), 12.5)]));
        assert_eq!(river.errors, BTreeMap::from([("garbage".to_owned(), 1)]));
        assert_eq!(river.last_reading_age_s, Some(0));
        assert_eq!(first.version, env!("CARGO_PKG_VERSION"));

        write_proc(dir.path(), "cpu  130 0 50 870 50 0 0 0 0 0\n");
        let viewed = c.view().await;
        assert_eq!(viewed.heartbeat.system.cpu_percent, None, "a view does not move the CPU baseline");
        let second = c.heartbeat().await;
        assert_eq!(second.system.cpu_percent, Some(30.0));
    }

    #[tokio::test]
    async fn a_box_without_thermal_or_throttle_files_says_nothing_about_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = collector(dir.path(), BTreeMap::new(), None);
        let hb = c.heartbeat().await;
        let json: serde_json::Value = serde_json::from_slice(&hb.to_json().expect("json")).expect("parse");
        let system = json.get("system").cloned().unwrap_or_default();
        for key in ["soc_temp_c", "throttled", "cpu_percent", "load_1m", "mem_used_bytes", "mem_total_bytes"] {
            assert!(system.get(key).is_none(), "{key} present in {json}");
        }
        for key in ["buffer_depth", "oldest_unsent_age_s", "link"] {
            assert!(json.get(key).is_none(), "{key} present in {json}");
        }
        assert!(system.get("disk_total_bytes").is_some(), "the temp dir's filesystem is measured: {json}");
    }
}
