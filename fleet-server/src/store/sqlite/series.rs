//! Chart data: a device's per-minute aggregates from `series_minutes` (kept by the ingest
//! commit, docs/design/dashboard.md).

use rusqlite::{Connection, params};
use simpul_protocol::DeviceId;

use crate::store::series::{SeriesMinuteRow, fold_series, minute_of};
use crate::store::{SeriesPoints, StoreError};

/// Every series of `device` with its minutes from `since_ms` to `until_ms` (both
/// inclusive, by the minute they fall in), by sensor, metric and unit, minutes in order.
pub fn series_minutes(
    conn: &Connection,
    device: &DeviceId,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<SeriesPoints>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, s.sensor, s.metric, s.unit, m.minute, m.n, m.min, m.max, m.sum
         FROM devices d JOIN series s ON s.device_id = d.id
         LEFT JOIN series_minutes m ON m.series_id = s.id AND m.minute BETWEEN ?2 AND ?3
         WHERE d.name = ?1 ORDER BY s.sensor, s.metric, s.unit, s.id, m.minute",
    )?;
    let window = params![device.as_str(), minute_of(since_ms), minute_of(until_ms)];
    let rows = stmt.query_map(window, |r| {
        let minute = match (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?) {
            (Some(minute), Some(n), Some(min), Some(max), Some(sum)) => Some((minute, n, min, max, sum)),
            _ => None,
        };
        Ok(SeriesMinuteRow { id: r.get(0)?, sensor: r.get(1)?, metric: r.get(2)?, unit: r.get(3)?, minute })
    })?;
    fold_series(rows.map(|r| r.map_err(StoreError::from)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use simpul_protocol::{BootId, Reading, ReadingBatch, ReadingTime};

    use super::*;
    use crate::store::{Inbound, SqliteStore, Store};

    const T0: i64 = 1_795_000_040_000; // 20 s into a minute

    fn dev() -> DeviceId {
        DeviceId::new("kel-a").unwrap()
    }

    fn reading(seq: u64, sensor: &str, at_ms: i64, value: f64, synced: bool) -> Reading {
        Reading {
            seq,
            sensor: sensor.to_owned(),
            metric: "level".to_owned(),
            unit: "cm".to_owned(),
            value,
            time: ReadingTime { wall_ms: at_ms, synced, boot_id: BootId([9; 16]), mono_ms: seq },
        }
    }

    fn batch(readings: Vec<Reading>) -> Inbound {
        Inbound::Readings { device: dev(), batch: ReadingBatch { readings, dropped: vec![] } }
    }

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fleet.db")).unwrap();
        (dir, store)
    }

    /// (minute_ms, n, min, max, avg) of each point of the device's only series.
    fn points(store: &SqliteStore, sensor: &str) -> Vec<(i64, u64, f64, f64, f64)> {
        let series = store.series_minutes(&dev(), 0, i64::MAX / 2).unwrap();
        let s = series.iter().find(|s| s.sensor == sensor).unwrap();
        s.points.iter().map(|p| (p.minute_ms, p.n, p.min, p.max, p.avg)).collect()
    }

    #[test]
    fn each_minute_counts_its_readings_once_across_commits_and_repeats() {
        let (_dir, store) = open();
        let m0 = T0 / 60_000 * 60_000;
        let first = vec![
            reading(1, "river", T0, 10.0, true),
            reading(2, "river", T0 + 10_000, 14.0, true),
            reading(3, "river", T0 + 40_000, 20.0, true), // the next minute
            reading(4, "river", T0 + 41_000, f64::NAN, true),
        ];
        store.commit(&[batch(first.clone())], 1).unwrap();
        // The same batch again (a redelivery) and one more reading in the first minute.
        store.commit(&[batch(first), batch(vec![reading(5, "river", T0 + 1_000, 6.0, true)])], 2).unwrap();
        assert_eq!(points(&store, "river"), [(m0, 3, 6.0, 14.0, 10.0), (m0 + 60_000, 1, 20.0, 20.0, 20.0)]);
        // The window picks minutes by the minute its ends fall in.
        let later = store.series_minutes(&dev(), T0 + 45_000, T0 + 50_000).unwrap();
        assert_eq!(later[0].points.len(), 1);
        assert_eq!(later[0].points[0].minute_ms, m0 + 60_000);
    }

    #[test]
    fn held_readings_count_at_their_corrected_minute_when_delivered() {
        let (_dir, store) = open();
        // Taken while the box believed it was 1970; the sync says it was T0.
        store
            .commit(&[batch(vec![reading(1, "rain", 5_000, 2.5, false), reading(2, "rain", 6_000, 3.5, false)])], 1)
            .unwrap();
        assert_eq!(points(&store, "rain"), [], "held, not charted yet");
        let sync = Inbound::ClockSynced { device: dev(), boot_id: BootId([9; 16]), offset_ms: T0 - 5_000 };
        store.commit(&[sync], 2).unwrap();
        assert_eq!(points(&store, "rain"), [(T0 / 60_000 * 60_000, 2, 2.5, 3.5, 3.0)]);
    }

    #[test]
    fn every_series_of_the_device_is_listed_even_without_points_in_the_window() {
        let (_dir, store) = open();
        store.commit(&[batch(vec![reading(1, "river", T0, 1.0, true), reading(2, "tank", T0, 2.0, true)])], 1).unwrap();
        let series = store.series_minutes(&dev(), 0, 1000).unwrap();
        assert_eq!(
            series.iter().map(|s| (s.sensor.as_str(), s.points.len())).collect::<Vec<_>>(),
            [("river", 0), ("tank", 0)]
        );
        assert!(store.series_minutes(&DeviceId::new("kel-zz").unwrap(), 0, i64::MAX / 2).unwrap().is_empty());
    }
}
