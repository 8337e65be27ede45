//! Sensor drivers against real bytes over pseudo-terminals: the agent's `spawn_all`
//! opens link paths that [`PtySensor`] and [`ModbusSlave`] put in a temp dir.
//!
//! Every wait is for an event (a sample on the channel, a stats change) under a generous
//! timeout that only guards against a hang; there are no fixed sleeps.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use simpul_agent::Sample;
use simpul_agent::clock::ManualClock;
use simpul_agent::config::RetryConfig;
use simpul_agent::config::SensorConfig;
use simpul_agent::config::sensor::{
    AsciiFormat, AsciiSensorConfig, DataType, ModbusSensorConfig, RegisterConfig, RegisterFunction, SerialPortConfig,
    SimulatedSensorConfig, ValueMapping, WordOrder,
};
use simpul_agent::sensor::{SensorSet, SensorSnapshot, spawn_all};
use simpul_tests::{Fault, ModbusSlave, PtySensor, RegisterMap};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Only a guard against a hang; events normally come in milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);
const WALL_MS: i64 = 1_800_000_000_000;

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The sensor half of an agent, running in this test.
struct Agent {
    set: SensorSet,
    rx: mpsc::Receiver<Sample>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Agent {
    fn start(sensors: Vec<(&str, SensorConfig)>) -> Agent {
        let sensors: BTreeMap<String, SensorConfig> = sensors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let retry = RetryConfig { min_delay: Duration::from_millis(20), max_delay: Duration::from_millis(200) };
        let clock = Arc::new(ManualClock::new(WALL_MS, true));
        let (tx, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let set = spawn_all(&sensors, &retry, clock, tx, shutdown.clone(), &tracker);
        tracker.close();
        Agent { set, rx, shutdown, tracker }
    }

    /// The next sample of `sensor` (others are skipped).
    async fn next(&mut self, sensor: &str) -> Sample {
        within(&format!("a sample from {sensor}"), async {
            loop {
                match self.rx.recv().await {
                    Some(s) if &*s.sensor == sensor => return s,
                    Some(_) => {}
                    None => panic!("sample channel closed"),
                }
            }
        })
        .await
    }

    /// The next sample of `sensor` with `metric`.
    async fn next_metric(&mut self, sensor: &str, metric: &str) -> Sample {
        loop {
            let s = self.next(sensor).await;
            if &*s.metric == metric {
                return s;
            }
        }
    }

    /// Waits until `sensor`'s stats satisfy `pred`.
    async fn until(&self, sensor: &str, what: &str, pred: impl Fn(&SensorSnapshot) -> bool) -> SensorSnapshot {
        let stats = self.set.stats().get(sensor).unwrap_or_else(|| panic!("no sensor {sensor}")).clone();
        within(&format!("{sensor}: {what}"), stats.wait_for(pred)).await
    }

    /// Stops every sensor and checks they all stopped promptly.
    async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(3), self.tracker.wait()).await {
            Ok(()) => {}
            Err(_) => panic!("sensor tasks did not stop within 3s of shutdown"),
        }
    }
}

fn port(path: &Path) -> SerialPortConfig {
    SerialPortConfig { path: path.to_owned(), baud: 9600, data_bits: 8, parity: Default::default(), stop_bits: 1 }
}

fn ranger(path: &Path) -> SensorConfig {
    SensorConfig::Ascii(AsciiSensorConfig {
        port: port(path),
        format: AsciiFormat::Prefixed,
        prefix: Some("R".into()),
        value: ValueMapping { metric: Some("level".into()), unit: "cm".into(), scale: 0.1, offset: 0.0, decimals: 1 },
        fields: BTreeMap::new(),
        max_line: 32,
    })
}

fn register(metric: &str, address: u16, data_type: DataType, word_order: WordOrder, scale: f64) -> RegisterConfig {
    RegisterConfig {
        metric: metric.into(),
        function: RegisterFunction::Holding,
        address,
        data_type,
        word_order,
        unit: "cm".into(),
        scale,
        offset: 0.0,
        decimals: 1,
    }
}

fn modbus(path: &Path, slave: u8, timeout_ms: u64) -> SensorConfig {
    SensorConfig::Modbus(ModbusSensorConfig {
        port: port(path),
        slave,
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_millis(timeout_ms),
        registers: vec![
            register("level_u16", 0, DataType::U16, WordOrder::Big, 0.1),
            register("level_f32", 1, DataType::F32, WordOrder::Big, 1.0),
            register("offset_i32", 3, DataType::I32, WordOrder::Little, 1.0),
            register("temp_i16", 5, DataType::I16, WordOrder::Big, 0.1),
        ],
    })
}

// --- ASCII ---------------------------------------------------------------------------

/// A pty in a temp dir and an agent whose one sensor `id` (configured by `cfg` for the
/// pty's link) has opened it.
async fn plugged(id: &str, cfg: impl FnOnce(&Path) -> SensorConfig) -> (tempfile::TempDir, PtySensor, Agent) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = PtySensor::create(dir.path().join("tty0")).expect("pty");
    let agent = Agent::start(vec![(id, cfg(dev.link()))]);
    agent.until(id, "port open", |s| s.connected).await;
    (dir, dev, agent)
}

