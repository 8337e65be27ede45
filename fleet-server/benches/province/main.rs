//! A province on one machine: 10,000 simulated boxes over mutual TLS against the real
//! `simpul-fleet` binary (embedded broker, SQLite), then a reconnect storm after the fleet is
//! killed and restarted. The boxes run in this process, on the same cores as the fleet.
//!
//! Phases, each measured on its own:
//! 1. **connect**: every box connects with its own fleet-CA certificate, subscribes to its
//!    ack, desired config and update topics, and publishes its retained status.
//! 2. **steady**: a 60-reading batch and a heartbeat a minute per box (the agent's defaults).
//! 3. **burst**: a batch every 5 s per box: 120,000 readings/s offered by 10,000 boxes, more
//!    than the goal, so that the rate acknowledged can show whether the fleet reaches it.
//! 4. **storm**: after a 5 s pause without new batches (so the burst's last ones are acked
//!    and count as the burst's), back to a minute; the fleet is SIGKILLed (or SIGTERMed) and
//!    restarted at once on the same database and ports. Its embedded broker lost every session, so all
//!    boxes reconnect together, with the agent's jittered backoff, and re-send what was not
//!    acknowledged. Settled: every box reconnected and everything due before the kill acked.
//! 5. **drain**: nothing new; each box waits for its last ack. Then the fleet stops and its
//!    database is read: every box's readings must be there exactly once.
//!
//! It prints connections held, readings/s acked, publish-to-ack p50/p99 (from when each
//! batch was due), the fleet's resident memory and the CPU of the fleet and of the
//! simulator, per phase. It fails (exit 1) if a box never connects, the storm does not
//! settle, or a reading is missing or stored twice.
//!
//! - `cargo bench -p simpul-fleet --bench province`: 10,000 boxes, steady 120 s, burst 60 s.
//! - `-- --quick`: 500 boxes, "a minute" is 5 s, steady 10 s, burst 10 s (CI's smoke run).
//! - `SIMPUL_BENCH_DEVICES`, `SIMPUL_BENCH_MINUTE_S`, `SIMPUL_BENCH_STEADY_S`,
//!   `SIMPUL_BENCH_BURST_S`, `SIMPUL_BENCH_BURST_INTERVAL_MS`; `SIMPUL_BENCH_RESTART=term`
//!   for a graceful restart; `SIMPUL_BENCH_FLEET_LOG` for the fleet's log filter.
//! - `SIMPUL_BENCH_BROKER="max_handshakes = 2000; ..."`: more `[broker]` settings for the fleet.
//! - `SIMPUL_BENCH_FLEET_ENV="K=V ..."`: environment for the fleet process alone (a heap
//!   profiler, docs/design/scale-out.md §1a).
//!
//! Goal on a 2-core machine: all 10,000 held, >= 100,000 readings/s in bursts, p99 <= 1 s,
//! <= 300 MB, the storm settled within 60 s with nothing lost.

