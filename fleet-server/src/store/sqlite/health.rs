//! Device health in SQLite: heartbeats (latest row per device and the history) and device
//! events, written inside the ingest transaction and read by the API. What is not SQL
//! (the summary, the sampling, the JSON) is in `store::health`.

use rusqlite::{Connection, OptionalExtension, params};
use simpul_protocol::DeviceId;
use simpul_protocol::control::{Event, Heartbeat};

use crate::store::health::{EncodedHeartbeat, HealthColumns, PRUNE_CHUNK, device_event, event_json, health_point};
use crate::store::{DeviceEvent, DeviceOverview, HealthPoint, StoreError, event_kind};

/// Replaces the device's latest heartbeat, and appends it to the history as
/// [`EncodedHeartbeat::history`] decides.
pub fn record_heartbeat(
    conn: &Connection,
    device_id: i64,
    hb: &Heartbeat,
    now_ms: i64,
    every_ms: i64,
) -> Result<(), StoreError> {
    let e = EncodedHeartbeat::of(hb, now_ms)?;
    let before: Option<(Option<i64>, Option<i64>, Option<bool>)> = conn
        .prepare_cached("SELECT history_at_ms, sensors_failing, throttled_now FROM device_health WHERE device_id = ?1")?
        .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (keep, history_at) = e.history(before, now_ms, every_ms);
    let s = &e.summary;
    conn.prepare_cached(
        "INSERT INTO device_health (device_id, received_at_ms, version, config_version, buffer_depth,
         oldest_unsent_age_s, soc_temp_c, throttled_now, sensors, sensors_failing, heartbeat, levels, history_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT(device_id) DO UPDATE SET received_at_ms = excluded.received_at_ms,
         version = excluded.version, config_version = excluded.config_version,
         buffer_depth = excluded.buffer_depth, oldest_unsent_age_s = excluded.oldest_unsent_age_s,
         soc_temp_c = excluded.soc_temp_c, throttled_now = excluded.throttled_now,
         sensors = excluded.sensors, sensors_failing = excluded.sensors_failing,
         heartbeat = excluded.heartbeat, levels = excluded.levels, history_at_ms = excluded.history_at_ms",
    )?
    .execute(params![
        device_id,
        now_ms,
        s.version,
        e.config_version,
        e.buffer_depth,
        e.oldest_unsent_age_s,
        s.soc_temp_c,
        s.throttled,
        s.sensors,
        s.sensors_failing,
        e.json,
        e.levels,
        history_at
    ])?;
    if keep {
        conn.prepare_cached("INSERT INTO health_history (device_id, at_ms, heartbeat) VALUES (?1, ?2, ?3)")?
            .execute(params![device_id, now_ms, e.json])?;
    }
    Ok(())
}

/// Appends an event the device reported.
pub fn record_event(conn: &Connection, device_id: i64, event: &Event, now_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO device_events (device_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![device_id, now_ms, event_kind(event), event_json(event)?])?;
    Ok(())
}

pub fn devices(conn: &Connection) -> Result<Vec<DeviceOverview>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.name, d.online, d.last_seen_ms, h.received_at_ms, h.version, h.config_version,
                h.buffer_depth, h.oldest_unsent_age_s, h.soc_temp_c, h.throttled_now, h.sensors,
                h.sensors_failing, h.levels
         FROM devices d LEFT JOIN device_health h ON h.device_id = d.id ORDER BY d.name",
    )?;
    let rows = stmt.query_map([], |r| {
        let health = HealthColumns {
            received_at_ms: r.get(3)?,
            version: r.get(4)?,
            config_version: r.get(5)?,
            buffer_depth: r.get(6)?,
            oldest_unsent_age_s: r.get(7)?,
            soc_temp_c: r.get(8)?,
            throttled: r.get(9)?,
            sensors: r.get(10)?,
            sensors_failing: r.get(11)?,
            levels: r.get(12)?,
        };
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, health))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (device, status_online, last_seen_ms, health) = row?;
        out.push(DeviceOverview { device, status_online, last_seen_ms, health: health.summary()? });
    }
    Ok(out)
}

