//! What the fleet relies on from its embedded MQTT broker, tested against the real broker
//! started in-process on 127.0.0.1:0 with rumqttc (MQTT 3.1.1) clients, the client the
//! agent uses. Tests wait for events; every wait has a timeout as a safety net, none sleeps.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use simpul_fleet::broker::{self, BrokerConfig, BrokerHandle};

const WAIT: Duration = Duration::from_secs(10);
const FLEET: &str = "simpul-fleet";

/// The broker under test: the embedded one, or Mosquitto (the external broker the fleet also
/// runs against) for the behaviours that do not depend on our ACL.
enum Target {
    Embedded { handle: BrokerHandle, shutdown: CancellationToken },
    Mosquitto { port: u16, _child: KillOnDrop, _dir: tempfile::TempDir },
}

impl Target {
    async fn embedded() -> Target {
        Target::embedded_with(BrokerConfig {
            listen: "127.0.0.1:0".parse().expect("valid test input"),
            ..BrokerConfig::default()
        })
        .await
    }

    async fn embedded_with(config: BrokerConfig) -> Target {
        let shutdown = CancellationToken::new();
        let handle = broker::start(&config, shutdown.clone()).await.expect("broker starts");
        Target::Embedded { handle, shutdown }
    }

    /// Starts `mosquitto` (Debian's package) on a free loopback port, or `None` when it is not
    /// installed.
    async fn mosquitto() -> Option<Target> {
        let bin =
            ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| std::path::Path::new(p).exists())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n"),
        )
        .ok()?;
        let child = KillOnDrop(
            std::process::Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?,
        );
        // Ready when it accepts a connection.
        tokio::time::timeout(WAIT, async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("mosquitto listens");
        Some(Target::Mosquitto { port, _child: child, _dir: dir })
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Target::Embedded { handle, .. } => handle.local_addr(),
            Target::Mosquitto { port, .. } => ([127, 0, 0, 1], *port).into(),
        }
    }

    fn options(&self, client_id: &str, username: Option<&str>) -> MqttOptions {
        let addr = self.addr();
        let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(u) = username {
            o.set_credentials(u, "");
        }
        o
    }

    async fn stop(self) {
        if let Target::Embedded { handle, shutdown } = self {
            shutdown.cancel();
            tokio::time::timeout(WAIT, handle.stopped()).await.expect("broker stops");
        }
    }
}

/// The Mosquitto child process, killed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client whose event loop runs in its own task and reports every event.
struct Peer {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, String>>,
    task: JoinHandle<()>,
}

impl Peer {
    /// Connects and waits for the CONNACK; returns it with the peer.
    async fn connect(options: MqttOptions) -> (Peer, rumqttc::ConnAck) {
        let mut peer = Peer::spawn(options);
        let ack = peer
            .next_matching(|e| match e {
                Ok(Event::Incoming(Packet::ConnAck(a))) => Some(Ok(a.clone())),
                Err(e) => Some(Err(e.clone())),
                _ => None,
            })
            .await
            .expect("connected");
        (peer, ack)
    }

