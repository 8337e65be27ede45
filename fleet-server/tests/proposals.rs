//! A sensor a box proposed, accepted by ops into the device's desired config
//! (docs/design/fleet-config-distribution.md, "Proposals"): a new version, published
//! retained, recorded against the event; refused clearly when it cannot be taken.

#![allow(clippy::unwrap_used)]

mod common;
mod config_peer;

use std::net::SocketAddr;

use common::{Agent, Setup};
use config_peer::{ConfigPeer, put_device_config};
use serde_json::{Value, json};
use simpul_fleet::protocol::control::Event;
use simpul_fleet::protocol::{Channel, ControlMessage};

const RAIN: &str = "[sensors.usb1]\nkind = \"ascii\"\nformat = \"number\"\nmetric = \"rain\"\nunit = \"mm\"\n\
                    port = { path = \"/dev/ttyUSB1\", baud = 9600 }\n";

/// Has `agent` propose `toml` and returns the event's id once the fleet lists it.
async fn propose(s: &Setup, agent: &Agent, device: &str, toml: &str) -> i64 {
    let event = Event::SensorProposed {
        port: "/dev/ttyUSB1".to_owned(),
        toml: toml.to_owned(),
        summary: "ASCII numbers at 9600 baud".to_owned(),
    };
    agent.publish_raw(Channel::Events, event.to_json().unwrap()).await;
    let path = format!("/api/v1/devices/{device}/events");
    let listed = |v: &Value| v["events"].as_array().is_some_and(|a| a.iter().any(|e| e["detail"]["toml"] == toml));
    // The device exists once its first message is committed; until then its events are a 404.
    s.fleet
        .until("/api/v1/devices", |v| v["devices"].as_array().is_some_and(|a| a.iter().any(|d| d["device"] == device)))
        .await;
    let v = s.fleet.until(&path, listed).await;
    v["events"].as_array().unwrap().iter().find(|e| e["detail"]["toml"] == toml).unwrap()["id"].as_i64().unwrap()
}

