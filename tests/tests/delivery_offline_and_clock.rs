//! Two long stories told fast: an agent offline for three days under a disk quota, and an
//! agent that boots believing it is 1970 and learns the time later.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use simpul_agent::Sample;
use simpul_agent::buffer::{Buffer, BufferOptions};
use simpul_agent::clock::Clock;
use simpul_agent::config::Eviction;
use simpul_protocol::{BootId, ReadingTime};
use simpul_tests::system::{Agent, AgentSpec, BrokerKind, Consumer, Stack};
use tokio_util::sync::CancellationToken;

const DAY_S: i64 = 86_400;

fn now_ms() -> i64 {
    simpul_agent::clock::wall_ms(SystemTime::now())
}

/// Fills a buffer with three days of two sensors at 1 Hz, as an agent cut off since then
/// would have, under a quota far too small to hold it all.
fn three_days_in(path: &std::path::Path, quota_bytes: u64) -> u64 {
    let mut b = Buffer::open(path, BufferOptions { quota_bytes, eviction: Eviction::OldestFirst }).expect("open");
    let start = now_ms() - 3 * DAY_S * 1000;
    let boot = BootId([3; 16]);
    let (sensor_a, sensor_b, metric, unit): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) =
        ("level".into(), "rain".into(), "value".into(), "cm".into());
    let mut produced = 0;
    for hour in 0..72 {
        let mut chunk = Vec::with_capacity(7200);
        for s in 0..3600 {
            let t = hour * 3600 + s;
            let time =
                ReadingTime { wall_ms: start + t * 1000, synced: true, boot_id: boot, mono_ms: (t * 1000) as u64 };
            let level = 100.0 + f64::from((t % 600) as i32) / 10.0;
            chunk.push(Sample {
                sensor: sensor_a.clone(),
                metric: metric.clone(),
                unit: unit.clone(),
                value: level,
                time,
            });
            chunk.push(Sample {
                sensor: sensor_b.clone(),
                metric: metric.clone(),
                unit: unit.clone(),
                value: 0.0,
                time,
            });
        }
        produced += chunk.len() as u64;
        b.append(chunk).expect("append");
    }
    produced
}

/// Every seq still in the buffer.
fn held_seqs(path: &std::path::Path) -> BTreeSet<u64> {
    let b = Buffer::open_read_only(path).expect("open");
    let mut out = BTreeSet::new();
    let mut after = 0;
    loop {
        let batch = b.read_batch(after, 10_000).expect("read");
        let Some(last) = batch.readings.last() else { break };
        after = last.seq;
        out.extend(batch.readings.iter().map(|r| r.seq));
    }
    out
}

async fn three_days_offline(kind: BrokerKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = Stack::start(dir.path(), kind).await.expect("broker and fleet");
    let mut consumer = Consumer::new(&stack.fleet);

    let device = "kel-offline";
    let agent_dir = Agent::dir_for(dir.path(), device);
    std::fs::create_dir_all(&agent_dir).expect("mkdir");
    let db = agent_dir.join("buffer.db");
    let produced = three_days_in(&db, 2 * 1024 * 1024);
    let held = held_seqs(&db);
    let evicted = produced - held.len() as u64;
    assert!(evicted > produced / 2, "the quota must force eviction: {evicted} of {produced} evicted");
    assert_eq!(Buffer::open_read_only(&db).and_then(|b| b.stats()).expect("stats").dropped_total, evicted);

    // The link comes back: the agent drains what it kept.
    let mut spec = AgentSpec::on(&stack, device, 0, Duration::from_secs(1));
    spec.quota = Some("2 MiB".to_owned());
    let _agent = Agent::start_draining(dir.path(), stack.broker, spec).expect("agent");
    consumer.wait_for(device, held.len()).await;
    consumer.poll().await;
    consumer.assert_exactly_once(device, &held);
    let summary = consumer.device(device).await.expect("device summary");
    assert_eq!(summary["dropped"].as_u64(), Some(evicted), "the fleet records every eviction: {summary}");
    assert_eq!(summary["watermark"].as_u64(), Some(produced), "dropped seqs are never waited for: {summary}");
}

/// A clock that runs at real speed from a wall time the test chooses, unsynced until
/// the test says NTP answered.
#[derive(Debug)]
struct BootClock {
    start: Instant,
    epoch_ms: AtomicI64,
    synced: AtomicBool,
}

