//! Test peers: a Mosquitto per test, the fleet in-process, a fake agent.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use simpul_fleet::config::FleetConfig;
use simpul_fleet::protocol::control::{Ack, Event as DeviceEvent};
use simpul_fleet::protocol::{BootId, Channel, ControlMessage, DeviceId, Reading, ReadingBatch, ReadingTime, Topic};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A safety net for every wait: tests wait for events, this only stops a hang.
pub const WAIT: Duration = Duration::from_secs(20);

pub use simpul_tests::Mosquitto;

/// A fleet config for a test: this broker, a DB in `dir`, the API on a free port.
pub fn fleet_config(broker_port: u16, dir: &Path) -> FleetConfig {
    let mut c = FleetConfig::default();
    c.mqtt.broker = Some(format!("127.0.0.1:{broker_port}"));
    c.mqtt.client_id = format!("fleet-{}", std::process::id());
    c.store.path = dir.join("fleet.db");
    c.store.commit_interval = Duration::from_millis(20);
    c.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}

/// The fleet running in-process.
pub struct Fleet {
    pub running: Option<simpul_fleet::Running>,
    pub api: String,
    pub shutdown: CancellationToken,
    /// An `ops` API token (the API needs one since docs/design/auth.md).
    pub token: String,
}

impl Fleet {
    /// Starts the fleet and waits until it is subscribed.
    pub async fn start(config: FleetConfig) -> Fleet {
        let store = simpul_fleet::store::SqliteStore::open(&config.store.path).expect("store opens");
        Fleet::start_with(config, std::sync::Arc::new(store)).await
    }

    /// [`Fleet::start`] with a given store.
    pub async fn start_with(config: FleetConfig, store: std::sync::Arc<dyn simpul_fleet::store::Store>) -> Fleet {
        let token = ops_token(&config.store.path);
        let shutdown = CancellationToken::new();
        let running = simpul_fleet::start_with_store(config, store, shutdown.clone()).await.expect("fleet starts");
        tokio::time::timeout(WAIT, running.ingest_ready.cancelled()).await.expect("fleet subscribed");
        let api = format!("http://{}", running.api_addr);
        Fleet { running: Some(running), api, shutdown, token }
    }

