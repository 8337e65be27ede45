//! Chart data: a device's per-minute aggregates from `series_minutes` (kept by the ingest
//! commit, docs/design/dashboard.md).

use postgres::Client;
use simpul_protocol::DeviceId;

use crate::store::series::{SeriesMinuteRow, fold_series, minute_of};
use crate::store::{SeriesPoints, StoreError};

/// Every series of `device` with its minutes from `since_ms` to `until_ms` (both
/// inclusive, by the minute they fall in), by sensor, metric and unit, minutes in order.
pub fn series_minutes(
    client: &mut Client,
    device: &DeviceId,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<SeriesPoints>, StoreError> {
    // COLLATE "C": the order SQLite's BINARY collation gives.
    let rows = client.query(
        r#"SELECT s.id, s.sensor, s.metric, s.unit, m.minute, m.n, m.min, m.max, m.sum
         FROM devices d JOIN series s ON s.device_id = d.id
         LEFT JOIN series_minutes m ON m.series_id = s.id AND m.minute BETWEEN $2 AND $3
         WHERE d.name = $1
         ORDER BY s.sensor COLLATE "C", s.metric COLLATE "C", s.unit COLLATE "C", s.id, m.minute"#,
        &[&device.as_str(), &minute_of(since_ms), &minute_of(until_ms)],
    )?;
    fold_series(rows.iter().map(|r| {
        let minute = match (r.try_get(4)?, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?, r.try_get(8)?) {
            (Some(minute), Some(n), Some(min), Some(max), Some(sum)) => Some((minute, n, min, max, sum)),
            _ => None,
        };
        Ok(SeriesMinuteRow {
            id: r.try_get(0)?,
            sensor: r.try_get(1)?,
            metric: r.try_get(2)?,
            unit: r.try_get(3)?,
            minute,
        })
    }))
}
