//! What is in the buffer: for the heartbeat, the status page and `simpul-agent buffer stats`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::intern::from_sql;
use super::{Buffer, BufferError, evict, schema};

/// A snapshot of the buffer. Cheap: it reads running counts, never scans readings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BufferStats {
    /// Readings held (flushed, not yet acknowledged, not evicted).
    pub readings: u64,
    /// The lowest seq held.
    pub first_seq: Option<u64>,
    /// The highest seq held.
    pub last_seq: Option<u64>,
    /// The seq the next reading will get.
    pub next_seq: u64,
    /// Wall time of the oldest reading held (the one with `first_seq`), ms since the epoch.
    pub oldest_wall_ms: Option<i64>,
    /// Size on disk: the database file plus its WAL.
    pub file_bytes: u64,
    /// What the quota counts: pages holding data plus the WAL.
    pub used_bytes: u64,
    /// The WAL alone.
    pub wal_bytes: u64,
    /// The quota.
    pub quota_bytes: u64,
    /// Readings ever evicted under the quota.
    pub dropped_total: u64,
    /// Evicted ranges the fleet has not acknowledged yet.
    pub dropped_ranges: u64,
    /// Readings ever evicted, by sensor.
    pub dropped_by_sensor: BTreeMap<String, u64>,
    /// Readings held, by sensor.
    pub readings_by_sensor: BTreeMap<String, u64>,
}

impl Buffer {
    /// A consistent snapshot of the buffer's counts and sizes.
    pub fn stats(&self) -> Result<BufferStats, BufferError> {
        let tx = self.conn.unchecked_transaction()?;
        let (first_seq, last_seq, oldest_wall_ms, dropped_ranges): (Option<i64>, Option<i64>, Option<i64>, i64) = tx
            .query_row(
                "SELECT (SELECT MIN(seq) FROM readings), (SELECT MAX(seq) FROM readings),
                        (SELECT wall_ms FROM readings ORDER BY seq LIMIT 1), (SELECT COUNT(*) FROM dropped)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
        let mut readings_by_sensor = BTreeMap::new();
        let mut dropped_by_sensor = BTreeMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT sensor, SUM(readings), SUM(dropped) FROM series GROUP BY sensor ORDER BY sensor",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
            for row in rows {
                let (sensor, held, dropped) = row?;
                if held > 0 {
                    readings_by_sensor.insert(sensor.clone(), from_sql(held));
                }
                if dropped > 0 {
                    dropped_by_sensor.insert(sensor, from_sql(dropped));
                }
            }
        }
        let next_seq = from_sql(schema::meta_get(&tx, "next_seq")?).max(1);
        let data_bytes = evict::used_data_bytes(&tx)?;
        tx.finish()?;
        let db_bytes = file_len(&self.path);
        let wal_bytes = file_len(&wal_path(&self.path));
        Ok(BufferStats {
            readings: readings_by_sensor.values().sum(),
            first_seq: first_seq.map(from_sql),
            last_seq: last_seq.map(from_sql),
            next_seq,
            oldest_wall_ms,
            file_bytes: db_bytes + wal_bytes,
            used_bytes: data_bytes + wal_bytes,
            wal_bytes,
            quota_bytes: self.opts.quota_bytes,
            dropped_total: dropped_by_sensor.values().sum(),
            dropped_ranges: from_sql(dropped_ranges),
            dropped_by_sensor,
            readings_by_sensor,
        })
    }
}

/// The WAL file SQLite keeps beside `db`.
pub(super) fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// A file's length, 0 if it does not exist.
pub(super) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl fmt::Display for BufferStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        writeln!(f, "{:<16} {}", "readings", self.readings)?;
        writeln!(f, "{:<16} {} .. {}", "seqs held", opt(self.first_seq), opt(self.last_seq))?;
        writeln!(f, "{:<16} {}", "next seq", self.next_seq)?;
        let oldest = self.oldest_wall_ms.map_or_else(|| "-".to_owned(), describe_wall_ms);
        writeln!(f, "{:<16} {oldest}", "oldest reading")?;
        writeln!(
            f,
            "{:<16} {} on disk, {} counted (WAL {}) of {} quota",
            "size",
            bytesize::ByteSize::b(self.file_bytes),
            bytesize::ByteSize::b(self.used_bytes),
            bytesize::ByteSize::b(self.wal_bytes),
            bytesize::ByteSize::b(self.quota_bytes),
        )?;
        writeln!(
            f,
            "{:<16} {} readings ever; {} ranges not yet acknowledged",
            "evicted", self.dropped_total, self.dropped_ranges
        )?;
        let sensors: std::collections::BTreeSet<&String> =
            self.readings_by_sensor.keys().chain(self.dropped_by_sensor.keys()).collect();
        if !sensors.is_empty() {
            writeln!(f)?;
            writeln!(f, "{:<24} {:>12} {:>12}", "sensor", "held", "evicted")?;
            for s in sensors {
                let held = self.readings_by_sensor.get(s).copied().unwrap_or(0);
                let dropped = self.dropped_by_sensor.get(s).copied().unwrap_or(0);
                writeln!(f, "{:<24} {held:>12} {dropped:>12}", s.escape_debug().to_string())?;
            }
        }
        Ok(())
    }
}

/// `2026-11-23T02:41:05.123Z (12s ago)`; the age is left out when the clock disagrees.
fn describe_wall_ms(ms: i64) -> String {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let Ok(ms_u) = u64::try_from(ms) else { return format!("{ms} ms before the epoch (clock not set)") };
    let at = UNIX_EPOCH + Duration::from_millis(ms_u);
    let when = humantime::format_rfc3339_millis(at);
    match SystemTime::now().duration_since(at) {
        Ok(age) => format!("{when} ({} ago)", humantime::format_duration(Duration::from_secs(age.as_secs()))),
        Err(_) => format!("{when} (in the future by this clock)"),
    }
}
