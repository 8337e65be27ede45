//! The writer task: one commit per flush interval, nothing committed early, everything
//! pending committed at shutdown. Time is paused; the tests await events, never sleep.

mod buffer_support;

use std::time::Duration;

use simpul_agent::buffer::{Buffer, WriterProgress, spawn_writer, spawn_writer_with_progress};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use buffer_support::{open_unlimited, samples, temp_buffer_path};

const FLUSH: Duration = Duration::from_secs(1);

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    tx: mpsc::Sender<simpul_agent::Sample>,
    progress: watch::Receiver<WriterProgress>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<simpul_agent::buffer::WriterSummary, simpul_agent::buffer::BufferError>>,
}

fn start() -> Harness {
    let (dir, path) = temp_buffer_path();
    let buffer = open_unlimited(&path);
    let (tx, rx) = mpsc::channel(1024);
    let (progress_tx, progress) = watch::channel(WriterProgress::default());
    let shutdown = CancellationToken::new();
    let handle = spawn_writer_with_progress(buffer, FLUSH, rx, shutdown.clone(), progress_tx);
    Harness { _dir: dir, path, tx, progress, shutdown, handle }
}

impl Harness {
    async fn send(&mut self, n: usize) {
        let before = self.progress.borrow().received;
        for s in samples(&["level-1", "rain"], 0, n) {
            self.tx.send(s).await.expect("writer is running");
        }
        let want = before + n as u64;
        self.progress.wait_for(|p| p.received == want).await.expect("writer is running");
    }

    async fn flushed(&mut self, flushes: u64) -> WriterProgress {
        *self.progress.wait_for(|p| p.flushes == flushes).await.expect("writer is running")
    }

    /// Readings committed, as another process (`simpul-agent buffer stats`) sees them.
    fn committed(&self) -> u64 {
        Buffer::open_read_only(&self.path).expect("open read-only").stats().expect("stats").readings
    }
}

#[tokio::test(start_paused = true)]
async fn samples_are_committed_after_one_flush_interval_not_before() {
    let mut h = start();
    h.send(50).await;
    assert_eq!(h.committed(), 0, "nothing is committed before the interval ends");
    tokio::time::advance(FLUSH - Duration::from_millis(1)).await;
    assert_eq!(h.progress.borrow().flushes, 0);
    assert_eq!(h.committed(), 0, "nor just before");
    tokio::time::advance(Duration::from_millis(1)).await;
    let p = h.flushed(1).await;
    assert_eq!((p.appended, p.last_seq), (50, Some(50)));
    assert_eq!(h.committed(), 50);
    h.shutdown.cancel();
    let summary = h.handle.await.expect("join").expect("writer");
    assert_eq!((summary.appended, summary.flushes), (50, 1));
}

#[tokio::test(start_paused = true)]
async fn one_transaction_is_committed_per_flush_interval() {
    let mut h = start();
    for interval in 1..=3u64 {
        // Samples arriving in several bursts within one interval...
        for _ in 0..4 {
            h.send(25).await;
        }
        tokio::time::advance(FLUSH).await;
        // ...are committed together, in one transaction.
        let p = h.flushed(interval).await;
        assert_eq!(p.appended, interval * 100);
        assert_eq!(h.committed(), interval * 100);
    }
    // An interval with nothing received commits nothing.
    tokio::time::advance(FLUSH * 3).await;
    assert_eq!(h.progress.borrow().flushes, 3);
    h.shutdown.cancel();
    let summary = h.handle.await.expect("join").expect("writer");
    assert_eq!((summary.appended, summary.flushes, summary.retried), (300, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_everything_pending() {
    let mut h = start();
    h.send(70).await;
    // More samples queued in the channel that the writer has not taken yet.
    for s in samples(&["rain"], 0, 30) {
        h.tx.send(s).await.expect("writer is running");
    }
    h.shutdown.cancel();
    let summary = h.handle.await.expect("join").expect("writer");
    assert_eq!((summary.appended, summary.flushes), (100, 1));
    let stats = Buffer::open_read_only(&h.path).expect("open read-only").stats().expect("stats");
    assert_eq!((stats.readings, stats.last_seq), (100, Some(100)));
}

#[tokio::test(start_paused = true)]
async fn closing_the_channel_flushes_and_ends_the_writer() {
    let (_dir, path) = temp_buffer_path();
    let (tx, rx) = mpsc::channel(64);
    let handle = spawn_writer(open_unlimited(&path), FLUSH, rx, CancellationToken::new());
    for s in samples(&["level-1"], 0, 40) {
        tx.send(s).await.expect("writer is running");
    }
    drop(tx);
    let summary = handle.await.expect("join").expect("writer");
    assert_eq!((summary.appended, summary.flushes), (40, 1));
    // The writer let go of the file: it can be opened for writing again, seqs go on.
    let mut buffer = open_unlimited(&path);
    let range = buffer.append(samples(&["level-1"], 0, 1)).expect("append").expect("range");
    assert_eq!(range.first, 41);
}

#[tokio::test(start_paused = true)]
async fn read_only_stats_are_available_while_the_writer_holds_the_file() {
    let mut h = start();
    h.send(10).await;
    tokio::time::advance(FLUSH).await;
    h.flushed(1).await;
    let reader = Buffer::open_read_only(&h.path).expect("open read-only while the writer runs");
    let stats = reader.stats().expect("stats");
    assert_eq!((stats.readings, stats.next_seq), (10, 11));
    assert!(stats.quota_bytes > 0, "the writer's quota is visible to a reader");
    assert!(stats.to_string().contains("level-1"));
    // The reader keeps seeing new commits.
    h.send(5).await;
    tokio::time::advance(FLUSH).await;
    h.flushed(2).await;
    assert_eq!(reader.stats().expect("stats").readings, 15);
    h.shutdown.cancel();
    h.handle.await.expect("join").expect("writer");
}
