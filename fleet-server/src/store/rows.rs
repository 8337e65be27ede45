//! Rows as both backends read them, into the store's types.

use simpul_protocol::DeviceId;

use super::sqlite::to_u64;
use super::{DeviceSummary, StoreError, StoredReading};

/// A deliverable reading as read: (cursor, device, seq, sensor, metric, unit, value,
/// time_ms, synced, time_corrected).
pub(crate) type ReadingRow = (i64, String, i64, String, String, String, Option<f64>, i64, bool, bool);

pub(crate) fn stored_reading(row: ReadingRow) -> Result<StoredReading, StoreError> {
    let (cursor, device, seq, sensor, metric, unit, value, time_ms, synced, time_corrected) = row;
    Ok(StoredReading {
        cursor: to_u64(cursor)?,
        device,
        seq: to_u64(seq)?,
        sensor,
        metric,
        unit,
        // SQLite stores NaN as NULL.
        value: value.unwrap_or(f64::NAN),
        time_ms,
        synced,
        time_corrected,
    })
}

/// A device row as read: (watermark, dropped, stored, malformed, online), with its count
/// of held readings.
pub(crate) fn device_summary(
    device: &DeviceId,
    row: (i64, i64, i64, i64, Option<bool>),
    held: i64,
) -> Result<DeviceSummary, StoreError> {
    let (watermark, dropped, stored, malformed, online) = row;
    Ok(DeviceSummary {
        device: device.to_string(),
        watermark: to_u64(watermark)?,
        dropped: to_u64(dropped)?,
        readings_stored: to_u64(stored)?,
        readings_held: to_u64(held)?,
        malformed: to_u64(malformed)?,
        online,
    })
}
