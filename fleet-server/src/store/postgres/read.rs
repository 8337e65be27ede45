//! Reads: deliverable readings by cursor, device summaries, protocol events, cursors.

use postgres::Client;
use simpul_protocol::DeviceId;

use super::{to_i64, to_u64};
use crate::store::rows::{device_summary, stored_reading};
use crate::store::{DeviceSummary, ProtocolEvent, StoreError, StoredReading};

/// `limit` as a BIGINT.
pub(super) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub fn readings_after(client: &mut Client, after: u64, limit: usize) -> Result<Vec<StoredReading>, StoreError> {
    let rows = client.query(
        "SELECT r.cursor, d.name, r.seq, s.sensor, s.metric, s.unit, r.value, r.time_ms, r.synced,
                r.time_corrected
         FROM readings r JOIN devices d ON d.id = r.device_id JOIN series s ON s.id = r.series_id
         WHERE r.cursor > $1 ORDER BY r.cursor LIMIT $2",
        &[&to_i64(after)?, &limit_i64(limit)],
    )?;
    rows.iter()
        .map(|r| {
            stored_reading((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                r.try_get(7)?,
                r.try_get(8)?,
                r.try_get(9)?,
            ))
        })
        .collect()
}

pub fn device(client: &mut Client, device: &DeviceId) -> Result<Option<DeviceSummary>, StoreError> {
    let Some(r) = client.query_opt(
        "SELECT d.watermark, d.dropped, d.stored, d.malformed, d.online,
                (SELECT count(*) FROM held_readings h WHERE h.device_id = d.id)
         FROM devices d WHERE d.name = $1",
        &[&device.as_str()],
    )?
    else {
        return Ok(None);
    };
    let row = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
    Ok(Some(device_summary(device, row, r.try_get(5)?)?))
}

pub fn protocol_events(client: &mut Client, limit: usize) -> Result<Vec<ProtocolEvent>, StoreError> {
    let rows = client.query(
        "SELECT device, at_ms, kind, detail FROM protocol_events ORDER BY id DESC LIMIT $1",
        &[&limit_i64(limit)],
    )?;
    rows.iter()
        .map(|r| {
            Ok(ProtocolEvent {
                device: r.try_get(0)?,
                at_ms: r.try_get(1)?,
                kind: r.try_get(2)?,
                detail: r.try_get(3)?,
            })
        })
        .collect()
}

pub fn consumer_cursor(client: &mut Client, consumer: &str) -> Result<u64, StoreError> {
    let c = client.query_opt("SELECT cursor FROM consumer_cursors WHERE name = $1", &[&consumer])?;
    to_u64(match c {
        Some(r) => r.try_get(0)?,
        None => 0,
    })
}