#[tokio::test]
async fn ranger_lines_over_a_pty_become_samples_with_scale_and_unit() {
    let (_dir, mut dev, mut agent) = plugged("ranger", ranger).await;

    dev.write(b"R1234\rR1240\nR1250\r\n").await.expect("write");
    for want in [123.4, 124.0, 125.0] {
        let s = agent.next("ranger").await;
        assert_eq!((&*s.metric, &*s.unit, s.value), ("level", "cm", want));
        assert_eq!(s.time.wall_ms, WALL_MS);
    }
    let snap = agent.until("ranger", "three frames", |s| s.frames_ok == 3).await;
    assert_eq!(snap.garbage, 0);
    assert_eq!(snap.last_values.get("level"), Some(&125.0));
    agent.stop().await;
}

#[tokio::test]
async fn garbage_bytes_are_counted_and_the_next_good_line_still_arrives() {
    let (_dir, mut dev, mut agent) = plugged("ranger", ranger).await;

    // An over-long run (max_line is 32), a line that is not UTF-8, one that is not a number.
    dev.write(&[b'x'; 100]).await.expect("write");
    dev.write(b"\r\xff\xfe\x00\rRabc\r").await.expect("write");
    dev.write(b"R1500\r").await.expect("write");
    let s = agent.next("ranger").await;
    assert_eq!(s.value, 150.0);
    let snap = agent.until("ranger", "garbage counted", |s| s.garbage == 3).await;
    assert_eq!(snap.frames_ok, 1);
    assert!(snap.connected);
    agent.stop().await;
}

#[tokio::test]
async fn an_unplugged_ranger_is_retried_and_comes_back_when_its_path_reappears() {
    let (_dir, mut dev, mut agent) = plugged("ranger", ranger).await;
    dev.write_line("R1000").await.expect("write");
    assert_eq!(agent.next("ranger").await.value, 100.0);

    dev.unplug().expect("unplug");
    // The read fails, then reopening fails while the path is gone: two or more errors.
    agent.until("ranger", "unplug noticed and retried", |s| !s.connected && s.io_errors >= 3).await;

    dev.replug().expect("replug");
    let snap = agent.until("ranger", "reconnected", |s| s.connected && s.reconnects == 1).await;
    assert!(snap.last_error.is_some());
    dev.write_line("R1010").await.expect("write");
    assert_eq!(agent.next("ranger").await.value, 101.0);
    agent.stop().await;
}

#[tokio::test]
async fn key_value_lines_become_one_sample_per_configured_field() {
    let mut fields = BTreeMap::new();
    fields.insert("level".to_owned(), ValueMapping { unit: "cm".into(), decimals: 1, ..ValueMapping::default() });
    fields.insert(
        "rain".to_owned(),
        ValueMapping { metric: Some("rain_mm".into()), unit: "mm".into(), scale: 0.1, offset: 0.0, decimals: 2 },
    );
    let cfg = |path: &Path| {
        SensorConfig::Ascii(AsciiSensorConfig {
            port: port(path),
            format: AsciiFormat::KeyValue,
            prefix: None,
            value: ValueMapping::default(),
            fields,
            max_line: 256,
        })
    };
    let (_dir, mut dev, mut agent) = plugged("station", cfg).await;

    dev.write(b"level=123.44 rain=2 battery=12.6\r\n").await.expect("write");
    let a = agent.next("station").await;
    let b = agent.next("station").await;
    assert_eq!((&*a.metric, &*a.unit, a.value), ("level", "cm", 123.4));
    assert_eq!((&*b.metric, &*b.unit, b.value), ("rain_mm", "mm", 0.2));
    assert_eq!(a.time, b.time, "values of one line share its time");
    agent.stop().await;
}

// --- Modbus --------------------------------------------------------------------------

#[tokio::test]
async fn modbus_slave_level_rising_is_read_with_register_map() {
    let dir = tempfile::tempdir().expect("temp dir");
    let map = RegisterMap { start_cm: 200.0, rise_cm_per_s: 20.0 };
    let slave = ModbusSlave::start(dir.path().join("ttyMODBUS"), &[7], map).expect("slave");
    let mut agent = Agent::start(vec![("tank", modbus(slave.link(), 7, 1000))]);

    let first = agent.next_metric("tank", "level_u16").await;
    let f32_level = agent.next_metric("tank", "level_f32").await;
    let offset = agent.next_metric("tank", "offset_i32").await;
    let temp = agent.next_metric("tank", "temp_i16").await;
    // The four came from one read of registers 0..6, so they describe one level.
    assert_eq!(first.time, temp.time);
    assert!(first.value >= 200.0, "level {}", first.value);
    assert!((f32_level.value - first.value).abs() <= 0.11, "{} vs {}", f32_level.value, first.value);
    assert_eq!(offset.value, (first.value * 10.0).round() - 100_000.0);
    assert_eq!((temp.value, &*temp.unit), (-12.3, "cm"));

    let risen = within("the level to rise", async {
        loop {
            let s = agent.next_metric("tank", "level_u16").await;
            if s.value > first.value {
                return s;
            }
        }
    })
    .await;
    assert!(risen.value > first.value);
    let snap = agent.until("tank", "several polls", |s| s.frames_ok >= 2).await;
    assert_eq!((snap.crc_errors, snap.timeouts, snap.exceptions, snap.io_errors), (0, 0, 0, 0));
    assert!(slave.answered() >= 2);
    agent.stop().await;
}

