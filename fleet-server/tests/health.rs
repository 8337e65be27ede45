//! Device health against a real Mosquitto: heartbeats become the device list's health and
//! the health history, a last will makes a device offline, events are listed, a malformed
//! heartbeat does not stop ingest, and /metrics exports the fleet's series.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Setup, WAIT, batch};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use simpul_fleet::protocol::control::{Event as DeviceEvent, Heartbeat, Status};
use simpul_fleet::protocol::{Channel, ControlMessage, DeviceId, Topic};

fn heartbeat(version: &str, buffer_depth: u64) -> Vec<u8> {
    let hb = Heartbeat {
        version: version.to_owned(),
        uptime_s: 60,
        buffer_depth: Some(buffer_depth),
        oldest_unsent_age_s: Some(1),
        ..Default::default()
    };
    hb.to_json().unwrap()
}

fn status(online: bool) -> Vec<u8> {
    Status { online, ..Default::default() }.to_json().unwrap()
}

/// Polls `path` until `done` holds for its JSON (ingest commits asynchronously; nothing to
/// await for a QoS 0 heartbeat).
async fn until(s: &Setup, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    s.fleet.until(path, done).await
}

fn device<'a>(list: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    list["devices"].as_array()?.iter().find(|d| d["device"] == name)
}

/// A device connection with the agent's last will (`online: false`, retained); the
/// connection dies without a DISCONNECT when the returned task is aborted.
async fn connect_with_will(port: u16, name: &str) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let d = DeviceId::new(name).unwrap();
    let mut opts = MqttOptions::new(format!("agent-{name}"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_last_will(LastWill::new(Topic::new(d, Channel::Status).name(), status(false), QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let (tx, mut connected) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(WAIT, connected.recv()).await.expect("device connected");
    (client, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_shows_in_the_device_list_and_the_health_history() {
    let s = Setup::start(|_| {}).await;
    let agent = s.agent("kel-h1").await;
    agent.publish_raw(Channel::Status, status(true)).await;
    agent.publish_raw(Channel::Heartbeat, heartbeat("1.4.2", 17)).await;

    let list = until(&s, "/api/v1/devices", |v| device(v, "kel-h1").is_some_and(|d| !d["health"].is_null())).await;
    let d = device(&list, "kel-h1").unwrap();
    assert_eq!(d["health"]["version"], "1.4.2", "{d}");
    assert_eq!(d["health"]["buffer_depth"], 17, "{d}");
    assert_eq!(d["online"], true, "status online and a fresh heartbeat: {d}");
    assert!(d["last_seen_ms"].as_i64().is_some(), "{d}");
    assert_eq!(d["alerts"], serde_json::json!([]), "{d}");

    agent.publish_raw(Channel::Heartbeat, heartbeat("1.4.2", 18)).await;
    let h =
        until(&s, "/api/v1/devices/kel-h1/health", |v| v["heartbeats"].as_array().is_some_and(|a| a.len() == 2)).await;
    let depths: Vec<_> =
        h["heartbeats"].as_array().unwrap().iter().map(|p| p["heartbeat"]["buffer_depth"].clone()).collect();
    assert_eq!(depths, [18, 17], "newest first: {h}");
    let one = s.fleet.get_json("/api/v1/devices/kel-h1/health?limit=1").await;
    assert_eq!(one["heartbeats"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_last_will_fires_is_offline() {
    let s = Setup::start(|_| {}).await;
    let (client, task) = connect_with_will(s.broker.port(), "kel-h2").await;
    let d = DeviceId::new("kel-h2").unwrap();
    client.publish(Topic::new(d.clone(), Channel::Status).name(), QoS::AtLeastOnce, true, status(true)).await.unwrap();
    client
        .publish(Topic::new(d, Channel::Heartbeat).name(), QoS::AtMostOnce, false, heartbeat("1.0.0", 0))
        .await
        .unwrap();
    until(&s, "/api/v1/devices", |v| device(v, "kel-h2").is_some_and(|d| d["online"] == true)).await;

    // The connection dies without a DISCONNECT: the broker publishes the last will.
    task.abort();
    let list = until(&s, "/api/v1/devices", |v| device(v, "kel-h2").is_some_and(|d| d["status_online"] == false)).await;
    assert_eq!(device(&list, "kel-h2").unwrap()["online"], false, "{list}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_heartbeat_is_recorded_as_malformed_and_ingest_goes_on() {
    let s = Setup::start(|_| {}).await;
    let mut agent = s.agent("kel-h3").await;
    agent.publish_raw(Channel::Heartbeat, b"{\"version\": 3".to_vec()).await;
    agent.publish(&batch(1..=2)).await;
    agent.wait_ack(2).await;
    agent.publish_raw(Channel::Heartbeat, heartbeat("2.0.0", 4)).await;

    until(&s, "/api/v1/devices", |v| device(v, "kel-h3").is_some_and(|d| d["health"]["version"] == "2.0.0")).await;
    let d = s.fleet.get_json("/api/v1/devices/kel-h3").await;
    assert_eq!(d["malformed"], 1, "{d}");
    let events = s.fleet.running.as_ref().unwrap().store.protocol_events(10).unwrap();
    assert!(events.iter().any(|e| e.kind == "malformed_payload" && e.detail.starts_with("heartbeat: ")), "{events:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_proposed_and_config_rolled_back_events_are_listed_newest_first() {
    let s = Setup::start(|_| {}).await;
    let agent = s.agent("kel-h4").await;
    let proposed = DeviceEvent::SensorProposed {
        port: "/dev/ttyUSB1".to_owned(),
        toml: "[sensors.rain]\ndriver = \"modbus\"\n".to_owned(),
        summary: "Modbus slave 1 at 9600 baud".to_owned(),
    };
    let rolled =
        DeviceEvent::ConfigRolledBack { version: 5, running: Some(4), reason: "no broker within 2m".to_owned() };
    agent.publish_raw(Channel::Events, proposed.to_json().unwrap()).await;
    agent.publish_raw(Channel::Events, rolled.to_json().unwrap()).await;

    // The device exists once its first message is committed; until then its events are a 404.
    until(&s, "/api/v1/devices", |v| device(v, "kel-h4").is_some()).await;
    let path = "/api/v1/devices/kel-h4/events";
    let v = until(&s, path, |v| v["events"].as_array().is_some_and(|a| a.len() == 2)).await;
    let events = v["events"].as_array().unwrap();
    assert_eq!(events[0]["kind"], "config_rolled_back", "{v}");
    assert_eq!(events[0]["detail"]["reason"], "no broker within 2m", "{v}");
    assert_eq!(events[1]["kind"], "sensor_proposed", "{v}");
    assert_eq!(events[1]["detail"]["port"], "/dev/ttyUSB1", "{v}");
    let missing = s.fleet.get("/api/v1/devices/kel-nobody/events").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_export_devices_readings_and_commits_as_prometheus_text() {
    let s = Setup::start(|_| {}).await;
    let mut agent = s.agent("kel-h5").await;
    agent.publish_raw(Channel::Status, status(true)).await;
    agent.publish_raw(Channel::Heartbeat, heartbeat("1.0.0", 0)).await;
    agent.publish(&batch(1..=3)).await;
    agent.wait_ack(3).await;
    until(&s, "/api/v1/devices", |v| device(v, "kel-h5").is_some_and(|d| d["online"] == true)).await;

    // No credentials: /metrics is outside /api/v1.
    let resp = reqwest::get(format!("{}/metrics", s.fleet.api)).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let text = resp.text().await.unwrap();
    for line in [
        "simpul_fleet_devices_known 1",
        "simpul_fleet_devices_online 1",
        "simpul_fleet_readings_stored_total 3",
        "simpul_fleet_heartbeats_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("simpul_fleet_commits_total ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("simpul_fleet_commit_seconds_count ")), "{text}");
    s.stop().await;
}
