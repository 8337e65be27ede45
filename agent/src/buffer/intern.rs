//! Strings and boot ids stored once: a reading row refers to them by small integers.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;
use simpul_protocol::BootId;

use super::BufferError;

/// A series is what one value of a reading measures.
type SeriesKey = (Arc<str>, Arc<str>, Arc<str>);

/// Caches of `series` and `boots` ids. Rows of those tables are never deleted, so a cached
/// id stays right, unless the transaction that inserted it rolled back: then the owner
/// calls [`Interner::clear`].
#[derive(Debug, Default)]
pub(super) struct Interner {
    series: HashMap<SeriesKey, i64>,
    boots: HashMap<BootId, i64>,
}

impl Interner {
    /// Forgets every id (after a rolled-back transaction).
    pub(super) fn clear(&mut self) {
        self.series.clear();
        self.boots.clear();
    }

    /// The id of (sensor, metric, unit), inserting the row if it is new.
    pub(super) fn series(
        &mut self,
        conn: &Connection,
        sensor: &Arc<str>,
        metric: &Arc<str>,
        unit: &Arc<str>,
    ) -> Result<i64, BufferError> {
        let key = (sensor.clone(), metric.clone(), unit.clone());
        if let Some(id) = self.series.get(&key) {
            return Ok(*id);
        }
        let args = rusqlite::params![&**sensor, &**metric, &**unit];
        conn.prepare_cached("INSERT INTO series (sensor, metric, unit) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
            .execute(args)?;
        let id = conn
            .prepare_cached("SELECT id FROM series WHERE sensor = ?1 AND metric = ?2 AND unit = ?3")?
            .query_row(args, |r| r.get(0))?;
        self.series.insert(key, id);
        Ok(id)
    }

    /// The id of a boot, inserting the row if it is new.
    pub(super) fn boot(&mut self, conn: &Connection, boot: BootId) -> Result<i64, BufferError> {
        if let Some(id) = self.boots.get(&boot) {
            return Ok(*id);
        }
        conn.prepare_cached("INSERT INTO boots (boot_id) VALUES (?1) ON CONFLICT DO NOTHING")?.execute([boot.0])?;
        let id = conn.prepare_cached("SELECT id FROM boots WHERE boot_id = ?1")?.query_row([boot.0], |r| r.get(0))?;
        self.boots.insert(boot, id);
        Ok(id)
    }
}

/// A seq as SQLite stores it (an `INTEGER PRIMARY KEY` is an i64; seqs never get near).
pub(super) fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored non-negative integer back as a u64 (a negative one, which we never write, is 0).
pub(super) fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
