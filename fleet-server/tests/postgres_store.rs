//! `PgStore` paths the store contract does not reach: health, charts, a clock sync in the
//! same commit as its boot's held readings, sensor proposals, malformed payloads.

#![allow(clippy::unwrap_used)]

mod common;

use common::{BOOT, unsynced};
use simpul_fleet::protocol::control::{Event, Heartbeat, SensorHealth, SensorState};
use simpul_fleet::protocol::{DeviceId, ReadingBatch};
use simpul_fleet::store::postgres::{PgStore, PgTarget};
use simpul_fleet::store::{ConfigChange, Inbound, Store};
use simpul_tests::Postgres;

const NOW: i64 = 1_795_000_000_000;

fn dev(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

fn open() -> (Postgres, PgStore) {
    let pg = Postgres::start().unwrap();
    let store = PgStore::open(&PgTarget::plain(&pg.url()).unwrap()).unwrap();
    (pg, store)
}

fn beat(failing: bool) -> Inbound {
    let state = if failing { SensorState::Failing } else { SensorState::Ok };
    let mut hb = Heartbeat { version: "1.0.0".to_owned(), buffer_depth: Some(3), ..Default::default() };
    hb.sensors.insert("river".to_owned(), SensorHealth { state, ..Default::default() });
    Inbound::Heartbeat { device: dev("kel-a"), heartbeat: Box::new(hb) }
}

#[test]
fn heartbeats_are_sampled_listed_and_pruned() {
    let pg = Postgres::start().unwrap();
    let store = PgStore::open(&PgTarget::plain(&pg.url()).unwrap())
        .unwrap()
        .with_health_history_every(std::time::Duration::from_secs(300));
    for minute in 0..30i64 {
        store.commit(&[beat(minute == 12)], minute * 60_000).unwrap();
    }
    store
        .commit(&[Inbound::Status { device: dev("kel-a"), online: true, received_ms: 30 * 60_000 }], 30 * 60_000)
        .unwrap();
    let mut kept: Vec<i64> =
        store.device_health(&dev("kel-a"), 0, 100).unwrap().iter().map(|p| p.at_ms / 60_000).collect();
    kept.reverse();
    assert_eq!(kept, [0, 5, 10, 12, 13, 18, 23, 28]);
    let list = store.devices().unwrap();
    let h = list[0].health.clone().unwrap();
    assert_eq!((list[0].status_online, h.received_at_ms, h.buffer_depth), (Some(true), 29 * 60_000, Some(3)));
    assert_eq!((h.sensors, h.sensors_failing), (1, 0));
    assert_eq!(store.prune_health(11 * 60_000).unwrap(), 3);
    assert_eq!(store.device_health(&dev("kel-a"), 0, 100).unwrap().len(), 5);
}

#[test]
fn a_clock_sync_in_the_same_commit_delivers_the_held_readings_before_it_and_charts_them() {
    let (_pg, store) = open();
    let held = ReadingBatch { readings: vec![unsynced(1, BOOT), unsynced(2, BOOT)], dropped: vec![] };
    let items = [
        Inbound::Readings { device: dev("kel-a"), batch: held.clone() },
        Inbound::ClockSynced { device: dev("kel-a"), boot_id: BOOT, offset_ms: NOW },
        Inbound::Readings { device: dev("kel-a"), batch: held },
    ];
    let out = store.commit(&items, NOW).unwrap();
    assert_eq!((out.stored, out.delivered), (2, 2));
    let all = store.readings_after(0, 10).unwrap();
    assert_eq!(
        all.iter().map(|r| (r.cursor, r.seq, r.time_ms)).collect::<Vec<_>>(),
        [(1, 1, NOW + 1000), (2, 2, NOW + 2000)]
    );
    let summary = store.device(&dev("kel-a")).unwrap().unwrap();
    assert_eq!((summary.readings_stored, summary.readings_held, summary.watermark), (2, 0, 2));
    let series = store.series_minutes(&dev("kel-a"), NOW, NOW + 60_000).unwrap();
    let points: Vec<(u64, f64, f64)> = series[0].points.iter().map(|p| (p.n, p.min, p.max)).collect();
    assert_eq!(points, [(2, 1.5, 3.0)]);
}

#[test]
fn a_proposal_is_accepted_once_and_marked_on_its_event() {
    let (_pg, store) = open();
    let proposed = Event::SensorProposed {
        port: "/dev/ttyUSB1".to_owned(),
        toml: "[sensors.rain]\ndriver = \"modbus\"\n".to_owned(),
        summary: "Modbus slave 1".to_owned(),
    };
    store.commit(&[Inbound::Event { device: dev("kel-a"), event: proposed }], NOW).unwrap();
    let event = store.device_events(&dev("kel-a"), 10).unwrap()[0].id;
    let change = ConfigChange { author: "ops".to_owned(), at_ms: NOW, comment: "accept".to_owned() };
    let accepted = store.accept_proposal(&dev("kel-a"), event, Some("rain-1"), &change).unwrap().unwrap();
    assert_eq!((accepted.sensor_id.as_str(), accepted.version.version), ("rain-1", 1));
    assert!(accepted.version.toml.contains("rain-1"), "{}", accepted.version.toml);
    assert!(store.accept_proposal(&dev("kel-a"), event, None, &change).unwrap().is_err(), "accepted already");
    let marked = store.device_events(&dev("kel-a"), 10).unwrap()[0].accepted.clone().unwrap();
    assert_eq!((marked.sensor_id.as_str(), marked.version), ("rain-1", 1));
    let config = store.device_config(&dev("kel-a")).unwrap().unwrap();
    assert_eq!(config.desired.unwrap().version, 1);
    assert_eq!(store.config_history(&dev("kel-a"), 10).unwrap().len(), 1);
}

#[test]
fn a_malformed_payload_is_counted_and_recorded() {
    let (_pg, store) = open();
    let bad = Inbound::Malformed { device: dev("kel-a"), channel: "readings", error: "eof".to_owned(), bytes: 3 };
    store.commit(&[bad], NOW).unwrap();
    assert_eq!(store.device(&dev("kel-a")).unwrap().unwrap().malformed, 1);
    let events = store.protocol_events(10).unwrap();
    assert_eq!((events[0].kind.as_str(), events[0].detail.as_str()), ("malformed_payload", "readings: 3 bytes: eof"));
}