    fn spawn(options: MqttOptions) -> Peer {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(eventloop, tx));
        Peer { client, events, task }
    }

    async fn next_matching<T>(&mut self, mut f: impl FnMut(&Result<Event, String>) -> Option<T>) -> T {
        tokio::time::timeout(WAIT, async {
            loop {
                let e = self.events.recv().await.expect("event loop still running");
                if let Some(t) = f(&e) {
                    return t;
                }
            }
        })
        .await
        .expect("the awaited event came in time")
    }

    async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe queued");
        self.next_matching(|e| match e {
            Ok(Event::Incoming(Packet::SubAck(a))) => Some(a.return_codes[0]),
            _ => None,
        })
        .await
    }

    async fn next_publish(&mut self) -> Publish {
        self.next_matching(|e| match e {
            Ok(Event::Incoming(Packet::Publish(p))) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    async fn publish_acked(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await.expect("publish queued");
        self.next_matching(|e| match e {
            Ok(Event::Incoming(Packet::PubAck(_))) => Some(()),
            _ => None,
        })
        .await;
    }

    /// Sends DISCONNECT, then closes the connection as MQTT asks of a client. (rmqtt leaves
    /// the connection open after a DISCONNECT until the client closes it; Mosquitto closes it.)
    async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect queued");
        self.next_matching(|e| match e {
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => Some(()),
            _ => None,
        })
        .await;
        self.task.abort();
        let _ = self.task.await;
    }

    /// Drops the TCP connection without DISCONNECT, as a device losing power would.
    async fn vanish(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls the event loop until it fails (no automatic reconnect in these tests).
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, String>>) {
    loop {
        match eventloop.poll().await {
            Ok(e) => {
                if tx.send(Ok(e)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    }
}

fn fleet(broker: &Target, client_id: &str) -> MqttOptions {
    broker.options(client_id, Some(FLEET))
}

fn device(broker: &Target, id: &str) -> MqttOptions {
    broker.options(id, Some(id))
}

fn readings(device: &str) -> String {
    format!("simpul/v1/dev/{device}/readings")
}

async fn qos1_messages_reach_a_subscriber_exactly_as_sent(broker: &Target) {
    let (mut sub, _) = Peer::connect(fleet(broker, "ingest")).await;
    assert_eq!(sub.subscribe("simpul/v1/dev/+/readings").await, SubscribeReasonCode::Success(QoS::AtLeastOnce));
    let (mut dev, _) = Peer::connect(device(broker, "dev-1")).await;

    // Binary payloads, including an empty one, NULs and one near 64 KiB.
    let sent: Vec<Vec<u8>> = (0..20u8)
        .map(|i| match i {
            0 => Vec::new(),
            1 => vec![0; 65_000],
            _ => (0..=i).flat_map(|b| [b, 0, 255]).collect(),
        })
        .collect();
    for p in &sent {
        dev.publish_acked(&readings("dev-1"), p.clone(), false).await;
    }
    for p in &sent {
        let got = sub.next_publish().await;
        assert_eq!(got.topic, readings("dev-1"));
        assert_eq!(got.qos, QoS::AtLeastOnce);
        assert!(!got.retain);
        assert_eq!(&got.payload[..], &p[..], "payloads arrive unchanged and in order");
    }
}

async fn a_retained_message_reaches_a_late_subscriber(broker: &Target) {
    let topic = "simpul/v1/dev/dev-1/config/desired";
    let (mut fleet_client, _) = Peer::connect(fleet(broker, "config")).await;
    fleet_client.publish_acked(topic, b"version 1".to_vec(), true).await;
    fleet_client.publish_acked(topic, b"version 2".to_vec(), true).await;

    let (mut dev, _) = Peer::connect(device(broker, "dev-1")).await;
    assert_eq!(dev.subscribe(topic).await, SubscribeReasonCode::Success(QoS::AtLeastOnce));
    let got = dev.next_publish().await;
    assert!(got.retain, "delivered as a retained message");
    assert_eq!(&got.payload[..], b"version 2", "only the latest retained message is kept");
}

async fn a_last_will_is_published_when_a_client_vanishes(broker: &Target) {
    let status = "simpul/v1/dev/dev-1/status";
    let (mut watcher, _) = Peer::connect(fleet(broker, "health")).await;
    watcher.subscribe("simpul/v1/dev/+/status").await;

    let mut o = device(broker, "dev-1");
    o.set_last_will(LastWill::new(status, b"offline".to_vec(), QoS::AtLeastOnce, true));
    let (mut dev, _) = Peer::connect(o).await;
    dev.publish_acked(status, b"online".to_vec(), true).await;
    assert_eq!(&watcher.next_publish().await.payload[..], b"online");

    dev.vanish().await;
    let will = watcher.next_publish().await;
    assert_eq!(will.topic, status);
    assert_eq!(&will.payload[..], b"offline");

    // The will was retained, so whoever looks later sees the device offline.
    let (mut late, _) = Peer::connect(fleet(broker, "dashboard")).await;
    late.subscribe(status).await;
    let got = late.next_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"offline");
}

async fn a_last_will_is_not_published_after_a_clean_disconnect(broker: &Target) {
    let (mut watcher, _) = Peer::connect(fleet(broker, "health")).await;
    watcher.subscribe("simpul/v1/dev/+/status").await;
    let mut o = device(broker, "dev-1");
    o.set_last_will(LastWill::new("simpul/v1/dev/dev-1/status", b"offline".to_vec(), QoS::AtLeastOnce, false));
    let (dev, _) = Peer::connect(o).await;
    dev.disconnect().await;

    // A later message on the same topic is the next thing the watcher sees: no will before it.
    let (mut dev2, _) = Peer::connect(device(broker, "dev-1")).await;
    dev2.publish_acked("simpul/v1/dev/dev-1/status", b"back".to_vec(), false).await;
    assert_eq!(&watcher.next_publish().await.payload[..], b"back");
}

async fn a_shared_subscription_splits_messages_between_group_members(broker: &Target) {
    let shared = "$share/simpul-fleet/simpul/v1/dev/+/readings";
    let sync = "simpul/v1/dev/dev-1/events";
    let mut members = Vec::new();
    for id in ["ingest-a", "ingest-b"] {
        let (mut m, _) = Peer::connect(fleet(broker, id)).await;
        assert_eq!(m.subscribe(shared).await, SubscribeReasonCode::Success(QoS::AtLeastOnce));
        m.subscribe(sync).await; // a plain subscription, to know when a member has seen everything
        members.push(m);
    }
    let (mut dev, _) = Peer::connect(device(broker, "dev-1")).await;
    let n = 40u32;
    for i in 0..n {
        dev.publish_acked(&readings("dev-1"), i.to_be_bytes().to_vec(), false).await;
    }
    dev.publish_acked(sync, b"end".to_vec(), false).await;

    // Messages to one client arrive in order, so once a member has the sync message it has
    // every reading the broker gave it.
    let mut got = Vec::new();
    for m in &mut members {
        let mut mine = Vec::new();
        loop {
            let p = m.next_publish().await;
            if p.topic == sync {
                break;
            }
            mine.push(u32::from_be_bytes(p.payload[..].try_into().expect("valid test input")));
        }
        got.push(mine);
    }
    println!("shared subscription split: {} / {}", got[0].len(), got[1].len());
    let all: Vec<u32> = got.iter().flatten().copied().collect();
    let unique: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(all.len(), n as usize, "no message delivered twice");
    assert_eq!(unique, (0..n).collect(), "every message delivered");
    assert!(got.iter().all(|g| !g.is_empty()), "both members get a share");
}

async fn a_persistent_session_gets_qos1_messages_published_while_it_was_away(broker: &Target) {
    let mut o = fleet(broker, "ingest");
    o.set_clean_session(false);
    let (mut ingest, ack) = Peer::connect(o.clone()).await;
    assert!(!ack.session_present);
    ingest.subscribe("simpul/v1/dev/+/readings").await;
    ingest.disconnect().await;

    let (mut dev, _) = Peer::connect(device(broker, "dev-1")).await;
    let sent: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3]).collect();
    for p in &sent {
        dev.publish_acked(&readings("dev-1"), p.clone(), false).await;
    }

    // Back, without subscribing again: the session kept the subscription and the messages.
    let (mut ingest, ack) = Peer::connect(o).await;
    assert!(ack.session_present);
    for p in &sent {
        let got = ingest.next_publish().await;
        assert_eq!(got.qos, QoS::AtLeastOnce);
        assert_eq!(&got.payload[..], &p[..]);
    }
}

async fn a_persistent_shared_subscriber_gets_qos1_messages_published_while_it_was_away(broker: &Target) {
    // The fleet's ingest is a shared subscriber; when the only member restarts its MQTT
    // client, the readings sent meanwhile must wait in its session.
    let mut o = fleet(broker, "ingest-a");
    o.set_clean_session(false);
    let (mut ingest, _) = Peer::connect(o.clone()).await;
    ingest.subscribe("$share/simpul-fleet/simpul/v1/dev/+/readings").await;
    ingest.vanish().await;

    let (mut dev, _) = Peer::connect(device(broker, "dev-1")).await;
    for i in 0..5u8 {
        dev.publish_acked(&readings("dev-1"), vec![i], false).await;
    }
    let (mut ingest, ack) = Peer::connect(o).await;
    assert!(ack.session_present);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(ingest.next_publish().await.payload[0]);
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_device_cannot_publish_under_another_devices_topic() {
    let broker = Target::embedded().await;
    let (mut watcher, _) = Peer::connect(fleet(&broker, "ingest")).await;
    watcher.subscribe("simpul/v1/dev/+/readings").await;

    let (mut dev1, _) = Peer::connect(device(&broker, "dev-1")).await;
    dev1.client
        .publish(readings("dev-2"), QoS::AtLeastOnce, false, b"forged".to_vec())
        .await
        .expect("valid test input");
    // The broker drops the message and the connection.
    dev1.next_matching(|e| e.is_err().then_some(())).await;

    let (mut dev2, _) = Peer::connect(device(&broker, "dev-2")).await;
    dev2.publish_acked(&readings("dev-2"), b"genuine".to_vec(), false).await;
    let got = watcher.next_publish().await;
    assert_eq!(&got.payload[..], b"genuine", "the forged message never reached the fleet");
    broker.stop().await;
}

#[tokio::test]
async fn a_device_cannot_subscribe_to_another_devices_topics() {
    let broker = Target::embedded().await;
    let (mut dev1, _) = Peer::connect(device(&broker, "dev-1")).await;
    assert_eq!(dev1.subscribe("simpul/v1/dev/dev-2/config/desired").await, SubscribeReasonCode::Failure);
    assert_eq!(dev1.subscribe("simpul/v1/dev/+/readings").await, SubscribeReasonCode::Failure);
    assert_eq!(dev1.subscribe("$share/g/simpul/v1/dev/+/readings").await, SubscribeReasonCode::Failure);
    assert_eq!(dev1.subscribe("#").await, SubscribeReasonCode::Failure);
    assert_eq!(
        dev1.subscribe("simpul/v1/dev/dev-1/config/desired").await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_device_cannot_leave_a_last_will_on_another_devices_topic() {
    // rmqtt publishes a will without its publish ACL hook, so the will is checked at CONNECT.
    let broker = Target::embedded().await;
    let mut o = device(&broker, "dev-1");
    o.set_last_will(LastWill::new("simpul/v1/dev/dev-2/status", b"offline".to_vec(), QoS::AtLeastOnce, true));
    let mut dev = Peer::spawn(o);
    let refused = dev.next_matching(|e| e.as_ref().err().cloned()).await;
    assert!(refused.contains("NotAuthorized") || refused.contains("refused"), "{refused}");

    // Nor take over another client's session by using its client id.
    let o = broker.options("ingest", Some("dev-1"));
    let mut dev = Peer::spawn(o);
    let refused = dev.next_matching(|e| e.as_ref().err().cloned()).await;
    assert!(refused.contains("NotAuthorized") || refused.contains("refused"), "{refused}");
    broker.stop().await;
}

#[tokio::test]
async fn stopping_the_broker_disconnects_clients_and_frees_the_port() {
    let broker = Target::embedded().await;
    let addr = broker.addr();
    let (mut dev, ack) = Peer::connect(device(&broker, "dev-1")).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    broker.stop().await;
    dev.next_matching(|e| e.is_err().then_some(())).await;
    // The port is free again: a new broker can take it.
    let again = Target::embedded_with(BrokerConfig { listen: addr, ..BrokerConfig::default() }).await;
    assert_eq!(again.addr(), addr);
    again.stop().await;
}

#[tokio::test]
async fn a_busy_port_is_an_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("valid test input");
    let config = BrokerConfig { listen: taken.local_addr().expect("valid test input"), ..BrokerConfig::default() };
    let err = broker::start(&config, CancellationToken::new()).await.expect_err("port in use");
    assert!(matches!(err, broker::BrokerError::Bind { .. }), "{err}");
}

#[tokio::test]
async fn with_the_acl_off_any_client_may_use_any_topic() {
    let mut config =
        BrokerConfig { listen: "127.0.0.1:0".parse().expect("valid test input"), ..BrokerConfig::default() };
    config.acl.enabled = false;
    let broker = Target::embedded_with(config).await;
    let (mut a, _) = Peer::connect(broker.options("anything", None)).await;
    assert_eq!(a.subscribe("#").await, SubscribeReasonCode::Success(QoS::AtLeastOnce));
    a.publish_acked("lab/x", b"1".to_vec(), false).await;
    let got: HashSet<String> = [a.next_publish().await.topic].into();
    assert!(got.contains("lab/x"));
    broker.stop().await;
}

/// Runs a behaviour against the embedded broker and against Mosquitto (skipped, with a note,
/// when Mosquitto is not installed).
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Target;

            #[tokio::test]
            async fn embedded() {
                let broker = Target::embedded().await;
                super::$name(&broker).await;
                broker.stop().await;
            }

            #[tokio::test]
            async fn mosquitto() {
                let Some(broker) = Target::mosquitto().await else {
                    eprintln!("mosquitto is not installed: skipped");
                    return;
                };
                super::$name(&broker).await;
                broker.stop().await;
            }
        }
    )*};
}

