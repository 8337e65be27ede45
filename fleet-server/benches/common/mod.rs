//! What the fleet benchmarks share: the batches simulated devices send, reading a process's
//! memory and CPU from /proc, and percentiles.

#![allow(dead_code)] // each bench uses part of it

use simpul_protocol::{BootId, Reading, ReadingBatch, ReadingTime};

/// Readings in one batch: a minute of a 1 Hz sensor.
pub const BATCH: u64 = 60;

/// A bench knob from the environment, else its `--quick` or full default.
pub fn env_or(name: &str, quick: bool, quick_value: u64, full: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { quick_value } else { full })
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A `/proc/{pid}/status` figure in KiB (`VmRSS:`, `VmHWM:`); 0 if the process is gone.
pub fn kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far; 0 if it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // After ')': state is field 3 of proc(5), so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    (ticks(11) + ticks(12)) as f64 / hz as f64
}

/// One minute of a water level, seqs `first..first+60`.
pub fn batch(first: u64, start_ms: i64) -> ReadingBatch {
    let readings = (0..BATCH)
        .map(|i| {
            let seq = first + i;
            let noise = ((seq * 7919) % 7) as f64 - 3.0;
            Reading {
                seq,
                sensor: "sungai".into(),
                metric: "level".into(),
                unit: "cm".into(),
                value: (1200.0 + (seq as f64 / 60.0).sin() * 300.0 + noise).round() / 10.0,
                time: ReadingTime {
                    wall_ms: start_ms + (seq as i64) * 1000,
                    synced: true,
                    boot_id: BootId([1; 16]),
                    mono_ms: seq * 1000,
                },
            }
        })
        .collect();
    ReadingBatch { readings, dropped: Vec::new() }
}

/// The bytes a QoS 1 PUBLISH of `payload` on `topic` takes on the wire.
pub fn publish_wire_bytes(topic: &str, payload: usize) -> u64 {
    // Fixed header (1 + remaining-length varint), topic (2 + len), packet id (2).
    let remaining = 2 + topic.len() + 2 + payload;
    let varint = match remaining {
        0..128 => 1,
        128..16_384 => 2,
        16_384..2_097_152 => 3,
        _ => 4,
    };
    (1 + varint + remaining) as u64
}

/// The `p` quantile (0..=1) of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
}