fn device_id(conn: &Connection, device: &DeviceId) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM devices WHERE name = ?1")?
        .query_row([device.as_str()], |r| r.get(0))
        .optional()?)
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub fn device_health(
    conn: &Connection,
    device: &DeviceId,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<HealthPoint>, StoreError> {
    let Some(id) = device_id(conn, device)? else { return Ok(Vec::new()) };
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, heartbeat FROM health_history WHERE device_id = ?1 AND at_ms >= ?2
         ORDER BY at_ms DESC, rowid DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![id, since_ms, limit_i64(limit)], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (at_ms, json) = row?;
        out.push(health_point(at_ms, &json)?);
    }
    Ok(out)
}

pub fn device_events(conn: &Connection, device: &DeviceId, limit: usize) -> Result<Vec<DeviceEvent>, StoreError> {
    let Some(id) = device_id(conn, device)? else { return Ok(Vec::new()) };
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.at_ms, e.kind, e.detail, a.sensor_id, a.version, a.author, a.at_ms
         FROM device_events e LEFT JOIN proposal_acceptances a ON a.event_id = e.id
         WHERE e.device_id = ?1 ORDER BY e.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![id, limit_i64(limit)], |r| {
        let accepted = match r.get::<_, Option<String>>(4)? {
            Some(sensor_id) => Some((sensor_id, r.get::<_, i64>(5)?, r.get::<_, String>(6)?, r.get::<_, i64>(7)?)),
            None => None,
        };
        Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, accepted))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, at_ms, kind, json, accepted) = row?;
        out.push(device_event(id, at_ms, kind, &json, accepted)?);
    }
    Ok(out)
}