#[tokio::test]
async fn modbus_crc_errors_and_timeouts_are_counted_and_polling_continues() {
    let dir = tempfile::tempdir().expect("temp dir");
    let slave = ModbusSlave::start(dir.path().join("ttyMODBUS"), &[1], RegisterMap::default()).expect("slave");
    let mut agent = Agent::start(vec![("tank", modbus(slave.link(), 1, 150))]);
    agent.until("tank", "a good poll", |s| s.frames_ok >= 1).await;

    slave.set_fault(Fault::BadCrc);
    let snap = agent.until("tank", "CRC errors", |s| s.crc_errors >= 2).await;
    assert_eq!(snap.io_errors, 0, "a bad CRC is not a port failure");

    slave.set_fault(Fault::Silent);
    let before = snap.timeouts;
    agent.until("tank", "timeouts", |s| s.timeouts >= before + 2 && !s.connected).await;

    slave.set_fault(Fault::Garbage);
    let crc = agent.snapshot("tank").crc_errors;
    agent.until("tank", "noise counted as corrupt replies", |s| s.crc_errors > crc).await;

    slave.set_fault(Fault::None);
    let ok = agent.snapshot("tank").frames_ok;
    let snap = agent.until("tank", "polling to recover", |s| s.frames_ok >= ok + 2 && s.connected).await;
    assert_eq!((snap.io_errors, snap.reconnects), (0, 0), "the port stayed open throughout");
    // Drain what came before the recovery, then a fresh sample must still arrive.
    while agent.rx.try_recv().is_ok() {}
    agent.next_metric("tank", "level_u16").await;
    agent.stop().await;
}

#[tokio::test]
async fn two_slaves_on_one_bus_take_turns_on_one_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let slave = ModbusSlave::start(dir.path().join("ttyRS485"), &[1, 2], RegisterMap::default()).expect("slave");
    let mut agent =
        Agent::start(vec![("upstream", modbus(slave.link(), 1, 1000)), ("downstream", modbus(slave.link(), 2, 1000))]);
    agent.next("upstream").await;
    agent.next("downstream").await;
    for id in ["upstream", "downstream"] {
        let snap = agent.until(id, "several polls", |s| s.frames_ok >= 3).await;
        assert_eq!((snap.crc_errors, snap.timeouts, snap.io_errors), (0, 0, 0), "{id}");
    }
    agent.stop().await;
}

// --- Isolation -----------------------------------------------------------------------

#[tokio::test]
async fn one_failing_sensor_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut good = PtySensor::create(dir.path().join("ttyGOOD")).expect("pty");
    let mut noisy = PtySensor::create(dir.path().join("ttyNOISY")).expect("pty");
    let silent = ModbusSlave::start(dir.path().join("ttySILENT"), &[1], RegisterMap::default()).expect("slave");
    silent.set_fault(Fault::Silent);
    let simulated = SensorConfig::Simulated(SimulatedSensorConfig {
        interval: Duration::from_millis(20),
        metric: "level".into(),
        unit: "cm".into(),
        base: 120.0,
        amplitude: 30.0,
        period: Duration::from_secs(60),
        noise: 0.0,
        decimals: 1,
        seed: Some(1),
    });
    let mut agent = Agent::start(vec![
        ("good", ranger(good.link())),
        ("missing", ranger(&dir.path().join("ttyNEVER"))),
        ("noisy", ranger(noisy.link())),
        ("silent", modbus(silent.link(), 1, 100)),
        ("sim", simulated),
    ]);
    agent.until("good", "port open", |s| s.connected).await;
    agent.until("noisy", "port open", |s| s.connected).await;
    noisy.write(&[0x00, 0xff, b'?', b'\r']).await.expect("write");
    agent.until("noisy", "garbage", |s| s.garbage >= 1).await;
    agent.until("missing", "failed opens", |s| s.io_errors >= 3 && !s.connected).await;
    agent.until("silent", "timeouts", |s| s.timeouts >= 3).await;

    for mm in [1100, 1200] {
        good.write_line(&format!("R{mm}")).await.expect("write");
        assert_eq!(agent.next("good").await.value, f64::from(mm) / 10.0);
    }
    agent.next("sim").await;
    agent.stop().await;
}

impl Agent {
    fn snapshot(&self, sensor: &str) -> SensorSnapshot {
        self.set.snapshot().remove(sensor).unwrap_or_else(|| panic!("no sensor {sensor}"))
    }
}