impl Clock for BootClock {
    fn now(&self) -> ReadingTime {
        let mono_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        ReadingTime {
            wall_ms: self.epoch_ms.load(Ordering::SeqCst) + mono_ms as i64,
            synced: self.synced.load(Ordering::SeqCst),
            boot_id: BootId([19; 16]),
            mono_ms,
        }
    }
}

async fn boots_in_1970(kind: BrokerKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = Stack::start(dir.path(), kind).await.expect("broker and fleet");
    let mut consumer = Consumer::new(&stack.fleet);
    let device = "kel-1970";

    let trust = match &stack.enrolment {
        Some(e) => e.agent_section(dir.path(), device, stack.broker).expect("bundle"),
        None => String::new(),
    };
    let text = format!(
        "[device]\nid = \"{device}\"\n[buffer]\npath = \"{}\"\nflush_interval = \"100ms\"\n{trust}[uplink]\nenabled = true\ntls = {}\nbroker = \"{}\"\nbatch_interval = \"100ms\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n[sensors.level]\nkind = \"simulated\"\ninterval = \"20ms\"\nseed = 1\n",
        dir.path().join("agent.db").display(),
        stack.enrolment.is_some(),
        stack.broker
    );
    let config = simpul_agent::config::load_str("agent.toml", &text).expect("config");
    // The Pi boots after a power cut: no RTC, the clock starts at the epoch.
    let clock =
        Arc::new(BootClock { start: Instant::now(), epoch_ms: AtomicI64::new(0), synced: AtomicBool::new(false) });
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(simpul_agent::run::run_with_clock(config, clock.clone(), shutdown.clone()));

    // Readings taken in "1970" reach the fleet but are held, not delivered.
    wait_for_held(&consumer, device, 100).await;
    assert_eq!(consumer.poll().await, 0, "unsynced readings are not delivered before their time is known");

    // NTP answers: the wall clock jumps to the true time.
    let true_epoch = now_ms() - clock.start.elapsed().as_millis() as i64;
    clock.epoch_ms.store(true_epoch, Ordering::SeqCst);
    clock.synced.store(true, Ordering::SeqCst);
    consumer.wait_for(device, 300).await;
    shutdown.cancel();
    agent.await.expect("join").expect("agent ran");

    let readings = consumer.readings(device);
    let unsynced: Vec<_> = readings.iter().filter(|r| r["synced"] == false).collect();
    assert!(unsynced.len() >= 100, "the 1970 readings were delivered");
    let horizon = now_ms() - 10 * 60 * 1000;
    for r in &unsynced {
        assert_eq!(r["time_corrected"], true, "{r}");
        let t = r["time_ms"].as_i64().expect("time_ms");
        assert!(t > horizon && t <= now_ms(), "corrected time {t} is not in the last minutes: {r}");
    }
    // Readings keep their order in time across the jump.
    let mut times: Vec<(u64, i64)> =
        readings.iter().filter_map(|r| Some((r["seq"].as_u64()?, r["time_ms"].as_i64()?))).collect();
    times.sort();
    assert!(times.windows(2).all(|w| w[0].1 <= w[1].1 + 50), "times go backwards across the sync");
}

/// Waits until the fleet holds at least `n` of `device`'s readings back.
async fn wait_for_held(consumer: &Consumer, device: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + simpul_tests::system::PATIENCE;
    loop {
        let held = consumer.device(device).await.and_then(|d| d["readings_held"].as_u64()).unwrap_or(0);
        if held >= n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {held} readings held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod mosquitto {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_days_offline_under_a_quota_evicts_counts_and_delivers_every_other_reading() {
        three_days_offline(BrokerKind::Mosquitto).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_that_boots_in_1970_has_its_readings_corrected_when_its_clock_syncs() {
        boots_in_1970(BrokerKind::Mosquitto).await;
    }
}

mod embedded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_days_offline_under_a_quota_evicts_counts_and_delivers_every_other_reading() {
        three_days_offline(BrokerKind::Embedded).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_that_boots_in_1970_has_its_readings_corrected_when_its_clock_syncs() {
        boots_in_1970(BrokerKind::Embedded).await;
    }
}