fn accept_path(device: &str, event: i64) -> String {
    format!("/api/v1/devices/{device}/proposals/{event}/accept")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_proposal_becomes_the_next_desired_version_published_retained_and_marked_on_the_event() {
    let s = Setup::start(|_| {}).await;
    let broker = SocketAddr::from(([127, 0, 0, 1], s.broker.port()));
    let agent = s.agent("kel-p1").await;
    let own = "# the pump house\n[log]\nlevel = \"debug\"\n";
    assert_eq!(put_device_config(&s.fleet, "kel-p1", own, "ops' own").await, 1);
    let event = propose(&s, &agent, "kel-p1", RAIN).await;

    let (status, body) = s.fleet.post(&accept_path("kel-p1", event), json!({"comment": "hujan di kantor"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"device": "kel-p1", "sensor_id": "usb1", "version": 2}));

    // The device hears version 2 (retained), with ops' own settings and the new sensor. It
    // may connect before version 2 is out and hear the retained version 1 first.
    let mut device = ConfigPeer::connect(broker, "kel-p1").await;
    let mut heard = device.next().await;
    if heard.desired.version == 1 {
        heard = device.next().await;
    }
    assert_eq!(heard.desired.version, 2);
    let sent: toml::Table = heard.desired.toml.parse().unwrap();
    assert_eq!(sent["log"]["level"].as_str(), Some("debug"));
    assert_eq!(sent["sensors"]["usb1"]["port"]["path"].as_str(), Some("/dev/ttyUSB1"));

    let cfg = s.fleet.get_json("/api/v1/devices/kel-p1/config").await;
    let override_toml = cfg["override_toml"].as_str().unwrap();
    assert!(override_toml.starts_with(own.trim_end()), "ops' text, comment included, stays: {override_toml}");
    assert!(override_toml.contains(&format!("# proposal {event} from /dev/ttyUSB1")), "{override_toml}");
    let history = s.fleet.get_json("/api/v1/devices/kel-p1/config/history").await;
    assert_eq!(history["versions"][0]["comment"], "hujan di kantor", "{history}");

    let events = s.fleet.get_json("/api/v1/devices/kel-p1/events").await;
    let e = events["events"].as_array().unwrap().iter().find(|e| e["id"] == event).unwrap().clone();
    assert_eq!(e["accepted"]["version"], 2, "{e}");
    assert_eq!(e["accepted"]["sensor_id"], "usb1", "{e}");
    assert!(e["accepted"]["by"].as_str().unwrap().starts_with("token:"), "{e}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_proposal_twice_is_a_conflict_and_writes_one_version() {
    let s = Setup::start(|_| {}).await;
    let agent = s.agent("kel-p2").await;
    let event = propose(&s, &agent, "kel-p2", RAIN).await;
    let path = accept_path("kel-p2", event);
    let (first, second) = tokio::join!(s.fleet.post(&path, json!({})), s.fleet.post(&path, json!({})));
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let refused = if first.0 == 409 { first.1 } else { second.1 };
    assert!(refused["error"].as_str().unwrap().contains("already accepted"), "{refused}");
    let history = s.fleet.get_json("/api/v1/devices/kel-p2/config/history").await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 1, "{history}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_whose_id_the_config_has_is_refused_until_given_another_id() {
    let s = Setup::start(|_| {}).await;
    let agent = s.agent("kel-p3").await;
    put_device_config(&s.fleet, "kel-p3", "[sensors.usb1]\nkind = \"simulated\"\n", "old sensor").await;
    let event = propose(&s, &agent, "kel-p3", RAIN).await;
    let path = accept_path("kel-p3", event);

    let (status, body) = s.fleet.post(&path, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already has a sensor \"usb1\""), "{body}");
    let (status, body) = s.fleet.post(&path, json!({"sensor_id": "Curah Hujan"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("a-z, 0-9"), "{body}");
    let history = s.fleet.get_json("/api/v1/devices/kel-p3/config/history").await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 1, "nothing was written: {history}");

    let (status, body) = s.fleet.post(&path, json!({"sensor_id": "hujan"})).await;
    assert_eq!((status, &body["sensor_id"], &body["version"]), (200, &json!("hujan"), &json!(2)), "{body}");
    let cfg = s.fleet.get_json("/api/v1/devices/kel-p3/config").await;
    let merged: toml::Table = cfg["desired"]["toml"].as_str().unwrap().parse().unwrap();
    assert_eq!(merged["sensors"]["usb1"]["kind"].as_str(), Some("simulated"), "the working sensor is untouched");
    assert_eq!(merged["sensors"]["hujan"]["metric"].as_str(), Some("rain"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_devices_proposal_or_an_event_that_is_not_one_is_not_found() {
    let s = Setup::start(|_| {}).await;
    let a = s.agent("kel-p4").await;
    let b = s.agent("kel-p5").await;
    propose(&s, &b, "kel-p5", "[sensors.other]\nkind = \"simulated\"\n").await;
    let event = propose(&s, &a, "kel-p4", RAIN).await;
    let rolled = Event::ConfigRolledBack { version: 2, running: Some(1), reason: "no broker".to_owned() };
    a.publish_raw(Channel::Events, rolled.to_json().unwrap()).await;
    let v =
        s.fleet.until("/api/v1/devices/kel-p4/events", |v| v["events"].as_array().is_some_and(|e| e.len() == 2)).await;
    let other = v["events"][0]["id"].as_i64().unwrap();

    for (path, why) in [
        (accept_path("kel-p5", event), "another device's proposal"),
        (accept_path("kel-p4", other), "a config_rolled_back event"),
        (accept_path("kel-p4", 999_999), "no such event"),
    ] {
        let (status, body) = s.fleet.post(&path, json!({})).await;
        assert_eq!(status, 404, "{why}: {body}");
        assert!(body["error"].as_str().unwrap().contains("no sensor proposal"), "{why}: {body}");
    }
    s.stop().await;
}
