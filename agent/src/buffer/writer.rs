//! The writer task: collects samples from the sensors' channel and commits them once per
//! flush interval, in one transaction, off the async runtime.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Buffer, BufferError};
use crate::Sample;

/// What the writer did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriterSummary {
    /// Samples committed to the buffer.
    pub appended: u64,
    /// Transactions committed (one per flush interval with samples, plus the last).
    pub flushes: u64,
    /// Flushes that failed with a retryable error (their samples were kept and retried).
    pub retried: u64,
}

/// The writer's progress so far, published after every receive and every flush.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriterProgress {
    /// Samples taken from the channel.
    pub received: u64,
    /// Samples committed.
    pub appended: u64,
    /// Transactions committed.
    pub flushes: u64,
    /// The highest seq committed.
    pub last_seq: Option<u64>,
}

/// Spawns the writer: see [`spawn_writer_with_progress`].
pub fn spawn_writer(
    buffer: Buffer,
    flush_interval: Duration,
    rx: mpsc::Receiver<Sample>,
    shutdown: CancellationToken,
) -> JoinHandle<Result<WriterSummary, BufferError>> {
    spawn_writer_with_progress(buffer, flush_interval, rx, shutdown, watch::Sender::new(WriterProgress::default()))
}

/// Spawns the writer. Every `flush_interval` (tokio time) it commits the samples it has in
/// one transaction, on the blocking pool, while it goes on receiving. A retryable error
/// (busy, disk full) keeps the samples for the next interval; any other ends the task.
/// When `rx` closes or `shutdown` is cancelled it drains `rx`, flushes once more and
/// returns what it did.
pub fn spawn_writer_with_progress(
    buffer: Buffer,
    flush_interval: Duration,
    rx: mpsc::Receiver<Sample>,
    shutdown: CancellationToken,
    progress: watch::Sender<WriterProgress>,
) -> JoinHandle<Result<WriterSummary, BufferError>> {
    let writer = Writer { buffer: Some(buffer), pending: Vec::new(), summary: WriterSummary::default(), progress };
    tokio::spawn(writer.run(flush_interval, rx, shutdown))
}

/// The result of one flush on the blocking pool: the buffer comes back with it.
type Flushed = (Buffer, Vec<Sample>, Result<usize, BufferError>);

struct Writer {
    /// `None` while a flush has it on the blocking pool.
    buffer: Option<Buffer>,
    pending: Vec<Sample>,
    summary: WriterSummary,
    progress: watch::Sender<WriterProgress>,
}

impl Writer {
    async fn run(
        mut self,
        flush_interval: Duration,
        mut rx: mpsc::Receiver<Sample>,
        shutdown: CancellationToken,
    ) -> Result<WriterSummary, BufferError> {
        let period = flush_interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut in_flight: Option<JoinHandle<Flushed>> = None;
        // A tick that came while a flush was still running: flush as soon as it ends.
        let mut flush_due = false;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                joined = wait(&mut in_flight) => {
                    in_flight = None;
                    self.finish_flush(joined)?;
                    if std::mem::take(&mut flush_due) {
                        in_flight = self.start_flush();
                    }
                }
                _ = tick.tick() => {
                    if in_flight.is_none() {
                        in_flight = self.start_flush();
                    } else {
                        flush_due = true;
                    }
                }
                received = rx.recv() => match received {
                    Some(sample) => self.receive(sample),
                    None => break,
                },
            }
        }
        if let Some(handle) = in_flight.take() {
            self.finish_flush(handle.await)?;
        }
        rx.close();
        while let Ok(sample) = rx.try_recv() {
            self.receive(sample);
        }
        if let Some(handle) = self.start_flush() {
            self.finish_flush(handle.await)?;
        }
        if !self.pending.is_empty() {
            return Err(BufferError::WriterTask(format!(
                "{} samples could not be flushed at shutdown",
                self.pending.len()
            )));
        }
        Ok(self.summary)
    }

    fn receive(&mut self, sample: Sample) {
        self.pending.push(sample);
        self.progress.send_modify(|p| p.received += 1);
    }

    /// Moves the buffer and the pending samples to the blocking pool, if there are any.
    fn start_flush(&mut self) -> Option<JoinHandle<Flushed>> {
        if self.pending.is_empty() {
            return None;
        }
        let mut buffer = self.buffer.take()?;
        let batch = std::mem::take(&mut self.pending);
        Some(tokio::task::spawn_blocking(move || {
            let n = batch.len();
            match buffer.append_samples(&batch) {
                Ok(range) => {
                    if let Some(r) = range {
                        // Printed only after the commit: tests read it as proof of durability.
                        tracing::debug!(first = r.first, last = r.last, count = n, "committed");
                    }
                    (buffer, Vec::new(), Ok(n))
                }
                Err(e) => (buffer, batch, Err(e)),
            }
        }))
    }

    fn finish_flush(&mut self, joined: Result<Flushed, tokio::task::JoinError>) -> Result<(), BufferError> {
        let (buffer, mut unflushed, result) = joined.map_err(|e| BufferError::WriterTask(e.to_string()))?;
        self.buffer = Some(buffer);
        match result {
            Ok(n) => {
                self.summary.appended += n as u64;
                self.summary.flushes += 1;
                let last_seq = self.buffer.as_ref().and_then(Buffer::last_given_seq);
                self.progress.send_modify(|p| {
                    p.appended += n as u64;
                    p.flushes += 1;
                    p.last_seq = last_seq;
                });
                Ok(())
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, samples = unflushed.len(), "buffer flush failed; retrying next interval");
                self.summary.retried += 1;
                unflushed.append(&mut self.pending);
                self.pending = unflushed;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Waits for the flush in flight, or forever if there is none.
async fn wait(in_flight: &mut Option<JoinHandle<Flushed>>) -> Result<Flushed, tokio::task::JoinError> {
    match in_flight {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

impl Buffer {
    /// The highest seq this connection has given, if any.
    fn last_given_seq(&self) -> Option<u64> {
        self.next_seq.checked_sub(1).filter(|s| *s > 0)
    }
}
