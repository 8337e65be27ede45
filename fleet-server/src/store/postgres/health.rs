//! Device health in PostgreSQL: heartbeats (latest row per device and the history) and
//! device events, written inside the ingest transaction and read by the API. What is not
//! SQL (the summary, the sampling, the JSON) is in `store::health`.

use postgres::{Client, Transaction};
use simpul_protocol::DeviceId;
use simpul_protocol::control::{Event, Heartbeat};

use super::read::limit_i64;
use crate::store::health::{EncodedHeartbeat, HealthColumns, PRUNE_CHUNK, device_event, event_json, health_point};
use crate::store::{DeviceEvent, DeviceOverview, HealthPoint, StoreError, event_kind};

/// Replaces the device's latest heartbeat, and appends it to the history as
/// [`EncodedHeartbeat::history`] decides.
pub fn record_heartbeat(
    tx: &mut Transaction<'_>,
    device_id: i64,
    hb: &Heartbeat,
    now_ms: i64,
    every_ms: i64,
) -> Result<(), StoreError> {
    let e = EncodedHeartbeat::of(hb, now_ms)?;
    let before = tx
        .query_opt(
            "SELECT history_at_ms, sensors_failing, throttled_now FROM device_health WHERE device_id = $1",
            &[&device_id],
        )?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .transpose()?;
    let (keep, history_at) = e.history(before, now_ms, every_ms);
    let s = &e.summary;
    tx.execute(
        "INSERT INTO device_health (device_id, received_at_ms, version, config_version, buffer_depth,
         oldest_unsent_age_s, soc_temp_c, throttled_now, sensors, sensors_failing, heartbeat, levels, history_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (device_id) DO UPDATE SET received_at_ms = excluded.received_at_ms,
         version = excluded.version, config_version = excluded.config_version,
         buffer_depth = excluded.buffer_depth, oldest_unsent_age_s = excluded.oldest_unsent_age_s,
         soc_temp_c = excluded.soc_temp_c, throttled_now = excluded.throttled_now,
         sensors = excluded.sensors, sensors_failing = excluded.sensors_failing,
         heartbeat = excluded.heartbeat, levels = excluded.levels, history_at_ms = excluded.history_at_ms",
        &[
            &device_id,
            &now_ms,
            &s.version,
            &e.config_version,
            &e.buffer_depth,
            &e.oldest_unsent_age_s,
            &s.soc_temp_c,
            &s.throttled,
            &i64::from(s.sensors),
            &i64::from(s.sensors_failing),
            &e.json,
            &e.levels,
            &history_at,
        ],
    )?;
    if keep {
        tx.execute(
            "INSERT INTO health_history (device_id, at_ms, heartbeat) VALUES ($1, $2, $3)",
            &[&device_id, &now_ms, &e.json],
        )?;
    }
    Ok(())
}

/// Appends an event the device reported.
pub fn record_event(tx: &mut Transaction<'_>, device_id: i64, event: &Event, now_ms: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO device_events (device_id, at_ms, kind, detail) VALUES ($1, $2, $3, $4)",
        &[&device_id, &now_ms, &event_kind(event), &event_json(event)?],
    )?;
    Ok(())
}

pub fn devices(client: &mut Client) -> Result<Vec<DeviceOverview>, StoreError> {
    let rows = client.query(
        r#"SELECT d.name, d.online, d.last_seen_ms, h.received_at_ms, h.version, h.config_version,
                h.buffer_depth, h.oldest_unsent_age_s, h.soc_temp_c, h.throttled_now, h.sensors,
                h.sensors_failing, h.levels
         FROM devices d LEFT JOIN device_health h ON h.device_id = d.id ORDER BY d.name COLLATE "C""#,
        &[],
    )?;
    rows.iter()
        .map(|r| {
            let health = HealthColumns {
                received_at_ms: r.try_get(3)?,
                version: r.try_get(4)?,
                config_version: r.try_get(5)?,
                buffer_depth: r.try_get(6)?,
                oldest_unsent_age_s: r.try_get(7)?,
                soc_temp_c: r.try_get(8)?,
                throttled: r.try_get(9)?,
                sensors: r.try_get(10)?,
                sensors_failing: r.try_get(11)?,
                levels: r.try_get(12)?,
            };
            Ok(DeviceOverview {
                device: r.try_get(0)?,
                status_online: r.try_get(1)?,
                last_seen_ms: r.try_get(2)?,
                health: health.summary()?,
            })
        })
        .collect()
}

pub fn device_health(
    client: &mut Client,
    device: &DeviceId,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<HealthPoint>, StoreError> {
    let rows = client.query(
        "SELECT h.at_ms, h.heartbeat FROM health_history h JOIN devices d ON d.id = h.device_id
         WHERE d.name = $1 AND h.at_ms >= $2 ORDER BY h.at_ms DESC, h.id DESC LIMIT $3",
        &[&device.as_str(), &since_ms, &limit_i64(limit)],
    )?;
    rows.iter().map(|r| health_point(r.try_get(0)?, r.try_get(1)?)).collect()
}

pub fn device_events(client: &mut Client, device: &DeviceId, limit: usize) -> Result<Vec<DeviceEvent>, StoreError> {
    let rows = client.query(
        "SELECT e.id, e.at_ms, e.kind, e.detail, a.sensor_id, a.version, a.author, a.at_ms
         FROM device_events e JOIN devices d ON d.id = e.device_id
         LEFT JOIN proposal_acceptances a ON a.event_id = e.id
         WHERE d.name = $1 ORDER BY e.id DESC LIMIT $2",
        &[&device.as_str(), &limit_i64(limit)],
    )?;
    rows.iter()
        .map(|r| {
            let accepted = match r.try_get::<_, Option<String>>(4)? {
                Some(sensor_id) => Some((sensor_id, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?)),
                None => None,
            };
            device_event(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, accepted)
        })
        .collect()
}

/// Deletes up to [`PRUNE_CHUNK`] history rows received before `before_ms`.
pub fn prune_chunk(client: &mut Client, before_ms: i64) -> Result<u64, StoreError> {
    Ok(client.execute(
        "DELETE FROM health_history WHERE id IN
         (SELECT id FROM health_history WHERE at_ms < $1 LIMIT $2)",
        &[&before_ms, &PRUNE_CHUNK],
    )?)
}
