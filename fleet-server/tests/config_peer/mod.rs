//! A fake agent's config side: hears its retained desired config, reports what it did.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use simpul_fleet::protocol::control::{DesiredConfig, ReportedConfig};
use simpul_fleet::protocol::{Channel, ControlMessage, DeviceId, Topic};
use tokio::sync::mpsc;

use crate::common::{Fleet, WAIT};

/// A desired config as heard, with the retain flag the broker delivered it with.
#[derive(Debug)]
pub struct Heard {
    pub desired: DesiredConfig,
    pub retained: bool,
}

/// A device subscribed to its `config/desired`.
pub struct ConfigPeer {
    pub device: DeviceId,
    client: AsyncClient,
    heard: mpsc::UnboundedReceiver<Heard>,
}

impl ConfigPeer {
    /// Connects as `device` (its client id is its id, as the broker's ACL wants) and subscribes.
    pub async fn connect(broker: SocketAddr, device: &str) -> ConfigPeer {
        ConfigPeer::connect_as(broker, device, device).await
    }

    /// A watcher of `device`'s desired config with another client id (external broker only:
    /// the embedded broker's ACL wants a device's client id to be its id).
    pub async fn watch(broker: SocketAddr, device: &str) -> ConfigPeer {
        ConfigPeer::connect_as(broker, &format!("watch-{device}"), device).await
    }

    async fn connect_as(broker: SocketAddr, client_id: &str, device: &str) -> ConfigPeer {
        let device = DeviceId::new(device).unwrap();
        let mut opts = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, heard) = mpsc::unbounded_channel();
        let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let desired = DesiredConfig::from_json(&p.payload).unwrap();
                        let _ = tx.send(Heard { desired, retained: p.retain });
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        client.subscribe(Topic::new(device.clone(), Channel::ConfigDesired).name(), QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(WAIT, sub_rx.recv()).await.expect("subscribed");
        ConfigPeer { device, client, heard }
    }

    /// The next desired config heard.
    pub async fn next(&mut self) -> Heard {
        tokio::time::timeout(WAIT, self.heard.recv()).await.expect("a desired config").unwrap()
    }

    /// Nothing more heard within `quiet`.
    pub async fn hears_nothing_for(&mut self, quiet: Duration) {
        if let Ok(h) = tokio::time::timeout(quiet, self.heard.recv()).await {
            panic!("heard {h:?}");
        }
    }

    /// Publishes a report, retained, as the agent does.
    pub async fn report(&self, report: &ReportedConfig) {
        let topic = Topic::new(self.device.clone(), Channel::ConfigReported).name();
        self.client.publish(topic, QoS::AtLeastOnce, true, report.to_json().unwrap()).await.unwrap();
    }

    pub async fn publish(&self, channel: Channel, payload: Vec<u8>) {
        let topic = Topic::new(self.device.clone(), channel).name();
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
}

/// A PUT with the fleet's ops token: (status, JSON body).
pub async fn put(fleet: &Fleet, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}{path}", fleet.api))
        .bearer_auth(&fleet.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sets a device's override; asserts it was taken and returns its new version.
pub async fn put_device_config(fleet: &Fleet, device: &str, toml: &str, comment: &str) -> u64 {
    let (status, body) =
        put(fleet, &format!("/api/v1/devices/{device}/config"), json!({"toml": toml, "comment": comment})).await;
    assert_eq!(status, 200, "{body}");
    body["versions"][0]["version"].as_u64().unwrap()
}
