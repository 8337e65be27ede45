//! Bytes per reading on the wire, and encode/decode time per batch.
//!
//! `cargo bench -p simpul-protocol --bench wire_bytes`
//!
//! Seeded randomness: the figures repeat run to run (times vary with the machine).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{Publish, QoS};
use simpul_protocol::{BootId, Reading, ReadingBatch, ReadingTime};

const TOPIC: &str = "simpul/v1/dev/cilegon-ciwedus/readings";
/// 2025-11-23 00:00 UTC, in ms.
const WALL_AT_BOOT_MS: i64 = 1_763_856_000_000 - 3_600_000;
const BOOT: BootId = BootId([0x5e; 16]);

/// Roughly normal noise (Irwin-Hall: sum of 12 uniforms), mean 0, sd `sd`.
fn gaussian(rng: &mut StdRng, sd: f64) -> f64 {
    (0..12).map(|_| rng.random::<f64>()).sum::<f64>().mul_add(sd, -6.0 * sd)
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

/// One sensor of a simulated box.
struct Sensor {
    id: &'static str,
    metric: &'static str,
    unit: &'static str,
    period_ms: u64,
    sample: fn(&mut StdRng, f64) -> f64,
}

/// Readings of `sensors`, each on its own period with 0-5 ms scheduling jitter, until `n`.
/// Times are taken in microseconds and truncated to ms, as the agent's clocks would be.
fn simulate(sensors: &[Sensor], n: usize, seed: u64) -> ReadingBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut due: Vec<u64> = sensors.iter().map(|s| s.period_ms * 1000).collect();
    let mut readings = Vec::with_capacity(n);
    while readings.len() < n {
        let (i, at_us) = due.iter().copied().enumerate().min_by_key(|&(_, t)| t).unwrap_or_default();
        due[i] += sensors[i].period_ms * 1000;
        let mono_us = 3_600_000_000 + at_us + rng.random_range(0..5_000);
        let wall_us = WALL_AT_BOOT_MS as u64 * 1000 + mono_us + rng.random_range(0..40);
        let s = &sensors[i];
        readings.push(Reading {
            seq: 1_000_000 + readings.len() as u64,
            sensor: s.id.into(),
            metric: s.metric.into(),
            unit: s.unit.into(),
            value: (s.sample)(&mut rng, at_us as f64 / 1e6),
            time: ReadingTime {
                wall_ms: (wall_us / 1000) as i64,
                synced: true,
                boot_id: BOOT,
                mono_ms: mono_us / 1000,
            },
        });
    }
    ReadingBatch { readings, dropped: vec![] }
}

/// Water level in cm at 0.1 cm: a slow rise (1.2 cm in 10 min) plus ~0.3 cm noise.
fn level(rng: &mut StdRng, t: f64) -> f64 {
    round_to(152.0 + 0.002 * t + gaussian(rng, 0.3), 1)
}

fn level_only() -> Vec<Sensor> {
    vec![Sensor { id: "level", metric: "level", unit: "cm", period_ms: 1000, sample: level }]
}

fn mixed() -> Vec<Sensor> {
    vec![
        Sensor { id: "level", metric: "level", unit: "cm", period_ms: 2000, sample: level },
        Sensor {
            id: "rain",
            metric: "rain",
            unit: "mm",
            period_ms: 10_000,
            sample: |rng, _| {
                if rng.random_bool(0.1) { f64::from(rng.random_range(1..4)) * 2.0 / 10.0 } else { 0.0 }
            },
        },
        Sensor {
            id: "air",
            metric: "temperature",
            unit: "degC",
            period_ms: 10_000,
            sample: |rng, t| round_to(29.0 + t / 600.0 + gaussian(rng, 0.1), 1),
        },
        Sensor {
            id: "air",
            metric: "humidity",
            unit: "%",
            period_ms: 10_000,
            sample: |rng, _| round_to(78.0 + gaussian(rng, 0.5), 1),
        },
        Sensor {
            id: "power",
            metric: "battery",
            unit: "V",
            period_ms: 10_000,
            sample: |rng, t| round_to(12.8 - t / 36_000.0 + gaussian(rng, 0.01), 2),
        },
        Sensor {
            id: "ultrasonic",
            metric: "distance",
            unit: "mm",
            period_ms: 1_000,
            sample: |rng, t| (2_480.0 - t / 50.0 + gaussian(rng, 3.0)).round(),
        },
        Sensor {
            id: "flow",
            metric: "discharge",
            unit: "m3/s",
            period_ms: 5_000,
            sample: |rng, t| round_to(f64::from((3.2 + t / 3000.0 + gaussian(rng, 0.05)) as f32), 2),
        },
        Sensor {
            id: "water-temp",
            metric: "temperature",
            unit: "degC",
            period_ms: 10_000,
            sample: |rng, _| round_to(27.4 + gaussian(rng, 0.05), 1),
        },
    ]
}

/// The size of `payload` as an MQTT 3.1.1 QoS 1 PUBLISH on the readings topic.
fn framed(payload: &[u8]) -> usize {
    let mut publish = Publish::new(TOPIC, QoS::AtLeastOnce, payload.to_vec());
    publish.pkid = 1;
    let mut buf = BytesMut::new();
    match publish.write(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!("rumqttc refused the packet: {e:?}"),
    }
}

/// Mean wall time of `f` over enough runs to take about half a second.
fn time_per_call<T>(mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < Duration::from_millis(500) {
        black_box(f());
        runs += 1;
    }
    start.elapsed() / runs
}

fn report(name: &str, batch: &ReadingBatch) {
    let n = batch.readings.len() as f64;
    let payload = batch.encode();
    let decoded = ReadingBatch::decode(&payload).expect("our own payload decodes");
    assert!(decoded.bitwise_eq(batch), "round trip");
    let body = if payload[1] == 1 {
        zstd::bulk::decompress(&payload[2..], 16 << 20).expect("our own zstd").len() + 2
    } else {
        payload.len()
    };
    let json = serde_json::to_vec(&batch.readings).expect("json");
    let encode = time_per_call(|| batch.encode());
    let decode = time_per_call(|| ReadingBatch::decode(&payload));
    println!("{name}: {n} readings");
    println!(
        "  binary: {:>6} B payload = {:.3} B/reading; framed {:>6} B = {:.3} B/reading (uncompressed body {} B = {:.2} B/reading)",
        payload.len(),
        payload.len() as f64 / n,
        framed(&payload),
        framed(&payload) as f64 / n,
        body,
        body as f64 / n
    );
    println!(
        "  json:   {:>6} B payload = {:.2} B/reading; framed {:>6} B = {:.2} B/reading",
        json.len(),
        json.len() as f64 / n,
        framed(&json),
        framed(&json) as f64 / n
    );
    println!("  encode {:?}/batch, decode {:?}/batch", encode, decode);
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported, all cases run.
    report("(a) water level, 1 Hz, 0.1 cm, noise 0.3 cm", &simulate(&level_only(), 600, 1));
    report("(b) 8 mixed sensors, 1-10 s", &simulate(&mixed(), 600, 2));
    report("(c) small batch: water level, 10 readings", &simulate(&level_only(), 10, 3));
    report("(d) one reading", &simulate(&level_only(), 1, 4));
}
