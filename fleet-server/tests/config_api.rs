//! Desired device config through the API (docs/design/fleet-config-distribution.md):
//! published retained, versioned, merged with group defaults, reported back.

#![allow(clippy::unwrap_used)]

mod common;
mod config_peer;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Setup, WAIT};
use config_peer::{ConfigPeer, put, put_device_config};
use serde_json::{Value, json};
use simpul_fleet::protocol::control::{ConfigState, Event, ReportedConfig};
use simpul_fleet::protocol::{Channel, ControlMessage};

fn broker(s: &Setup) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.broker.port()))
}

const CONFIG: &str = "[sensors.river]\nkind = \"simulated\"\ninterval = \"5s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_config_publishes_a_retained_desired_config_that_a_device_subscribing_later_receives() {
    let s = Setup::start(|_| {}).await;
    let mut watcher = ConfigPeer::watch(broker(&s), "kel-late").await;
    assert_eq!(put_device_config(&s.fleet, "kel-late", CONFIG, "first sensor").await, 1);
    assert_eq!(put_device_config(&s.fleet, "kel-late", "[log]\nlevel = \"debug\"\n", "debug").await, 2);
    // Once a watcher heard version 2, the broker holds it.
    while watcher.next().await.desired.version < 2 {}

    // Subscribing only now: the broker hands over the retained message, the latest version.
    let mut device = ConfigPeer::connect(broker(&s), "kel-late").await;
    let heard = device.next().await;
    assert!(heard.retained, "the desired config is retained");
    assert_eq!(heard.desired.version, 2);
    let sent: toml::Table = heard.desired.toml.parse().unwrap();
    assert_eq!(sent, "[log]\nlevel = \"debug\"\n".parse::<toml::Table>().unwrap());

    // A change while subscribed arrives too, with the next version.
    assert_eq!(put_device_config(&s.fleet, "kel-late", CONFIG, "back").await, 3);
    let live = device.next().await;
    assert_eq!(live.desired.version, 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_increase_by_one_per_change_and_group_defaults_merge_under_each_devices_override() {
    let s = Setup::start(|_| {}).await;
    let defaults = "[log]\nlevel = \"info\"\n[sensors.river]\nkind = \"modbus\"\nport = \"/dev/ttyUSB0\"\n";
    let (status, body) = put(&s.fleet, "/api/v1/groups/kelurahan", json!({"defaults": defaults})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"], json!([]), "a group with no devices gives nobody a version");

    for d in ["kel-a", "kel-b"] {
        let (status, body) =
            put(&s.fleet, &format!("/api/v1/devices/{d}/group"), json!({"group": "kelurahan", "comment": "join"}))
                .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["versions"], json!([{"device": d, "version": 1}]));
    }
    let own = "[sensors.river]\nkind = \"ascii\"\nport = \"/dev/ttyS0\"\n";
    assert_eq!(put_device_config(&s.fleet, "kel-a", own, "ascii river").await, 2);

    // A change of the defaults gives every member its next version.
    let defaults2 = "[log]\nlevel = \"warn\"\n[sensors.river]\nkind = \"modbus\"\nport = \"/dev/ttyUSB0\"\n";
    let (status, body) =
        put(&s.fleet, "/api/v1/groups/kelurahan", json!({"defaults": defaults2, "comment": "quieter"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"], json!([{"device": "kel-a", "version": 3}, {"device": "kel-b", "version": 2}]));

    let a = s.fleet.get_json("/api/v1/devices/kel-a/config").await;
    assert_eq!(a["group"], "kelurahan");
    assert_eq!(a["desired"]["version"], 3);
    assert_eq!(a["running_latest"], false, "{a}");
    let merged: toml::Table = a["desired"]["toml"].as_str().unwrap().parse().unwrap();
    assert_eq!(merged["log"]["level"].as_str(), Some("warn"), "the group's log level");
    assert_eq!(
        merged["sensors"]["river"],
        own.parse::<toml::Table>().unwrap()["sensors"]["river"],
        "the device's river"
    );

    let history = s.fleet.get_json("/api/v1/devices/kel-a/config/history").await;
    let versions: Vec<u64> =
        history["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [3, 2, 1], "{history}");
    assert_eq!(history["versions"][0]["comment"], "quieter");
    assert_eq!(history["versions"][1]["comment"], "ascii river");
    assert_eq!(history["versions"][0]["author"], "token:".to_owned() + token_id(&s.fleet.token), "{history}");

    let groups = s.fleet.get_json("/api/v1/groups").await;
    assert_eq!(groups["groups"][0]["name"], "kelurahan");
    assert_eq!(groups["groups"][0]["devices"], json!(["kel-a", "kel-b"]));

    let (status, body) = put(&s.fleet, "/api/v1/devices/kel-a/group", json!({"group": "nowhere"})).await;
    assert_eq!(status, 404, "{body}");
    s.stop().await;
}

/// The id part of `spl_{id}_{secret}`.
fn token_id(token: &str) -> &str {
    token.split('_').nth(1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_toml_is_refused_with_400_naming_the_line_and_nothing_is_published() {
    let s = Setup::start(|_| {}).await;
    let mut device = ConfigPeer::connect(broker(&s), "kel-bad").await;

    let broken = "[log]\nlevel = \"info\"\nquota = = 3\n";
    let (status, body) = put(&s.fleet, "/api/v1/devices/kel-bad/config", json!({"toml": broken})).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("line 3"), "{error}");
    let (status, body) = put(&s.fleet, "/api/v1/groups/g1", json!({"defaults": "[x\n"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 1"), "{body}");

    let (status, _) = s.fleet.get("/api/v1/devices/kel-bad/config").send().await.map(|r| (r.status(), ())).unwrap();
    assert_eq!(status, 404, "no version was written");
    device.hears_nothing_for(Duration::from_millis(500)).await;

    // The first thing the device hears is the first good config, as version 1.
    assert_eq!(put_device_config(&s.fleet, "kel-bad", CONFIG, "good").await, 1);
    let heard = device.next().await;
    assert_eq!(heard.desired.version, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_device_rolled_back_shows_in_get_config_as_rolled_back_with_its_reason() {
    let s = Setup::start(|_| {}).await;
    let mut device = ConfigPeer::connect(broker(&s), "kel-rb").await;
    assert_eq!(put_device_config(&s.fleet, "kel-rb", CONFIG, "v1").await, 1);
    assert_eq!(device.next().await.desired.version, 1);
    device.report(&ReportedConfig { version: 1, state: ConfigState::Applied, error: None }).await;
    let applied = wait_reported(&s, "kel-rb", |c| c["reported"]["state"] == "applied").await;
    assert_eq!(applied["running_latest"], true, "{applied}");

    assert_eq!(put_device_config(&s.fleet, "kel-rb", "[uplink]\nbroker = \"nowhere:1883\"\n", "v2").await, 2);
    assert_eq!(device.next().await.desired.version, 2);
    let reason = "no broker within 2m after applying";
    let event = Event::ConfigRolledBack { version: 2, running: Some(1), reason: reason.to_owned() };
    device.publish(Channel::Events, event.to_json().unwrap()).await;
    let report = ReportedConfig { version: 2, state: ConfigState::RolledBack, error: Some(reason.to_owned()) };
    device.report(&report).await;

    let c = wait_reported(&s, "kel-rb", |c| c["reported"]["state"] == "rolled_back").await;
    assert_eq!(c["reported"]["version"], 2, "{c}");
    assert_eq!(c["reported"]["error"], reason, "{c}");
    assert_eq!(c["desired"]["version"], 2);
    assert_eq!(c["running_latest"], false, "{c}");
    s.stop().await;
}

/// Polls `GET .../config` until `done` holds (ingest commits on its own schedule).
async fn wait_reported(s: &Setup, device: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/devices/{device}/config");
    let wait = async {
        loop {
            let c = s.fleet.get_json(&path).await;
            if done(&c) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait).await.expect("the report reached the API")
}
