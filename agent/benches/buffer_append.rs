//! How fast the buffer takes samples, and how many bytes a reading costs on disk.
//!
//! Run: `cargo bench -p simpul-agent --bench buffer_append`. Prints figures; no harness.
//! - through the writer (default 1 s flush): 300,000 samples pushed as fast as possible
//!   from three fake sensors, timed until the writer has committed them all;
//! - raw `Buffer::append` at several batch sizes (each batch is one commit, one fsync);
//! - appends at the quota, where every commit also evicts;
//! - file bytes per reading.

use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_agent::Sample;
use simpul_agent::buffer::{Buffer, BufferOptions, WriterProgress, spawn_writer_with_progress};
use simpul_agent::config::Eviction;
use simpul_protocol::{BootId, ReadingTime};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const WRITER_SAMPLES: u64 = 300_000;
const SENSORS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    println!("buffer_append: temp dir {}", dir.path().display());
    through_the_writer(&dir.path().join("writer.db"));
    raw_appends(dir.path());
    at_the_quota(dir.path());
}

/// A sensor's samples: shared strings, a value and a time that move like a real series.
fn sensor_samples(sensor: usize, n: u64) -> impl Iterator<Item = Sample> {
    let name: Arc<str> = Arc::from(format!("level-{sensor}"));
    let metric: Arc<str> = Arc::from("level");
    let unit: Arc<str> = Arc::from("cm");
    (0..n).map(move |i| Sample {
        sensor: name.clone(),
        metric: metric.clone(),
        unit: unit.clone(),
        value: 120.0 + (i % 50) as f64 * 0.1,
        time: ReadingTime {
            wall_ms: 1_760_000_000_000 + i as i64 * 1000,
            synced: true,
            boot_id: BootId([9; 16]),
            mono_ms: 60_000 + i * 1000,
        },
    })
}

fn through_the_writer(path: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let buffer = Buffer::open(path, BufferOptions::default()).expect("open");
        let (tx, rx) = mpsc::channel(16 * 1024);
        let (progress_tx, mut progress) = watch::channel(WriterProgress::default());
        let shutdown = CancellationToken::new();
        let writer = spawn_writer_with_progress(buffer, Duration::from_secs(1), rx, shutdown.clone(), progress_tx);
        let start = Instant::now();
        let per_sensor = WRITER_SAMPLES / SENSORS as u64;
        for s in 0..SENSORS {
            let tx = tx.clone();
            tokio::spawn(async move {
                for sample in sensor_samples(s, per_sensor) {
                    if tx.send(sample).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let total = per_sensor * SENSORS as u64;
        progress.wait_for(|p| p.received == total).await.expect("writer");
        let sent = start.elapsed();
        let done = *progress.wait_for(|p| p.appended == total).await.expect("writer");
        let committed = start.elapsed();
        shutdown.cancel();
        let summary = writer.await.expect("join").expect("writer");
        println!(
            "writer (1 s flush): {total} samples received in {:.2} s, committed in {:.2} s: {:.0} appends/s, {} commits",
            sent.as_secs_f64(),
            committed.as_secs_f64(),
            total as f64 / committed.as_secs_f64(),
            done.flushes.max(summary.flushes),
        );
        let stats = Buffer::open_read_only(path).expect("open").stats().expect("stats");
        let data = stats.used_bytes - stats.wal_bytes;
        println!(
            "file bytes per reading: {:.1} B in used pages ({} B for {} readings); {:.1} B counting the WAL and free pages",
            data as f64 / stats.readings as f64,
            data,
            stats.readings,
            stats.file_bytes as f64 / stats.readings as f64,
        );
    });
}

fn raw_appends(dir: &std::path::Path) {
    for (batch, commits) in [(1usize, 200usize), (10, 200), (100, 200), (1_000, 100), (10_000, 20)] {
        let path = dir.join(format!("raw-{batch}.db"));
        let mut buffer = Buffer::open(&path, BufferOptions::default()).expect("open");
        let mut samples = sensor_samples(0, (batch * commits) as u64);
        let start = Instant::now();
        for _ in 0..commits {
            let chunk: Vec<Sample> = samples.by_ref().take(batch).collect();
            buffer.append(chunk).expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "raw append, batch {batch:>6}: {:>9.0} appends/s, {:>6.0} commits/s",
            (batch * commits) as f64 / secs,
            commits as f64 / secs
        );
    }
}

fn at_the_quota(dir: &std::path::Path) {
    const QUOTA: u64 = 8 * 1024 * 1024;
    const BATCH: usize = 5_000;
    for eviction in [Eviction::OldestFirst, Eviction::ThinOldest] {
        let path = dir.join(format!("quota-{eviction:?}.db"));
        let mut buffer = Buffer::open(&path, BufferOptions { quota_bytes: QUOTA, eviction }).expect("open");
        let mut samples = sensor_samples(1, u64::MAX);
        // Fill to the quota, then time appends that each evict.
        while buffer.stats().expect("stats").dropped_total == 0 {
            buffer.append(samples.by_ref().take(BATCH).collect()).expect("append");
        }
        let commits = 60;
        let start = Instant::now();
        for _ in 0..commits {
            buffer.append(samples.by_ref().take(BATCH).collect()).expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        let stats = buffer.stats().expect("stats");
        println!(
            "at an 8 MiB quota, {eviction:?}, batch {BATCH}: {:.0} appends/s; {} B on disk ({:+.1}% of quota)",
            (BATCH * commits) as f64 / secs,
            stats.file_bytes,
            (stats.file_bytes as f64 / QUOTA as f64 - 1.0) * 100.0,
        );
    }
}
