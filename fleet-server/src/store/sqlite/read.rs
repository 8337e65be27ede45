//! Reads: deliverable readings by cursor, device summaries, protocol events, cursors.

use rusqlite::{Connection, OptionalExtension, params};
use simpul_protocol::DeviceId;

use super::{to_i64, to_u64};
use crate::store::rows::{device_summary, stored_reading};
use crate::store::{DeviceSummary, ProtocolEvent, StoreError, StoredReading};

pub fn readings_after(conn: &Connection, after: u64, limit: usize) -> Result<Vec<StoredReading>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.cursor, d.name, r.seq, s.sensor, s.metric, s.unit, r.value, r.time_ms, r.synced,
                r.time_corrected
         FROM readings r JOIN devices d ON d.id = r.device_id JOIN series s ON s.id = r.series_id
         WHERE r.cursor > ?1 ORDER BY r.cursor LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![to_i64(after)?, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<f64>>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, bool>(8)?,
            r.get::<_, bool>(9)?,
        ))
    })?;
    rows.map(|r| stored_reading(r?)).collect()
}

pub fn device(conn: &Connection, device: &DeviceId) -> Result<Option<DeviceSummary>, StoreError> {
    let row = conn
        .query_row(
            "SELECT id, watermark, dropped, stored, malformed, online FROM devices WHERE name = ?1",
            [device.as_str()],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<bool>>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((id, watermark, dropped, stored, malformed, online)) = row else { return Ok(None) };
    let held: i64 = conn.query_row("SELECT count(*) FROM held_readings WHERE device_id = ?1", [id], |r| r.get(0))?;
    Ok(Some(device_summary(device, (watermark, dropped, stored, malformed, online), held)?))
}

pub fn protocol_events(conn: &Connection, limit: usize) -> Result<Vec<ProtocolEvent>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt =
        conn.prepare_cached("SELECT device, at_ms, kind, detail FROM protocol_events ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| {
        Ok(ProtocolEvent { device: r.get(0)?, at_ms: r.get(1)?, kind: r.get(2)?, detail: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn consumer_cursor(conn: &Connection, consumer: &str) -> Result<u64, StoreError> {
    let c: Option<i64> =
        conn.query_row("SELECT cursor FROM consumer_cursors WHERE name = ?1", [consumer], |r| r.get(0)).optional()?;
    to_u64(c.unwrap_or(0))
}
