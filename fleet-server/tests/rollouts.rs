//! Rollouts over the API against a real Mosquitto, with fake devices heartbeating
//! (docs/design/updates.md): what a rollout is refused for and why, the canaries' update
//! orders published retained, a device reporting the new version moving the rollout to
//! its next wave, and ops' pause, resume and abort (abort takes back orders not yet taken
//! and clears them on the broker).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Setup;
use ed25519_dalek::SigningKey;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use simpul_fleet::protocol::control::{Heartbeat, Status};
use simpul_fleet::protocol::release::Manifest;
use simpul_fleet::protocol::{Channel, ControlMessage};
use tokio::sync::mpsc;

const TARGET: &str = "x86_64-unknown-linux-gnu";
const WAIT: Duration = Duration::from_secs(20);

struct World {
    s: Setup,
    http: reqwest::Client,
    /// Every message on `simpul/v1/dev/+/update`: (device, payload).
    orders: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    _watcher: AsyncClient,
}

impl World {
    async fn start() -> World {
        let key = SigningKey::from_bytes(&[1; 32]);
        let s = Setup::start(|c| {
            c.releases.keys = vec![hex::encode(key.verifying_key().as_bytes())];
            c.rollouts.tick = Duration::from_millis(100);
        })
        .await;
        let http = reqwest::Client::new();
        let binary = b"\x7fELF the agent 1.1.0".to_vec();
        let signed = Manifest::of(&binary, "1.1.0", TARGET).unwrap().sign(&key);
        let resp = http
            .put(format!("{}/api/v1/releases/1.1.0/{TARGET}", s.fleet.api))
            .bearer_auth(&s.fleet.token)
            .header("simpul-release-signature", serde_json::to_string(&signed).unwrap())
            .body(binary)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let (watcher, orders) = watch_orders(s.broker.port()).await;
        World { s, http, orders, _watcher: watcher }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.s.fleet.api)).bearer_auth(&self.s.fleet.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The next update message, within [`WAIT`].
    async fn next_order(&mut self) -> (String, Vec<u8>) {
        tokio::time::timeout(WAIT, self.orders.recv()).await.expect("an update message").expect("watcher open")
    }
}