on_both_brokers!(
    qos1_messages_reach_a_subscriber_exactly_as_sent,
    a_retained_message_reaches_a_late_subscriber,
    a_last_will_is_published_when_a_client_vanishes,
    a_last_will_is_not_published_after_a_clean_disconnect,
    a_shared_subscription_splits_messages_between_group_members,
    a_persistent_session_gets_qos1_messages_published_while_it_was_away,
    a_persistent_shared_subscriber_gets_qos1_messages_published_while_it_was_away
);

/// Counts the publishes that arrive before `quiet` passes without one, acking none (the
/// client has manual acks): what the broker's in-flight window let through.
async fn publishes_before_acking(peer: &mut Peer, quiet: Duration) -> Vec<Publish> {
    let mut got = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(quiet, peer.events.recv()).await {
        if let Ok(Event::Incoming(Packet::Publish(p))) = e {
            got.push(p);
        }
    }
    got
}

#[tokio::test]
async fn the_fleet_gets_a_wider_in_flight_window_than_a_device() {
    // Ingest acks a batch only after committing it, so the window the broker gives the
    // fleet's session bounds how many batches one commit gathers (fleet-ingest.md).
    let broker = Target::embedded().await;
    let defaults = BrokerConfig::default();
    let n = 200;
    assert!(usize::from(defaults.max_inflight) < n && n <= usize::from(defaults.fleet_max_inflight));

    let mut o = fleet(&broker, "ingest");
    o.set_manual_acks(true);
    let (mut ingest, _) = Peer::connect(o).await;
    ingest.subscribe("simpul/v1/dev/+/readings").await;
    let mut o = device(&broker, "dev-1");
    o.set_manual_acks(true);
    let (mut dev, _) = Peer::connect(o).await;
    dev.subscribe("simpul/v1/dev/dev-1/config/desired").await;

    let (mut sender, _) = Peer::connect(fleet(&broker, "config")).await;
    let (mut dev2, _) = Peer::connect(device(&broker, "dev-2")).await;
    for i in 0..n {
        dev2.publish_acked(&readings("dev-2"), vec![1, i as u8], false).await;
        sender.publish_acked("simpul/v1/dev/dev-1/config/desired", vec![2, i as u8], false).await;
    }
    let quiet = Duration::from_millis(500);
    assert_eq!(publishes_before_acking(&mut ingest, quiet).await.len(), n, "the fleet has every message in hand");
    let to_device = publishes_before_acking(&mut dev, quiet).await;
    assert_eq!(to_device.len(), usize::from(defaults.max_inflight), "a device holds at most its window");
    // Acking one lets the next one through.
    dev.client.ack(&to_device[0]).await.expect("ack queued");
    assert_eq!(dev.next_publish().await.payload[1], defaults.max_inflight as u8);
    broker.stop().await;
}
