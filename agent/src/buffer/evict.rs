//! The disk quota: measuring the file and evicting readings by the configured policy.
//!
//! Eviction runs inside the append's transaction, so the commit that pushed the file over
//! the quota also brings it back under, with one fsync. SQLite reuses the freed pages for
//! later appends, so the file stays near the quota instead of growing.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::counts::{self, Count};
use super::{BufferError, BufferOptions};
use crate::config::Eviction;

/// Part of the quota set aside for the WAL: SQLite checkpoints it at this size and
/// truncates it back to it, so the data may use the rest.
pub(super) fn wal_allowance(quota_bytes: u64) -> u64 {
    (quota_bytes / 8).clamp(64 * 1024, 16 * 1024 * 1024)
}

/// Bytes the data may use: the quota less the WAL allowance.
pub(super) fn data_budget(quota_bytes: u64) -> u64 {
    quota_bytes.saturating_sub(wal_allowance(quota_bytes))
}

/// Bytes in pages that hold data: `(page_count - freelist_count) * page_size`. Inside a
/// transaction this sees the transaction's own changes.
pub(super) fn used_data_bytes(conn: &Connection) -> Result<u64, BufferError> {
    let pragma = |name: &str| -> Result<u64, BufferError> {
        let v: i64 = conn.pragma_query_value(None, name, |r| r.get(0))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(pages.saturating_mul(pragma("page_size")?))
}

/// Rounds of eviction one append may run (each re-measures the file).
const MAX_ROUNDS: usize = 64;
/// Thinning rounds one append may run before `thin-oldest` falls back to deleting the
/// oldest. (It also falls back when thinning finds nothing to drop: every series is down
/// to one reading in the oldest part.) A round may free no whole page on its own, since
/// a page holds a hundred or so readings, so this is more than one or two.
const MAX_THIN_ROUNDS: usize = 16;
/// Rows a thinning step reads into memory at a time.
const THIN_CHUNK: i64 = 1024;

/// Evicts readings until the used data bytes are under the budget (with 1/16 headroom so
/// that the next few appends do not evict again). Returns how many readings it evicted.
pub(super) fn enforce(conn: &Connection, opts: BufferOptions) -> Result<u64, BufferError> {
    let budget = data_budget(opts.quota_bytes);
    let mut used = used_data_bytes(conn)?;
    if used <= budget {
        return Ok(0);
    }
    let low_water = budget - budget / 16;
    let mut evicted = 0;
    let mut thin_rounds = match opts.eviction {
        Eviction::ThinOldest => MAX_THIN_ROUNDS,
        Eviction::OldestFirst => 0,
    };
    for _ in 0..MAX_ROUNDS {
        let rows = counts::total_readings(conn)?;
        if rows == 0 {
            break;
        }
        let per_row = (used / rows).max(1);
        let n = used.saturating_sub(low_water).div_ceil(per_row).clamp(1, rows);
        let mut dropped = 0;
        if thin_rounds > 0 {
            thin_rounds -= 1;
            dropped = thin_oldest(conn, n)?;
        }
        if dropped == 0 {
            dropped = delete_oldest(conn, n)?;
        }
        evicted += dropped;
        used = used_data_bytes(conn)?;
        if used <= low_water || dropped == 0 {
            break;
        }
    }
    if evicted > 0 {
        tracing::warn!(
            evicted,
            used_bytes = used,
            quota_bytes = opts.quota_bytes,
            "buffer over quota: evicted readings"
        );
    }
    Ok(evicted)
}

/// `oldest-first`: deletes the `n` oldest readings. Returns how many it deleted.
fn delete_oldest(conn: &Connection, n: u64) -> Result<u64, BufferError> {
    let offset = i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
    let bounds: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT (SELECT MIN(seq) FROM readings),
                    COALESCE((SELECT seq FROM readings ORDER BY seq LIMIT 1 OFFSET ?1), (SELECT MAX(seq) FROM readings))",
        )?
        .query_row([offset], |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)))?;
    let Some((first, last)) = bounds else {
        return Ok(0);
    };
    let by_series = counts::through(conn, last)?;
    let deleted = conn.prepare_cached("DELETE FROM readings WHERE seq <= ?1")?.execute([last])?;
    counts::add(conn, &counts::negated(&by_series), Count::Readings)?;
    counts::add(conn, &by_series, Count::Dropped)?;
    record_dropped(conn, first, last)?;
    Ok(u64::try_from(deleted).unwrap_or(0))
}

/// A reading row as stored, for thinning's rewrite.
struct Row {
    seq: i64,
    series: i64,
    boot: i64,
    wall_ms: i64,
    mono_ms: i64,
    synced: bool,
    value: Option<f64>,
}