/// A client subscribed to every device's update topic.
async fn watch_orders(port: u16) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let mut opts = MqttOptions::new("order-watcher", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut subscribed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let device = p.topic.split('/').nth(3).unwrap_or_default().to_owned();
                    let _ = tx.send((device, p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    client.subscribe("simpul/v1/dev/+/update", QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(WAIT, subscribed.recv()).await.expect("subscribed");
    (client, rx)
}

/// A device that is online and running `version`.
async fn heartbeat(agent: &common::Agent, version: &str) {
    agent.publish_raw(Channel::Status, Status { online: true, ..Default::default() }.to_json().unwrap()).await;
    let hb = Heartbeat { version: version.to_owned(), uptime_s: 1, ..Default::default() };
    agent.publish_raw(Channel::Heartbeat, hb.to_json().unwrap()).await;
}

fn in_state(rollout: &Value, state: &str) -> Vec<String> {
    rollout["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["state"] == state)
        .filter_map(|d| d["device"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_refused_with_its_reason_for_a_bad_spec_no_release_no_devices_or_another_active() {
    let w = World::start().await;
    let post = |body: Value| w.call(Method::POST, "/api/v1/rollouts", Some(body));
    let cases = [
        (json!({"version": "1.1.0"}), 409, "no devices"),
        (json!({"version": "1.1.0", "waves": [50, 10, 100]}), 400, "grow"),
        (json!({"version": "1.1.0", "canary": 0}), 400, "canary"),
        (json!({"version": "1.1.0", "canaries": 3}), 400, "unknown field"),
        (json!({"version": "1.1.0", "gate": "ten minutes"}), 400, "gate"),
        (json!({"version": "9.9.9"}), 404, "no release 9.9.9"),
        (json!({"version": "1.1.0", "group": "nowhere"}), 404, "no group"),
    ];
    for (body, status, says) in cases {
        let (got, answer) = post(body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(says), "{body}: {answer} should say {says:?}");
    }
    let a = w.s.agent("kel-a").await;
    heartbeat(&a, "1.0.0").await;
    w.s.fleet.until("/api/v1/devices", |v| v["devices"].as_array().is_some_and(|d| d.len() == 1)).await;
    let (got, first) = post(json!({"version": "1.1.0"})).await;
    assert_eq!(got, 201, "{first}");
    let (got, second) = post(json!({"version": "1.1.0"})).await;
    assert_eq!(got, 409, "{second}");
    assert!(second["error"].as_str().unwrap_or_default().contains("rollout 1 is still running"), "{second}");
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_get_a_retained_order_the_next_wave_follows_their_update_and_abort_takes_back_orders_not_taken() {
    let mut w = World::start().await;
    let mut agents = Vec::new();
    for name in ["kel-a", "kel-b", "kel-c", "kel-d"] {
        let a = w.s.agent(name).await;
        heartbeat(&a, "1.0.0").await;
        agents.push(a);
    }
    w.s.fleet.until("/api/v1/devices", |v| v["online"].as_u64() == Some(4)).await;

    let spec = json!({"version": "1.1.0", "canary": 1, "waves": [50, 100], "gate": "100ms"});
    let (status, started) = w.call(Method::POST, "/api/v1/rollouts", Some(spec)).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["progress"][0]["ordered"], 1, "{started}");
    // The canary's order, retained, naming the rollout.
    let (canary, order) = w.next_order().await;
    let order: Value = serde_json::from_slice(&order).unwrap();
    assert_eq!((order["version"].as_str(), order["rollout"].as_u64()), (Some("1.1.0"), Some(1)), "{order}");

    // Pause and resume by ops; pausing twice is refused.
    let (status, paused) = w.call(Method::POST, "/api/v1/rollouts/1/pause", None).await;
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")), "{paused}");
    let (status, _) = w.call(Method::POST, "/api/v1/rollouts/1/pause", None).await;
    assert_eq!(status, 409);
    let (status, resumed) = w.call(Method::POST, "/api/v1/rollouts/1/resume", None).await;
    assert_eq!((status, resumed["state"].as_str()), (200, Some("running")), "{resumed}");

    // The canary reports the new version: after the gate the next wave (up to 50 %) opens.
    let a = agents.iter().find(|a| a.device.as_str() == canary).unwrap();
    heartbeat(a, "1.1.0").await;
    let (next, _) = w.next_order().await;
    assert_ne!(next, canary);
    let (_, shown) = w.call(Method::GET, "/api/v1/rollouts/1", None).await;
    assert_eq!(in_state(&shown, "succeeded"), vec![canary.clone()], "{shown:#}");
    assert_eq!(in_state(&shown, "ordered"), vec![next.clone()], "{shown:#}");

    // Abort: the ordered device's order is taken back (cleared on the broker); the canary
    // stays on what it runs; nothing more opens.
    let (status, aborted) = w.call(Method::POST, "/api/v1/rollouts/1/abort", None).await;
    assert_eq!((status, aborted["state"].as_str()), (200, Some("aborted")), "{aborted}");
    let (cleared, payload) = w.next_order().await;
    assert_eq!((cleared.as_str(), payload.len()), (next.as_str(), 0), "an empty retained message clears the order");
    let (_, shown) = w.call(Method::GET, "/api/v1/rollouts/1", None).await;
    assert_eq!(in_state(&shown, "withdrawn"), vec![next], "{shown:#}");
    assert_eq!(in_state(&shown, "pending").len(), 2);
    let (status, _) = w.call(Method::POST, "/api/v1/rollouts/1/resume", None).await;
    assert_eq!(status, 409, "an aborted rollout stays aborted");
    w.s.stop().await;
}
