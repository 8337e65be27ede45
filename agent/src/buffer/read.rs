//! Reading batches for the uplink, and deleting what the fleet acknowledged.

use rusqlite::{OptionalExtension, TransactionBehavior};
use simpul_protocol::{BootId, Reading, ReadingBatch, ReadingTime, SeqRange};

use super::counts::{self, Count};
use super::intern::{from_sql, to_sql};
use super::{Buffer, BufferError};

impl Buffer {
    /// Up to `limit` readings with seq > `after_seq`, ascending, and the evicted ranges the
    /// fleet has not acknowledged that fall in the same span (clipped to seqs > `after_seq`;
    /// when the batch is not full, every such range after `after_seq`).
    pub fn read_batch(&self, after_seq: u64, limit: usize) -> Result<ReadingBatch, BufferError> {
        if limit == 0 {
            return Ok(ReadingBatch::default());
        }
        // One read transaction: readings and ranges from the same snapshot.
        let tx = self.conn.unchecked_transaction()?;
        let after = to_sql(after_seq);
        let mut stmt = tx.prepare_cached(
            "SELECT r.seq, s.sensor, s.metric, s.unit, r.value, r.wall_ms, r.synced, b.boot_id, r.mono_ms
             FROM readings r JOIN series s ON s.id = r.series JOIN boots b ON b.id = r.boot
             WHERE r.seq > ?1 ORDER BY r.seq LIMIT ?2",
        )?;
        let rows = stmt.query_map([after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(Reading {
                seq: from_sql(r.get(0)?),
                sensor: r.get(1)?,
                metric: r.get(2)?,
                unit: r.get(3)?,
                value: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
                time: ReadingTime {
                    wall_ms: r.get(5)?,
                    synced: r.get(6)?,
                    boot_id: BootId(r.get(7)?),
                    mono_ms: from_sql(r.get(8)?),
                },
            })
        })?;
        let readings: Vec<Reading> = rows.collect::<Result<_, _>>()?;
        let through = match readings.last() {
            Some(last) if readings.len() == limit => to_sql(last.seq),
            _ => i64::MAX,
        };
        let dropped = dropped_between(&tx, after, through)?;
        drop(stmt);
        tx.finish()?;
        Ok(ReadingBatch { readings, dropped })
    }

    /// The fleet durably stored everything <= `watermark`: deletes those readings and
    /// dropped ranges (a range across the watermark keeps its part above). Returns how
    /// many readings it deleted.
    pub fn delete_through(&mut self, watermark: u64) -> Result<u64, BufferError> {
        let w = to_sql(watermark);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let by_series = counts::through(&tx, w)?;
        let deleted = tx.prepare_cached("DELETE FROM readings WHERE seq <= ?1")?.execute([w])?;
        counts::add(&tx, &counts::negated(&by_series), Count::Readings)?;
        tx.prepare_cached("DELETE FROM dropped WHERE last <= ?1")?.execute([w])?;
        tx.prepare_cached("UPDATE dropped SET first = ?1 + 1 WHERE first <= ?1")?.execute([w])?;
        tx.commit()?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}

/// Dropped ranges with seqs in `after + 1 ..= through`, clipped to that span.
fn dropped_between(conn: &rusqlite::Connection, after: i64, through: i64) -> Result<Vec<SeqRange>, BufferError> {
    let clip = |(first, last): (i64, i64)| SeqRange {
        first: from_sql(first.max(after.saturating_add(1))),
        last: from_sql(last.min(through)),
    };
    let mut out = Vec::new();
    // A range that starts at or before `after` but reaches past it.
    let straddling: Option<(i64, i64)> = conn
        .prepare_cached("SELECT first, last FROM dropped WHERE first <= ?1 ORDER BY first DESC LIMIT 1")?
        .query_row([after], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    out.extend(straddling.filter(|(_, last)| *last > after).map(clip));
    let mut stmt =
        conn.prepare_cached("SELECT first, last FROM dropped WHERE first > ?1 AND first <= ?2 ORDER BY first")?;
    let rows = stmt.query_map([after, through], |r| Ok((r.get(0)?, r.get(1)?)))?;
    for row in rows {
        out.push(clip(row?));
    }
    Ok(out)
}