    /// Stops gracefully and waits.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            tokio::time::timeout(WAIT, r.wait()).await.expect("fleet stops");
        }
    }

    /// A GET of `path` with the fleet's ops token.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().get(format!("{}{path}", self.api)).bearer_auth(&self.token)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path).send().await.unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// GETs `path` until `done` holds of its JSON (the fleet commits on its own time; a
    /// 404 is a device not there yet).
    pub async fn until(&self, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let wait = async {
            loop {
                let resp = self.get(path).send().await.unwrap();
                if resp.status() != reqwest::StatusCode::NOT_FOUND {
                    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
                    let v = resp.json().await.unwrap();
                    if done(&v) {
                        return v;
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| panic!("{path} never matched"))
    }

    /// A POST of `body` to `path` with the fleet's ops token: the status and the JSON answer.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp =
            reqwest::Client::new().post(format!("{}{path}", self.api)).bearer_auth(&self.token).json(&body).send();
        let resp = resp.await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// Issues an `ops` API token on the fleet database at `db`, as `simpul-fleet tokens create
/// --offline` does.
pub fn ops_token(db: &Path) -> String {
    let store = simpul_fleet::store::sqlite::SqliteAuthStore::open(db).expect("auth tables open");
    let now = simpul_fleet::auth::now_ms();
    let issued = simpul_fleet::auth::ops::create_token(&store, "tests", simpul_fleet::auth::Role::Ops, now);
    issued.expect("token issued").token
}

/// A test's world: a broker, a temp dir, the fleet on both.
pub struct Setup {
    pub fleet: Fleet,
    pub broker: Mosquitto,
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// Starts a broker and a fleet whose config `tweak` may change.
    pub async fn start(tweak: impl FnOnce(&mut FleetConfig)) -> Setup {
        let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
        let dir = tempfile::tempdir().unwrap();
        let mut config = fleet_config(broker.port(), dir.path());
        tweak(&mut config);
        let fleet = Fleet::start(config).await;
        Setup { fleet, broker, dir }
    }

    /// A fake agent for `device` on this broker.
    pub async fn agent(&self, device: &str) -> Agent {
        Agent::connect(self.broker.port(), device).await
    }

    /// Stops the fleet gracefully (the broker goes on drop).
    pub async fn stop(self) {
        self.fleet.stop().await;
    }
}

/// A fake agent: publishes batches and events, hears its acks.
pub struct Agent {
    pub device: DeviceId,
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<u64>,
    pub last_ack: u64,
}

impl Agent {
    pub async fn connect(broker_port: u16, device: &str) -> Agent {
        let mut opts = MqttOptions::new(format!("agent-{device}"), "127.0.0.1", broker_port);
        opts.set_keep_alive(Duration::from_secs(30));
        Agent::connect_with(opts, device).await
    }

    /// [`Agent::connect`] with options of the caller's (TLS).
    pub async fn connect_with(opts: MqttOptions, device: &str) -> Agent {
        let device = DeviceId::new(device).unwrap();
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, acks) = mpsc::unbounded_channel();
        let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(a) = Ack::from_json(&p.payload) {
                            let _ = tx.send(a.watermark);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let topic = Topic::new(device.clone(), Channel::Ack).name();
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(WAIT, sub_rx.recv()).await.expect("agent subscribed");
        Agent { device, client, acks, last_ack: 0 }
    }

    pub async fn publish(&self, batch: &ReadingBatch) {
        self.publish_raw(Channel::Readings, batch.encode()).await;
    }

    pub async fn publish_raw(&self, channel: Channel, payload: Vec<u8>) {
        let topic = Topic::new(self.device.clone(), channel).name();
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    pub async fn clock_synced(&self, boot_id: BootId, offset_ms: i64) {
        let ev = DeviceEvent::ClockSynced { boot_id, offset_ms, at_mono_ms: 1 };
        self.publish_raw(Channel::Events, ev.to_json().unwrap()).await;
    }

    /// Waits for an ack of exactly `watermark`; panics on a higher one (never over-acked).
    pub async fn wait_ack(&mut self, watermark: u64) {
        let wait = async {
            loop {
                let w = self.acks.recv().await.expect("ack channel open");
                assert!(w <= watermark, "acked {w}, more than the {watermark} expected");
                self.last_ack = w;
                if w == watermark {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no ack {watermark} (last {})", self.last_ack));
    }
}

pub const BOOT: BootId = BootId([7; 16]);

/// A synced reading with seq `seq`.
pub fn reading(seq: u64) -> Reading {
    Reading {
        seq,
        sensor: "river".to_owned(),
        metric: "level".to_owned(),
        unit: "cm".to_owned(),
        value: seq as f64 * 1.5,
        time: ReadingTime {
            wall_ms: 1_795_000_000_000 + seq as i64 * 1000,
            synced: true,
            boot_id: BOOT,
            mono_ms: seq * 1000,
        },
    }
}

/// An unsynced reading taken during `boot`, with the box believing it is 1970.
pub fn unsynced(seq: u64, boot: BootId) -> Reading {
    let mut r = reading(seq);
    r.time = ReadingTime { wall_ms: seq as i64 * 1000, synced: false, boot_id: boot, mono_ms: seq * 1000 };
    r
}

pub fn batch(seqs: impl IntoIterator<Item = u64>) -> ReadingBatch {
    ReadingBatch { readings: seqs.into_iter().map(reading).collect(), dropped: vec![] }
}

/// Every reading after `after`, paging with `limit`, as JSON values.
pub async fn read_all(fleet: &Fleet, after: &str, limit: usize) -> (Vec<serde_json::Value>, String) {
    let mut out = Vec::new();
    let mut cursor = after.to_owned();
    loop {
        let page = fleet.get_json(&format!("/api/v1/readings?after={cursor}&limit={limit}")).await;
        let readings = page["readings"].as_array().unwrap().clone();
        cursor = page["next"].as_str().unwrap().to_owned();
        if readings.is_empty() {
            return (out, cursor);
        }
        out.extend(readings);
    }
}

/// A device's key and certificate from `ca` (PEM), as enrolment issues them.
pub fn device_cert(ca: &simpul_fleet::trust::FleetCa, device: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, device);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let id = DeviceId::new(device).unwrap();
    let issued = ca.sign_device(&csr, &id, Duration::from_secs(3600), std::time::SystemTime::now()).unwrap().unwrap();
    (key.serialize_pem(), issued.pem)
}
