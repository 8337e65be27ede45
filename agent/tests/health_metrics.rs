//! Prometheus `/metrics` over real HTTP: buffer depth, per-sensor counters, and no series
//! for a figure the box does not have.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_agent::Sample;
use simpul_agent::buffer::{Buffer, BufferOptions};
use simpul_agent::clock::{Clock, ManualClock};
use simpul_agent::config::{HealthConfig, RetryConfig};
use simpul_agent::health::{Collector, Sources, SystemReader, metrics};
use simpul_agent::sensor::{self, LiveSensors};
use simpul_protocol::ReadingTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const WITHIN: Duration = Duration::from_secs(30);

/// A collector over one running simulated sensor, a buffer holding three readings, and
/// `dir` as the box's files.
async fn collector(dir: &Path, shutdown: &CancellationToken) -> Arc<Collector> {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_800_000_000_000, true));
    let text = "[sensors.river]\nkind = \"simulated\"\ninterval = \"10ms\"\n";
    let sensors = simpul_agent::config::load_str("agent.toml", text).expect("config").sensors;
    let (tx, mut rx) = mpsc::channel::<Sample>(64);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let tracker = TaskTracker::new();
    let set = sensor::spawn_all(&sensors, &RetryConfig::default(), clock.clone(), tx, shutdown.clone(), &tracker);
    let stats = set.stats()["river"].clone();
    tokio::time::timeout(WITHIN, stats.wait_for(|s| s.frames_ok > 0)).await.expect("the sensor reads");

    let path = dir.join("buffer.db");
    let mut writer = Buffer::open(&path, BufferOptions::default()).expect("buffer");
    let time = ReadingTime { wall_ms: 1_800_000_000_000 - 5_000, ..clock.now() };
    let sample =
        Sample { sensor: Arc::from("river"), metric: Arc::from("level"), unit: Arc::from("cm"), value: 1.0, time };
    writer.append(vec![sample.clone(), sample.clone(), sample]).expect("append");

    let health = HealthConfig {
        proc_path: dir.join("proc"),
        thermal_path: dir.join("temp"),
        throttled_path: dir.join("get_throttled"),
        ..HealthConfig::default()
    };
    Arc::new(Collector::new(Sources {
        sensors: LiveSensors::fixed(set.stats().clone()),
        uplink: None,
        buffer: Some(Buffer::open_read_only(&path).expect("read-only buffer")),
        system: SystemReader::new(&health, &path),
        clock,
        started: Instant::now(),
        cameras: Default::default(),
    }))
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let resp = reqwest::get(format!("http://{addr}/metrics")).await.expect("GET /metrics");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_buffer_depth_and_per_sensor_counters_and_stop_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancellationToken::new();
    let c = collector(dir.path(), &shutdown).await;
    let (addr, server) =
        metrics::serve("127.0.0.1:0".parse().expect("addr"), c, shutdown.clone()).await.expect("serve");

    let text = scrape(addr).await;
    assert!(text.contains("simpul_agent_buffer_depth 3\n"), "{text}");
    assert!(text.contains("simpul_agent_oldest_unsent_age_seconds 5\n"), "{text}");
    assert!(text.contains("simpul_agent_sensor_frames_ok_total{sensor=\"river\"} "), "{text}");
    assert!(text.contains("simpul_agent_sensor_errors_total{sensor=\"river\",kind=\"crc\"} 0\n"), "{text}");
    assert!(text.contains("simpul_agent_uptime_seconds "), "{text}");
    assert!(text.contains("simpul_agent_disk_total_bytes "), "{text}");
    assert!(!text.contains("simpul_agent_uplink_"), "no uplink, no uplink series: {text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    shutdown.cancel();
    tokio::time::timeout(WITHIN, server).await.expect("the server stops on shutdown").expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_without_a_soc_temperature_has_no_temperature_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancellationToken::new();
    let c = collector(dir.path(), &shutdown).await;
    let (addr, _server) =
        metrics::serve("127.0.0.1:0".parse().expect("addr"), c, shutdown.clone()).await.expect("serve");

    let text = scrape(addr).await;
    for absent in ["simpul_agent_soc_temperature_celsius", "simpul_agent_throttled_flags", "simpul_agent_memory_"] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }

    std::fs::write(dir.path().join("temp"), "47250\n").expect("temp");
    let text = scrape(addr).await;
    assert!(text.contains("simpul_agent_soc_temperature_celsius 47.25\n"), "{text}");
    shutdown.cancel();
}
