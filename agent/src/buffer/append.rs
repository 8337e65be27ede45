//! Appending: one transaction stores a batch of samples, gives them seqs, moves
//! `next_seq` on and enforces the quota.

use std::collections::HashMap;

use rusqlite::{Connection, TransactionBehavior, params};
use simpul_protocol::SeqRange;

use super::counts::{self, Count};
use super::intern::{from_sql, to_sql};
use super::{Buffer, BufferError, evict, schema};
use crate::Sample;

impl Buffer {
    /// Stores `samples` in one transaction, giving them consecutive seqs, then evicts under
    /// the quota (in the same transaction). Returns the seqs given, or `None` for an empty
    /// batch. When this returns `Ok` the samples survive a power cut.
    pub fn append(&mut self, samples: Vec<Sample>) -> Result<Option<SeqRange>, BufferError> {
        self.append_samples(&samples)
    }

    /// [`Buffer::append`] by reference, so the writer keeps the batch to retry it.
    pub(super) fn append_samples(&mut self, samples: &[Sample]) -> Result<Option<SeqRange>, BufferError> {
        if samples.is_empty() {
            return Ok(None);
        }
        let result = self.append_in_transaction(samples);
        if result.is_err() {
            // The transaction rolled back: ids interned in it may not exist.
            self.interner.clear();
        }
        result.map(Some)
    }

    fn append_in_transaction(&mut self, samples: &[Sample]) -> Result<SeqRange, BufferError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let first = self.next_seq;
        let mut seq = first;
        let mut per_series: HashMap<i64, i64> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO readings (seq, series, boot, wall_ms, mono_ms, synced, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for s in samples {
                let series = self.interner.series(&tx, &s.sensor, &s.metric, &s.unit)?;
                let boot = self.interner.boot(&tx, s.time.boot_id)?;
                let value = (!s.value.is_nan()).then_some(s.value);
                insert.execute(params![
                    to_sql(seq),
                    series,
                    boot,
                    s.time.wall_ms,
                    to_sql(s.time.mono_ms),
                    s.time.synced,
                    value
                ])?;
                *per_series.entry(series).or_default() += 1;
                seq += 1;
            }
        }
        counts::add(&tx, &per_series, Count::Readings)?;
        schema::meta_set(&tx, "next_seq", to_sql(seq))?;
        evict::enforce(&tx, self.opts)?;
        tx.commit()?;
        self.next_seq = seq;
        Ok(SeqRange { first, last: seq - 1 })
    }
}

/// The next seq to give: `meta.next_seq`, but never at or below a seq already in the file
/// (so a damaged `meta` cannot make a seq be given twice).
pub(super) fn recover_next_seq(conn: &Connection) -> Result<u64, BufferError> {
    let meta = schema::meta_get(conn, "next_seq")?;
    let (max_reading, max_dropped): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT (SELECT MAX(seq) FROM readings), (SELECT MAX(last) FROM dropped)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let after_stored = max_reading.max(max_dropped).map_or(1, |m| m.saturating_add(1));
    Ok(from_sql(meta.max(after_stored).max(1)))
}