/// `thin-oldest`: in the oldest `2n` readings, deletes every other reading of each series
/// (keeping each series' first, so the time span stays). Returns how many it deleted.
///
/// Deleting every other row leaves pages half full, which SQLite does not free; so each
/// chunk is deleted whole and its kept rows written back, packing them into fewer pages.
fn thin_oldest(conn: &Connection, n: u64) -> Result<u64, BufferError> {
    let offset = i64::try_from(n.saturating_mul(2).saturating_sub(1)).unwrap_or(i64::MAX);
    let end: Option<i64> = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM readings ORDER BY seq LIMIT 1 OFFSET ?1), (SELECT MAX(seq) FROM readings))",
        )?
        .query_row([offset], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(end) = end else { return Ok(0) };
    // Per series: whether its next reading in the region is dropped.
    let mut drop_next: HashMap<i64, bool> = HashMap::new();
    let mut dropped_by_series: HashMap<i64, i64> = HashMap::new();
    let mut dropped_total = 0u64;
    let mut cursor = i64::MIN;
    loop {
        let chunk = read_chunk(conn, cursor, end)?;
        let (Some(first), Some(last)) = (chunk.first().map(|r| r.seq), chunk.last().map(|r| r.seq)) else {
            break;
        };
        cursor = last;
        let (keep, drop): (Vec<Row>, Vec<Row>) = chunk.into_iter().partition(|r| {
            let d = drop_next.entry(r.series).or_insert(false);
            let keep = !*d;
            *d = !*d;
            keep
        });
        if drop.is_empty() {
            continue;
        }
        conn.prepare_cached("DELETE FROM readings WHERE seq >= ?1 AND seq <= ?2")?.execute([first, last])?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO readings (seq, series, boot, wall_ms, mono_ms, synced, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in &keep {
            insert.execute(params![r.seq, r.series, r.boot, r.wall_ms, r.mono_ms, r.synced, r.value])?;
        }
        for r in &drop {
            *dropped_by_series.entry(r.series).or_default() += 1;
        }
        dropped_total += drop.len() as u64;
        for (a, b) in runs(drop.iter().map(|r| r.seq)) {
            record_dropped(conn, a, b)?;
        }
    }
    counts::add(conn, &counts::negated(&dropped_by_series), Count::Readings)?;
    counts::add(conn, &dropped_by_series, Count::Dropped)?;
    Ok(dropped_total)
}

fn read_chunk(conn: &Connection, after: i64, through: i64) -> Result<Vec<Row>, BufferError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, series, boot, wall_ms, mono_ms, synced, value FROM readings
         WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map([after, through, THIN_CHUNK], |r| {
        Ok(Row {
            seq: r.get(0)?,
            series: r.get(1)?,
            boot: r.get(2)?,
            wall_ms: r.get(3)?,
            mono_ms: r.get(4)?,
            synced: r.get(5)?,
            value: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Consecutive runs of an ascending sequence of seqs, as inclusive (first, last) pairs.
fn runs(seqs: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(s) => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Adds the evicted range `first..=last` to `dropped`, merged with any range it overlaps
/// or touches, so the table stays a set of disjoint, non-adjacent ranges.
fn record_dropped(conn: &Connection, first: i64, last: i64) -> Result<(), BufferError> {
    let (mut lo, mut hi) = (first, last);
    let before: Option<(i64, i64)> = conn
        .prepare_cached("SELECT first, last FROM dropped WHERE first < ?1 ORDER BY first DESC LIMIT 1")?
        .query_row([first], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((f, l)) = before.filter(|(_, l)| l.saturating_add(1) >= first) {
        lo = f;
        hi = hi.max(l);
        conn.prepare_cached("DELETE FROM dropped WHERE first = ?1")?.execute([f])?;
    }
    let touch = last.saturating_add(1);
    let after: Option<i64> = conn
        .prepare_cached("SELECT MAX(last) FROM dropped WHERE first >= ?1 AND first <= ?2")?
        .query_row([first, touch], |r| r.get(0))?;
    if let Some(l) = after {
        hi = hi.max(l);
        conn.prepare_cached("DELETE FROM dropped WHERE first >= ?1 AND first <= ?2")?.execute([first, touch])?;
    }
    conn.prepare_cached("INSERT INTO dropped (first, last) VALUES (?1, ?2)")?.execute([lo, hi])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_seqs() {
        assert_eq!(runs([1, 2, 3, 5, 7, 8].into_iter()), vec![(1, 3), (5, 5), (7, 8)]);
        assert!(runs(std::iter::empty()).is_empty());
    }

    #[test]
    fn the_wal_allowance_leaves_most_of_the_quota_to_data() {
        assert_eq!(data_budget(256 * 1024), 192 * 1024);
        assert_eq!(data_budget(256 << 20), (256 << 20) - (16 << 20));
        assert_eq!(data_budget(0), 0);
    }
}
