//! Ingest under a fleet's worth of devices: the real `simpul-fleet` binary (embedded broker,
//! SQLite) in its own process, and N simulated devices in this one, each publishing
//! realistic batches (60 readings: a minute of a 1 Hz water level, 0.1 cm, with noise) and
//! waiting for the fleet's watermark before the next. Prints ingest readings/s, the
//! publish-to-ack latency p50 and p99, the fleet's resident memory, and wire bytes per
//! reading as delivered (MQTT PUBLISH framing included).
//!
//! `cargo bench -p simpul-fleet --bench ingest` (10,000 devices, 60 s), `-- --quick`
//! (200 devices, 10 s), or `SIMPUL_BENCH_DEVICES=N SIMPUL_BENCH_SECONDS=S`.
//! Goal on a 2-core machine: >= 100,000 readings/s, p99 <= 1 s, <= 300 MB.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use simpul_protocol::control::{Ack, ControlMessage};
use simpul_protocol::topic::Channel;
use simpul_protocol::{BootId, DeviceId, Reading, ReadingBatch, ReadingTime, Topic};
use tokio::sync::Mutex;

const BATCH: u64 = 60;

fn env_or(name: &str, quick: bool, quick_value: u64, full: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { quick_value } else { full })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

/// One minute of a water level, seqs `first..first+60`.
fn batch(first: u64, start_ms: i64) -> ReadingBatch {
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

#[derive(Default)]
struct Totals {
    readings: AtomicU64,
    wire_bytes: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// One device: connect, subscribe to its ack, then publish a batch, wait for its ack, repeat.
async fn device(n: u64, broker: u16, until: Instant, totals: Arc<Totals>) {
    let Ok(id) = DeviceId::new(format!("bench-{n:05}")) else { return };
    let mut o = MqttOptions::new(id.as_str(), "127.0.0.1", broker);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(o, 10);
    let readings_topic = Topic::new(id.clone(), Channel::Readings).name();
    let ack_topic = Topic::new(id.clone(), Channel::Ack).name();
    let start_ms = 1_790_000_000_000;
    let mut next = 1;
    let mut sent_at: Option<Instant> = None;
    let mut latencies = Vec::new();
    loop {
        let event = match tokio::time::timeout(Duration::from_secs(30), events.poll()).await {
            Ok(Ok(e)) => e,
            // A refused or dropped connection: rumqttc reconnects on the next poll.
            Ok(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => break,
        };
        let publish_next = match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                let _ = client.subscribe(&ack_topic, QoS::AtLeastOnce).await;
                false
            }
            Event::Incoming(Packet::SubAck(_)) => sent_at.is_none(),
            Event::Incoming(Packet::Publish(p)) if p.topic == ack_topic => {
                let acked = Ack::from_json(&p.payload).map(|a| a.watermark).unwrap_or(0);
                match sent_at {
                    Some(t) if acked >= next - 1 => {
                        latencies.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                        totals.readings.fetch_add(BATCH, Ordering::Relaxed);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if publish_next {
            if Instant::now() >= until {
                break;
            }
            let payload = batch(next, start_ms).encode();
            // PUBLISH QoS 1: fixed header (1 + remaining-length varint), topic (2 + len), packet id (2).
            let remaining = 2 + readings_topic.len() + 2 + payload.len();
            let varint = if remaining < 128 {
                1
            } else if remaining < 16_384 {
                2
            } else {
                3
            };
            totals.wire_bytes.fetch_add((1 + varint + remaining) as u64, Ordering::Relaxed);
            next += BATCH;
            sent_at = Some(Instant::now());
            if client.publish(&readings_topic, QoS::AtLeastOnce, false, payload).await.is_err() {
                break;
            }
        }
    }
    let _ = client.disconnect().await;
    totals.latencies_us.lock().await.extend(latencies);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let devices = env_or("SIMPUL_BENCH_DEVICES", quick, 200, 10_000);
    let seconds = env_or("SIMPUL_BENCH_SECONDS", quick, 10, 60);
    // The broker's in-flight window to each client bounds how many batches one ingest
    // commit can gather (the fleet acks only after its commit).
    let inflight = env_or("SIMPUL_BENCH_BROKER_INFLIGHT", quick, 32, 32);
    let dir = tempfile::tempdir()?;
    let (broker, api) = (free_port(), free_port());
    let config = dir.path().join("fleet.toml");
    std::fs::write(
        &config,
        format!(
            "[broker]\nlisten = \"127.0.0.1:{broker}\"\nmax_connections = {}\nmax_inflight = {}\n[store]\npath = \"{}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n[log]\nlevel = \"warn\"\n",
            devices + 100,
            inflight,
            dir.path().join("fleet.db").display()
        ),
    )?;
    let mut fleet = Command::new(env!("CARGO_BIN_EXE_simpul-fleet"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdin(Stdio::null())
        .spawn()?;
    let pid = fleet.id();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", broker)).is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = fleet.kill();
            return Err("the fleet did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let totals = Arc::new(Totals::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..devices {
        tasks.spawn(device(n, broker, until, totals.clone()));
    }
    let mut peak_rss = 0;
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => peak_rss = peak_rss.max(kib(pid, "VmRSS:")),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let hwm = kib(pid, "VmHWM:");
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = fleet.wait();

    let readings = totals.readings.load(Ordering::Relaxed);
    let mut lat = totals.latencies_us.lock().await.clone();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    let wire = totals.wire_bytes.load(Ordering::Relaxed) as f64 / readings.max(1) as f64;
    println!(
        "ingest: {devices} devices, {readings} readings acked in {elapsed:.1} s = {:.0} readings/s (goal >= 100,000)",
        readings as f64 / elapsed
    );
    println!(
        "publish-to-ack: p50 {:.1} ms, p99 {:.1} ms over {} batches (goal p99 <= 1000 ms)",
        pct(0.5),
        pct(0.99),
        lat.len()
    );
    println!(
        "fleet memory: VmHWM {:.1} MB, sampled peak VmRSS {:.1} MB (goal <= 300 MB); wire {wire:.2} B/reading incl. MQTT PUBLISH framing",
        hwm as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    Ok(())
}