/// Deletes up to [`PRUNE_CHUNK`] history rows received before `before_ms`.
pub fn prune_chunk(conn: &Connection, before_ms: i64) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached(
            "DELETE FROM health_history WHERE rowid IN
             (SELECT rowid FROM health_history WHERE at_ms < ?1 LIMIT ?2)",
        )?
        .execute(params![before_ms, PRUNE_CHUNK])?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use simpul_protocol::control::{SensorHealth, SensorState};

    use crate::store::{Inbound, SqliteStore, Store};

    use super::*;

    fn dev(name: &str) -> DeviceId {
        DeviceId::new(name).unwrap()
    }

    fn heartbeat(version: &str, depth: u64) -> Inbound {
        let mut hb = Heartbeat { version: version.to_owned(), buffer_depth: Some(depth), ..Default::default() };
        hb.sensors.insert("river".to_owned(), SensorHealth { state: SensorState::Failing, ..Default::default() });
        Inbound::Heartbeat { device: dev("kel-a"), heartbeat: Box::new(hb) }
    }

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fleet.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn the_latest_heartbeat_is_the_devices_health_and_every_one_is_in_the_history() {
        let (_dir, store) = open();
        store.commit(&[heartbeat("1.0.0", 5)], 1000).unwrap();
        store
            .commit(
                &[heartbeat("1.1.0", 9), Inbound::Status { device: dev("kel-a"), online: true, received_ms: 2000 }],
                2000,
            )
            .unwrap();

        let list = store.devices().unwrap();
        assert_eq!(list.len(), 1);
        let d = &list[0];
        assert_eq!((d.status_online, d.last_seen_ms), (Some(true), Some(2000)));
        let h = d.health.as_ref().unwrap();
        assert_eq!((h.version.as_str(), h.buffer_depth, h.received_at_ms), ("1.1.0", Some(9), 2000));
        assert_eq!((h.sensors, h.sensors_failing), (1, 1));

        let history = store.device_health(&dev("kel-a"), 0, 10).unwrap();
        let at: Vec<i64> = history.iter().map(|p| p.at_ms).collect();
        assert_eq!(at, [2000, 1000], "newest first");
        assert_eq!(history[1].heartbeat.version, "1.0.0");
        assert_eq!(store.device_health(&dev("kel-a"), 1500, 10).unwrap().len(), 1, "since filters");
        assert_eq!(store.device_health(&dev("kel-a"), 0, 1).unwrap().len(), 1, "limit caps");
        assert!(store.device_health(&dev("kel-zz"), 0, 10).unwrap().is_empty());
    }

    #[test]
    fn sampled_history_keeps_one_heartbeat_per_interval_and_every_change_of_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fleet.db"))
            .unwrap()
            .with_health_history_every(std::time::Duration::from_secs(300));
        let beat = |failing: bool| {
            let state = if failing { SensorState::Failing } else { SensorState::Ok };
            let mut hb = Heartbeat { version: "1.0.0".to_owned(), ..Default::default() };
            hb.sensors.insert("river".to_owned(), SensorHealth { state, ..Default::default() });
            Inbound::Heartbeat { device: dev("kel-a"), heartbeat: Box::new(hb) }
        };
        // Half an hour of heartbeats a minute apart; the river fails from minute 12 to 13.
        for minute in 0..30i64 {
            store.commit(&[beat(minute == 12)], minute * 60_000).unwrap();
        }
        let mut kept: Vec<i64> =
            store.device_health(&dev("kel-a"), 0, 100).unwrap().iter().map(|p| p.at_ms / 60_000).collect();
        kept.reverse();
        // Every 5 minutes, plus 12 (it fails) and 13 (it recovers); the clock restarts there.
        assert_eq!(kept, [0, 5, 10, 12, 13, 18, 23, 28]);
        let latest = store.devices().unwrap()[0].health.clone().unwrap();
        assert_eq!(latest.received_at_ms, 29 * 60_000, "the latest is always the last heartbeat");
    }

    #[test]
    fn a_device_that_never_sent_a_heartbeat_is_listed_without_health() {
        let (_dir, store) = open();
        store.commit(&[Inbound::Status { device: dev("kel-b"), online: false, received_ms: 7 }], 7).unwrap();
        let list = store.devices().unwrap();
        assert_eq!(list[0].device, "kel-b");
        assert_eq!(
            (list[0].status_online, list[0].last_seen_ms, list[0].health.as_ref()),
            (Some(false), Some(7), None)
        );
    }

    #[test]
    fn device_events_are_kept_newest_first_with_their_kind() {
        let (_dir, store) = open();
        let proposed = Event::SensorProposed {
            port: "/dev/ttyUSB1".to_owned(),
            toml: "[sensors.rain]\n".to_owned(),
            summary: "Modbus slave 1".to_owned(),
        };
        let rolled = Event::ConfigRolledBack { version: 4, running: Some(3), reason: "no broker".to_owned() };
        let items = [
            Inbound::Event { device: dev("kel-a"), event: proposed.clone() },
            Inbound::Event { device: dev("kel-a"), event: rolled.clone() },
        ];
        store.commit(&items, 50).unwrap();
        let events = store.device_events(&dev("kel-a"), 10).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["config_rolled_back", "sensor_proposed"]);
        assert_eq!((events[0].event.clone(), events[1].event.clone()), (rolled, proposed));
        assert_eq!(store.device_events(&dev("kel-a"), 1).unwrap().len(), 1);
    }

    #[test]
    fn pruning_deletes_only_history_older_than_the_cutoff_and_keeps_the_latest_health() {
        let (_dir, store) = open();
        for at in [100, 200, 300] {
            store.commit(&[heartbeat("1.0.0", 1)], at).unwrap();
        }
        assert_eq!(store.prune_health(250).unwrap(), 2);
        let at: Vec<i64> = store.device_health(&dev("kel-a"), 0, 10).unwrap().iter().map(|p| p.at_ms).collect();
        assert_eq!(at, [300]);
        assert!(store.devices().unwrap()[0].health.is_some());
    }
}
