//! Ingest under a fleet's worth of devices: the real `simpul-fleet` binary (embedded broker,
//! SQLite) in its own process, and N simulated devices in this one (the same 2 cores), each
//! publishing realistic batches (60 readings: a minute of a 1 Hz water level, 0.1 cm, with
//! noise). Prints ingest readings/s, the publish-to-ack latency p50 and p99 (from when each
//! batch was due, so a fleet that falls behind shows it), the fleet's resident memory, and
//! wire bytes per reading as delivered (MQTT PUBLISH framing included).
//!
//! Open loop by default: every device publishes a batch every 6 s whatever the fleet does,
//! 10 readings/s a device, 100,000 readings/s offered by 10,000 devices.
//!
//! - `cargo bench -p simpul-fleet --bench ingest`: 10,000 devices, 60 s.
//! - `-- --quick`: 500 devices, a batch a second each, 10 s (CI's smoke run).
//! - `SIMPUL_BENCH_DEVICES=N SIMPUL_BENCH_SECONDS=S SIMPUL_BENCH_INTERVAL_MS=I`; `I = 0` is a
//!   closed loop (each device publishes its next batch when the last is acked): the
//!   fleet's saturation throughput.
//! - `SIMPUL_BENCH_FLEET_LOG=warn,simpul_fleet::ingest=debug` logs each commit's duration.
//! - `SIMPUL_BENCH_STORE=postgres`: the store is a PostgreSQL server of the bench's own
//!   (Debian's binaries, `fsync = off`, a unix socket), and the bench also prints the
//!   database's bytes per stored reading.
//!
//! Goal on a 2-core machine: >= 100,000 readings/s, p99 <= 1 s, <= 300 MB.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use simpul_protocol::control::{Ack, ControlMessage};
use simpul_protocol::topic::Channel;
use simpul_protocol::{DeviceId, Topic};
use std::collections::VecDeque;

use common::{BATCH, batch, env_or, free_port, kib, percentile_ms, publish_wire_bytes};
use tokio::sync::{Mutex, watch};

#[derive(Default)]
struct Totals {
    /// Readings acked whose batch was due inside the measured window.
    readings: AtomicU64,
    /// Of those, acked before the window ended (the sustained throughput).
    readings_in_window: AtomicU64,
    /// Batches due inside the window and never acked.
    unacked: AtomicU64,
    wire_bytes: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    /// Devices connected and subscribed to their ack.
    ready: AtomicU64,
}

/// How the devices load the fleet.
#[derive(Clone, Copy)]
enum Load {
    /// Each device publishes a batch every `interval` (its phase spread over the interval),
    /// whether or not the fleet keeps up: the offered load is fixed, latency shows lag.
    Open { interval: Duration },
    /// Each device publishes its next batch as soon as the last is acked: the fleet's
    /// saturation throughput (latency is then devices / throughput, by construction).
    Closed,
}

