//! Helpers shared by the buffer's integration tests (`tests/buffer_*.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use simpul_agent::Sample;
use simpul_agent::buffer::{Buffer, BufferOptions};
use simpul_agent::config::Eviction;
use simpul_protocol::{BootId, Reading, ReadingTime};

/// A temp dir that lives as long as the test, and the buffer path in it.
pub fn temp_buffer_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state").join("buffer.db");
    (dir, path)
}

/// Options with a big quota (nothing is evicted) or a given one.
pub fn options(quota_bytes: u64, eviction: Eviction) -> BufferOptions {
    BufferOptions { quota_bytes, eviction }
}

/// Opens a writer with a quota big enough that nothing is evicted.
pub fn open_unlimited(path: &Path) -> Buffer {
    Buffer::open(path, options(1 << 30, Eviction::OldestFirst)).expect("open buffer")
}

/// A sample of `sensor`'s `level` in cm at `wall_ms`.
pub fn sample(sensor: &str, value: f64, wall_ms: i64) -> Sample {
    Sample {
        sensor: Arc::from(sensor),
        metric: Arc::from("level"),
        unit: Arc::from("cm"),
        value,
        time: ReadingTime {
            wall_ms,
            synced: wall_ms % 2 == 0,
            boot_id: BootId([3; 16]),
            mono_ms: u64::try_from(wall_ms).unwrap_or(0),
        },
    }
}

/// `n` samples spread over `sensors`, one a second from `start_ms`.
pub fn samples(sensors: &[&str], start_ms: i64, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let sensor = sensors[i % sensors.len()];
            sample(sensor, i as f64 * 0.5, start_ms + i as i64 * 1000)
        })
        .collect()
}

/// Equal as readings, where a NaN value equals a NaN value.
pub fn same_reading(a: &Reading, b: &Reading) -> bool {
    let value = a.value == b.value || (a.value.is_nan() && b.value.is_nan());
    value && a.seq == b.seq && a.sensor == b.sensor && a.metric == b.metric && a.unit == b.unit && a.time == b.time
}
