//! Test peers for the uplink's tests (`tests/uplink_*.rs`): a real Mosquitto on a free
//! port, a fake fleet speaking the ack contract, a slow TCP proxy, and buffer helpers.
#![allow(dead_code)]

pub mod fleet;
pub mod proxy;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use simpul_agent::Sample;
use simpul_agent::buffer::{Buffer, BufferOptions};
use simpul_agent::clock::{Clock, ManualClock};
use simpul_agent::config::UplinkConfig;
use simpul_agent::uplink::{self, UplinkHandle};
use simpul_protocol::{BootId, DeviceId, ReadingTime};
use tokio_util::sync::CancellationToken;

use fleet::FakeFleet;
use simpul_tests::Mosquitto;

/// A broker, a fake fleet on it, and a buffer file: what every uplink test starts with.
#[derive(Debug)]
pub struct Rig {
    pub broker: Mosquitto,
    pub fleet: FakeFleet,
    pub path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Rig {
    /// A fresh broker and a fleet that acknowledges up to `ack_cap`.
    pub async fn start(ack_cap: u64) -> Rig {
        let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
        let fleet = FakeFleet::start(broker.port(), device(), ack_cap);
        let (dir, path) = temp_buffer_path();
        Rig { broker, fleet, path, dir }
    }
}

/// A running uplink and the token that stops it.
#[derive(Debug)]
pub struct Agent {
    pub up: UplinkHandle,
    pub shutdown: CancellationToken,
}

impl Agent {
    /// Starts the uplink on its own connection to the buffer at `path`.
    pub fn start(config: UplinkConfig, path: &Path, clock: Arc<dyn Clock>) -> Agent {
        let shutdown = CancellationToken::new();
        let up = uplink::spawn(config, path.with_extension("trust"), device(), open(path), clock, shutdown.clone());
        Agent { up, shutdown }
    }

    /// Stops it cleanly and waits until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        within("a clean stop", self.up.join()).await;
    }
}

/// A clock synchronised all along.
pub fn synced_clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(1_800_000_000_000, true))
}

/// The safety net around every wait: generous, never the expected duration.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Awaits `f`, failing the test with `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// The device every test uses.
pub fn device() -> DeviceId {
    DeviceId::new("kel-test-01").expect("valid id")
}

/// An uplink config for a broker on `port`, with test-sized intervals.
pub fn uplink_config(port: u16, batch_max: usize) -> UplinkConfig {
    UplinkConfig {
        enabled: true,
        broker: format!("127.0.0.1:{port}"),
        keepalive: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        batch_max,
        batch_interval: Duration::from_millis(50),
        max_inflight: 4,
        ack_timeout: Duration::from_secs(60),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        tls: false,
    }
}

/// A temp dir that lives as long as the test, and a buffer path in it.
pub fn temp_buffer_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("buffer.db");
    (dir, path)
}

/// Opens a connection to the buffer at `path` (the writer's, or the uplink's own).
pub fn open(path: &Path) -> Buffer {
    Buffer::open(path, BufferOptions::default()).expect("open buffer")
}

/// Appends `n` readings (values that vary, so batches are not trivially small) and
/// returns the seq of the last.
pub fn append(buffer: &mut Buffer, n: usize) -> u64 {
    let samples: Vec<Sample> = (0..n)
        .map(|i| {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            Sample {
                sensor: Arc::from("river"),
                metric: Arc::from("level"),
                unit: Arc::from("cm"),
                value: f64::from(i.wrapping_mul(2_654_435_761) % 10_000) / 10.0,
                time: ReadingTime {
                    wall_ms: 1_800_000_000_000 + i64::from(i) * 1000,
                    synced: true,
                    boot_id: BootId([9; 16]),
                    mono_ms: u64::from(i) * 1000,
                },
            }
        })
        .collect();
    buffer.append(samples).expect("append").map_or(0, |r| r.last)
}