/// One device: connect, subscribe to its ack, wait for the start, then publish batches
/// (open or closed loop) and time each from when it was due to the ack that covers it.
async fn device(
    n: u64,
    devices: u64,
    broker: u16,
    load: Load,
    start: watch::Receiver<Option<(Instant, Instant)>>,
    totals: Arc<Totals>,
) {
    let Ok(id) = DeviceId::new(format!("bench-{n:05}")) else { return };
    let mut o = MqttOptions::new(id.as_str(), "127.0.0.1", broker);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(16);
    let (client, mut events) = AsyncClient::new(o, 16);
    let readings_topic = Topic::new(id.clone(), Channel::Readings).name();
    let ack_topic = Topic::new(id.clone(), Channel::Ack).name();
    let start_ms = 1_790_000_000_000;
    // Connect and subscribe before the clock starts.
    let mut subscribed = false;
    while !subscribed {
        match tokio::time::timeout(Duration::from_secs(120), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                let _ = client.subscribe(&ack_topic, QoS::AtLeastOnce).await;
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed = true,
            Ok(Ok(_)) => {}
            // Refused (the handshake queue is full) or dropped: rumqttc reconnects on the next poll.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => return,
        }
    }
    totals.ready.fetch_add(1, Ordering::Relaxed);
    let mut start_rx = start;
    let Ok(window) = start_rx.wait_for(Option::is_some).await.map(|w| *w) else { return };
    let Some((begin, until)) = window else { return };
    let mut next_seq = 1;
    // Last seq of each batch in flight -> when it was due.
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut latencies = Vec::new();
    let mut due = match load {
        Load::Open { interval } => begin + interval.mul_f64(n as f64 / devices as f64),
        Load::Closed => begin,
    };
    let drain_until = until + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        let may_publish = due < until && (matches!(load, Load::Open { .. }) || pending.is_empty());
        if may_publish && now >= due {
            let payload = batch(next_seq, start_ms).encode();
            totals.wire_bytes.fetch_add(publish_wire_bytes(&readings_topic, payload.len()), Ordering::Relaxed);
            next_seq += BATCH;
            pending.push_back((next_seq - 1, due));
            if client.try_publish(&readings_topic, QoS::AtLeastOnce, false, payload).is_err() {
                // The client's queue is full: the fleet is far behind; keep the batch due.
                next_seq -= BATCH;
                pending.pop_back();
            } else if let Load::Open { interval } = load {
                due += interval;
            }
            continue;
        }
        if pending.is_empty() && due >= until {
            break;
        }
        let wake = if may_publish { due } else { drain_until };
        if now >= drain_until {
            break;
        }
        let event = tokio::select! {
            e = events.poll() => e,
            () = tokio::time::sleep_until(wake.into()) => continue,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.subscribe(&ack_topic, QoS::AtLeastOnce).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                let acked = Ack::from_json(&p.payload).map(|a| a.watermark).unwrap_or(0);
                let at = Instant::now();
                while let Some(&(last, due_at)) = pending.front() {
                    if last > acked {
                        break;
                    }
                    pending.pop_front();
                    latencies.push(u64::try_from(at.duration_since(due_at).as_micros()).unwrap_or(u64::MAX));
                    totals.readings.fetch_add(BATCH, Ordering::Relaxed);
                    if at <= until {
                        totals.readings_in_window.fetch_add(BATCH, Ordering::Relaxed);
                    }
                }
                if matches!(load, Load::Closed) && pending.is_empty() {
                    due = at;
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    totals.unacked.fetch_add(pending.len() as u64, Ordering::Relaxed);
    let _ = client.disconnect().await;
    totals.latencies_us.lock().await.extend(latencies);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let devices = env_or("SIMPUL_BENCH_DEVICES", quick, 500, 10_000);
    let seconds = env_or("SIMPUL_BENCH_SECONDS", quick, 10, 60);
    // Open loop by default: a batch of 60 every 6 s per device is 10 readings/s a device,
    // 100,000 readings/s from 10,000 devices (the goal). 0 = closed loop (saturation).
    let interval_ms = env_or("SIMPUL_BENCH_INTERVAL_MS", quick, 1_000, 6_000);
    let load =
        if interval_ms == 0 { Load::Closed } else { Load::Open { interval: Duration::from_millis(interval_ms) } };
    let dir = tempfile::tempdir()?;
    let postgres = match std::env::var("SIMPUL_BENCH_STORE").as_deref() {
        Ok("postgres") => Some(simpul_tests::Postgres::start()?),
        _ => None,
    };
    let store = match &postgres {
        Some(pg) => format!("backend = \"postgres\"\nurl = \"{}\"", pg.url()),
        None => format!("path = \"{}\"", dir.path().join("fleet.db").display()),
    };
    let (broker, api) = (free_port(), free_port());
    let config = dir.path().join("fleet.toml");
    std::fs::write(
        &config,
        format!(
            "[broker]\nlisten = \"127.0.0.1:{broker}\"\nmax_connections = {}\n[store]\n{store}\n[api]\nlisten = \"127.0.0.1:{api}\"\n[log]\nlevel = \"{}\"\n",
            devices + 100,
            std::env::var("SIMPUL_BENCH_FLEET_LOG").unwrap_or_else(|_| "warn".to_owned()),
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
    let (start_tx, start_rx) = watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    let connecting = Instant::now();
    for n in 0..devices {
        tasks.spawn(device(n, devices, broker, load, start_rx.clone(), totals.clone()));
    }
    while totals.ready.load(Ordering::Relaxed) < devices && connecting.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = totals.ready.load(Ordering::Relaxed);
    let connect_s = connecting.elapsed().as_secs_f64();
    let begin = Instant::now();
    let until = begin + Duration::from_secs(seconds);
    let _ = start_tx.send(Some((begin, until)));
    let mut peak_rss = 0;
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => peak_rss = peak_rss.max(kib(pid, "VmRSS:")),
        }
    }
    let hwm = kib(pid, "VmHWM:");
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = fleet.wait();

    let readings = totals.readings.load(Ordering::Relaxed);
    let in_window = totals.readings_in_window.load(Ordering::Relaxed);
    let unacked = totals.unacked.load(Ordering::Relaxed);
    let mut lat = totals.latencies_us.lock().await.clone();
    lat.sort_unstable();
    let pct = |p: f64| percentile_ms(&lat, p);
    let wire = totals.wire_bytes.load(Ordering::Relaxed) as f64 / readings.max(1) as f64;
    let mode = match load {
        Load::Open { interval } => format!(
            "open loop, a 60-reading batch every {:.1} s per device = {:.0} readings/s offered",
            interval.as_secs_f64(),
            devices as f64 * BATCH as f64 / interval.as_secs_f64()
        ),
        Load::Closed => "closed loop (next batch when the last is acked)".to_owned(),
    };
    let store_name = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("ingest: {devices} devices ({ready} connected in {connect_s:.1} s), {mode}, store {store_name}");
    println!(
        "ingest: {in_window} readings acked within the {seconds} s = {:.0} readings/s (goal >= 100,000); {} more acked in the 10 s after; {unacked} batches never acked",
        in_window as f64 / seconds as f64,
        readings - in_window
    );
    println!(
        "publish-to-ack (from when each batch was due): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} batches (goal p99 <= 1000 ms)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        lat.len()
    );
    println!(
        "fleet memory: VmHWM {:.1} MB, sampled peak VmRSS {:.1} MB (goal <= 300 MB); wire {wire:.2} B/reading incl. MQTT PUBLISH framing",
        hwm as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    if let Some(pg) = &postgres {
        // The blocking client runs its own runtime: not on this one's threads.
        let url = pg.url();
        let (rows, bytes) = tokio::task::spawn_blocking(move || -> Result<(i64, i64), postgres::Error> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            let row = client.query_one(
                "SELECT count(*), pg_total_relation_size('readings') + pg_total_relation_size('series_minutes')
                 FROM readings",
                &[],
            )?;
            Ok((row.get(0), row.get(1)))
        })
        .await??;
        println!(
            "postgres: {rows} readings stored, {:.1} bytes each (readings with its indexes, plus the per-minute aggregates)",
            bytes as f64 / rows.max(1) as f64
        );
    }
    Ok(())
}
