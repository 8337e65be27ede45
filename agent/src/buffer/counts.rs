//! The running per-series counts in `series` (readings held, readings evicted), kept in
//! step with `readings` so that stats never scan the readings table.

use std::collections::HashMap;

use rusqlite::Connection;

use super::BufferError;

/// Which running count of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Count {
    /// Readings now in the buffer.
    Readings,
    /// Readings ever evicted under the quota.
    Dropped,
}

/// Adds `by_series` (series id -> n; n may be negative) to one count.
pub(super) fn add(conn: &Connection, by_series: &HashMap<i64, i64>, count: Count) -> Result<(), BufferError> {
    let sql = match count {
        Count::Readings => "UPDATE series SET readings = readings + ?2 WHERE id = ?1",
        Count::Dropped => "UPDATE series SET dropped = dropped + ?2 WHERE id = ?1",
    };
    let mut update = conn.prepare_cached(sql)?;
    for (series, n) in by_series {
        update.execute([*series, *n])?;
    }
    Ok(())
}

/// How many readings with seq <= `through` each series has.
pub(super) fn through(conn: &Connection, through: i64) -> Result<HashMap<i64, i64>, BufferError> {
    let mut stmt = conn.prepare_cached("SELECT series, COUNT(*) FROM readings WHERE seq <= ?1 GROUP BY series")?;
    let rows = stmt.query_map([through], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The negation of `by_series`, to take counts away.
pub(super) fn negated(by_series: &HashMap<i64, i64>) -> HashMap<i64, i64> {
    by_series.iter().map(|(s, n)| (*s, -n)).collect()
}

/// All readings in the buffer (the sum of the running counts).
pub(super) fn total_readings(conn: &Connection) -> Result<u64, BufferError> {
    let n: i64 = conn.prepare_cached("SELECT COALESCE(SUM(readings), 0) FROM series")?.query_row([], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
