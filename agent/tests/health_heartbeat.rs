//! The heartbeat reaches MQTT: the whole agent (`run_with_clock`) against a real
//! Mosquitto, with a subscriber on the device's heartbeat topic.

mod uplink_support;

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use simpul_protocol::control::{Heartbeat, SensorState};
use simpul_protocol::{Channel, ControlMessage, Topic};
use simpul_tests::Mosquitto;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uplink_support::{device, synced_clock, temp_buffer_path, within};

/// A subscriber on `topic`; its publishes (topic, qos, retain, payload) arrive on the channel.
async fn subscribe(port: u16, topic: String) -> mpsc::UnboundedReceiver<rumqttc::Publish> {
    let mut o = MqttOptions::new("heartbeat-watcher", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(topic.clone(), QoS::AtMostOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = subscribed_tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    within("the watcher subscribed", subscribed).await.expect("subscribed");
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_publishes_a_heartbeat_with_its_sensor_state_and_buffer_depth_at_qos_0() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let (_dir, path) = temp_buffer_path();
    let topic = Topic::new(device(), Channel::Heartbeat).name();
    let mut heartbeats = subscribe(broker.port(), topic.clone()).await;

    let toml = format!(
        "[device]\nid = \"{}\"\n[buffer]\npath = {:?}\nflush_interval = \"50ms\"\n\
         [uplink]\nenabled = true\nbroker = \"127.0.0.1:{}\"\nkeepalive = \"5s\"\nbatch_interval = \"50ms\"\n\
         reconnect_min = \"50ms\"\nreconnect_max = \"500ms\"\n\
         [health]\nheartbeat_interval = \"1s\"\n\
         [sensors.demo]\nkind = \"simulated\"\ninterval = \"10ms\"\n",
        device(),
        path.display().to_string(),
        broker.port()
    );
    let config = simpul_agent::config::load_str("agent.toml", &toml).expect("config");
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(simpul_agent::run::run_with_clock(config, synced_clock(), shutdown.clone()));

    // Nothing acknowledges the readings, so once one flush is in, the buffer is not empty.
    let (publish, heartbeat) = within("a heartbeat with the sensor reading and a buffer depth", async {
        loop {
            let p = heartbeats.recv().await.expect("the watcher runs");
            let hb = Heartbeat::from_json(&p.payload).expect("a heartbeat JSON");
            let reading = hb.sensors.get("demo").is_some_and(|s| s.state == SensorState::Ok);
            if reading && hb.buffer_depth.is_some_and(|d| d > 0) {
                return (p, hb);
            }
        }
    })
    .await;
    assert_eq!(publish.topic, topic);
    assert_eq!((publish.qos, publish.retain), (QoS::AtMostOnce, false));
    assert_eq!(heartbeat.version, env!("CARGO_PKG_VERSION"));
    assert!(heartbeat.link.as_ref().is_some_and(|l| l.connected && l.connects >= 1), "{heartbeat:?}");
    assert!(heartbeat.sensors["demo"].last_values.contains_key("level"), "{heartbeat:?}");
    assert!(heartbeat.cameras.is_empty());

    shutdown.cancel();
    within("the agent stops", agent).await.expect("join").expect("run");
}