mod certs;
#[path = "../common/mod.rs"]
mod common;
mod device;
mod fleet;
mod report;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{BATCH, env_or};
use device::{Phase, Plan, Stats};
use fleet::Fleet;
use report::Sampler;
use simpul_protocol::DeviceId;
use tokio::sync::watch;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Between the burst and the kill: long enough for the burst's batches to be acked.
const COOL_DOWN: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let devices = env_or("SIMPUL_BENCH_DEVICES", quick, 500, 10_000);
    let minute = Duration::from_secs(env_or("SIMPUL_BENCH_MINUTE_S", quick, 5, 60));
    let steady = Duration::from_secs(env_or("SIMPUL_BENCH_STEADY_S", quick, 10, 120));
    let burst = Duration::from_secs(env_or("SIMPUL_BENCH_BURST_S", quick, 10, 60));
    let burst_every = Duration::from_millis(env_or("SIMPUL_BENCH_BURST_INTERVAL_MS", quick, 1_000, 5_000));
    let graceful = std::env::var("SIMPUL_BENCH_RESTART").is_ok_and(|v| v == "term");
    let storm_limit = if quick { Duration::from_secs(120) } else { Duration::from_secs(300) };

    let dir = tempfile::tempdir()?;
    let t0 = Instant::now();
    let tls = certs::device_tls(&dir.path().join("trust"), devices)?;
    println!(
        "province: {devices} boxes over mutual TLS, embedded broker + SQLite; {devices} certificates signed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut fleet = Fleet::configure(dir.path(), devices)?;
    fleet.start().await?;

    let stats = Arc::new(Stats::default());
    let sampler = Sampler::start(fleet.pid(), stats.clone());
    let (plan_tx, plan_rx) = watch::channel(Plan {
        phase: Phase::Connect,
        since: Instant::now(),
        batch_every: None,
        heartbeat_every: minute,
    });
    let mut boxes = tokio::task::JoinSet::new();
    for (n, tls) in (0..devices).zip(tls) {
        let id = DeviceId::new(certs::device_name(n))?;
        boxes.spawn(device::run(id, n, devices, tls, fleet.tls_port, plan_rx.clone(), stats.clone()));
    }
    let mut figures = Vec::new();
    let set = |phase, batch_every| {
        let plan = Plan { phase, since: Instant::now(), batch_every, heartbeat_every: minute };
        let _ = plan_tx.send(plan);
        plan
    };

    // 1. Connect.
    let mark = sampler.mark(&fleet);
    let connected = wait_until(Duration::from_secs(300), || stats.ready.load(Ordering::Relaxed) >= devices).await;
    let mut f = sampler.figures("connect", mark, &fleet, Phase::Connect);
    f.note = format!(
        "{} of {devices} connected in {:.1} s ({} failed attempts); the fleet counts {} connections",
        stats.ready.load(Ordering::Relaxed),
        f.wall.as_secs_f64(),
        stats.failed_attempts.load(Ordering::Relaxed),
        fleet.metric("simpul_fleet_broker_connections").await.map_or("?".into(), |c| format!("{c:.0}")),
    );
    f.print();
    figures.push(f);

    // 2. Steady: a batch and a heartbeat a minute.
    let mark = sampler.mark(&fleet);
    set(Phase::Steady, Some(minute));
    tokio::time::sleep(steady).await;
    let mut f = sampler.figures("steady", mark, &fleet, Phase::Steady);
    f.note = format!("a {BATCH}-reading batch and a heartbeat every {} s per box", minute.as_secs());
    f.print();
    figures.push(f);

    // 3. Burst.
    let mark = sampler.mark(&fleet);
    set(Phase::Burst, Some(burst_every));
    tokio::time::sleep(burst).await;
    let mut f = sampler.figures("burst", mark, &fleet, Phase::Burst);
    let offered = devices as f64 * BATCH as f64 / burst_every.as_secs_f64();
    f.note = format!("a batch every {:.1} s per box: {offered:.0} readings/s offered", burst_every.as_secs_f64());
    f.print();
    figures.push(f);
    let first_hwm = fleet.peak_rss_mb();
    // No new batches for a moment, so the burst's last ones are acknowledged before the
    // kill: a batch the kill catches in flight is the restart's downtime (the storm's
    // figures), not the burst's publish-to-ack, whose p99 is well under this pause.
    set(Phase::Steady, None);
    tokio::time::sleep(COOL_DOWN).await;

    // 4. Storm: the fleet restarts; every box comes back at once.
    let mark = sampler.mark(&fleet);
    let storm = set(Phase::Storm, Some(minute));
    if graceful {
        fleet.stop()
    } else {
        fleet.kill()
    }
    let back_in = fleet.start().await?;
    sampler.follow(fleet.pid());
    let settled = wait_until(storm_limit, || stats.settled.load(Ordering::Relaxed) >= devices).await;
    let settled_after = storm.since.elapsed();
    let mut f = sampler.figures("storm", mark, &fleet, Phase::Storm);
    f.note = format!(
        "{} and restarted (listening again {:.1} s later); {} of {devices} boxes back and caught up {:.1} s after it (goal <= 60 s); {} connects, {} failed attempts, {} batches re-sent in all",
        if graceful { "SIGTERM" } else { "SIGKILL" },
        back_in.as_secs_f64(),
        stats.settled.load(Ordering::Relaxed),
        settled_after.as_secs_f64(),
        stats.connects.load(Ordering::Relaxed),
        stats.failed_attempts.load(Ordering::Relaxed),
        stats.resent_batches.load(Ordering::Relaxed),
    );
    f.print();
    figures.push(f);

    // 5. Drain, stop, and read the database.
    set(Phase::Drain, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (mut outcomes, mut drained) = (Vec::new(), true);
    loop {
        match tokio::time::timeout_at(deadline, boxes.join_next()).await {
            Ok(Some(done)) => outcomes.push(done?),
            Ok(None) => break,
            Err(_) => {
                drained = false;
                set(Phase::Done, None);
            }
        }
    }
    let second_hwm = fleet.peak_rss_mb();
    fleet.stop();
    let check = report::exactly_once(&outcomes, &fleet.stored()?);
    check.print();
    report::summary(&figures, devices, offered, first_hwm.max(second_hwm), &stats);

    let mut failures = Vec::new();
    if !connected {
        failures.push("not every box connected");
    }
    if !settled {
        failures.push("the storm did not settle");
    }
    if !drained {
        failures.push("some boxes still had unacknowledged readings at the end");
    }
    if !check.exact() {
        failures.push("readings were lost or stored twice");
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("; ").into()) }
}

/// Polls `done` every 100 ms until it holds or `limit` passes; whether it held.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while !done() {
        if t0.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}
