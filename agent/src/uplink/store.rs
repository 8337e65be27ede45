//! The uplink's own connection to the buffer file, used off the async runtime.
//!
//! The writer task appends through its connection; this one reads batches and deletes
//! what the fleet acknowledged. SQLite's WAL and busy timeout let both work on one file.

use std::sync::{Arc, Mutex};

use simpul_protocol::ReadingBatch;

use super::UplinkError;
use super::cursors::Read;
use crate::buffer::Buffer;

/// A batch read for one [`Read`], encoded for the wire.
#[derive(Debug)]
pub(super) struct Fetched {
    /// `batch.encode()`; empty when there is nothing to send.
    pub payload: Vec<u8>,
    /// Readings in the batch.
    pub readings: usize,
    /// The lowest seq the batch holds (a reading or a dropped range).
    pub first: Option<u64>,
    /// The highest seq the batch holds.
    pub covered: Option<u64>,
    /// The read hit its limit and nothing was clipped: more may follow at once.
    pub full: bool,
}

/// The uplink's buffer connection.
#[derive(Debug, Clone)]
pub(super) struct Store {
    buffer: Arc<Mutex<Buffer>>,
}

impl Store {
    pub fn new(buffer: Buffer) -> Store {
        Store { buffer: Arc::new(Mutex::new(buffer)) }
    }

    /// Runs `f` on the buffer on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Buffer) -> Result<T, crate::buffer::BufferError> + Send + 'static,
    ) -> Result<T, UplinkError> {
        let buffer = Arc::clone(&self.buffer);
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = buffer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await?;
        Ok(result?)
    }

    /// The highest seq the buffer ever gave (0 when none).
    pub async fn newest_seq(&self) -> Result<u64, UplinkError> {
        self.with(|b| Ok(b.stats()?.next_seq.saturating_sub(1))).await
    }

    /// Deletes everything through `watermark`; returns how many readings went.
    pub async fn delete_through(&self, watermark: u64) -> Result<u64, UplinkError> {
        self.with(move |b| b.delete_through(watermark)).await
    }

    /// Reads and encodes the batch for `read`, at most `limit` readings.
    pub async fn fetch(&self, read: Read, limit: usize) -> Result<Fetched, UplinkError> {
        self.with(move |b| {
            let mut batch = b.read_batch(read.after, limit)?;
            let got = batch.readings.len();
            if let Some(through) = read.through {
                clip(&mut batch, through);
            }
            let full = got == limit && batch.readings.len() == got;
            Ok(fetched(&batch, full))
        })
        .await
    }
}

/// Keeps only seqs <= `through`.
fn clip(batch: &mut ReadingBatch, through: u64) {
    batch.readings.retain(|r| r.seq <= through);
    batch.dropped.retain(|d| d.first <= through);
    for d in &mut batch.dropped {
        d.last = d.last.min(through);
    }
}

fn fetched(batch: &ReadingBatch, full: bool) -> Fetched {
    let seqs = batch.readings.iter().map(|r| r.seq);
    let first = seqs.clone().chain(batch.dropped.iter().map(|d| d.first)).min();
    let covered = seqs.chain(batch.dropped.iter().map(|d| d.last)).max();
    let payload = if first.is_some() { batch.encode() } else { Vec::new() };
    Fetched { payload, readings: batch.readings.len(), first, covered, full }
}

#[cfg(test)]
mod tests {
    use simpul_protocol::SeqRange;

    use super::*;

    #[test]
    fn clipping_cuts_readings_and_ranges_at_the_end_of_the_backlog() {
        let mut batch = ReadingBatch {
            readings: vec![],
            dropped: vec![
                SeqRange { first: 2, last: 4 },
                SeqRange { first: 8, last: 12 },
                SeqRange { first: 20, last: 21 },
            ],
        };
        clip(&mut batch, 10);
        assert_eq!(batch.dropped, vec![SeqRange { first: 2, last: 4 }, SeqRange { first: 8, last: 10 }]);
        let f = fetched(&batch, false);
        assert_eq!((f.first, f.covered, f.readings), (Some(2), Some(10), 0));
        assert!(!f.payload.is_empty(), "dropped ranges alone are worth a batch");
        assert!(fetched(&ReadingBatch::default(), false).payload.is_empty());
    }
}
