//! The embedded broker's devices' listener: mutual TLS with certificates of the fleet CA,
//! the certificate's CN the only identity, a device kept to its own topics, and what it
//! tries beyond them recorded as a security event (docs/design/trust.md).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Fleet, WAIT, batch};
use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use simpul_fleet::broker::SecurityEvent;
use simpul_fleet::config::FleetConfig;
use simpul_fleet::protocol::{Channel, DeviceId, Topic};
use simpul_fleet::store::sqlite::SqliteTrustStore;
use simpul_fleet::trust::FleetCa;
use simpul_fleet::trust::enrol::{EnrolRequest, Enroller};
use simpul_fleet::trust::store::TrustStore;
use simpul_fleet::trust::tokens::{self, TokenRequest};

struct World {
    fleet: Fleet,
    tls: SocketAddr,
    plain: SocketAddr,
    ca: FleetCa,
    trust: SqliteTrustStore,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        World::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut FleetConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut c = FleetConfig::default();
        c.mqtt.broker = None;
        c.broker.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.broker.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.trust.dir = dir.path().join("trust");
        c.store.path = dir.path().join("fleet.db");
        c.store.commit_interval = Duration::from_millis(20);
        c.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        tweak(&mut c);
        let trust_dir = c.trust.dir.clone();
        let fleet = Fleet::start(c).await;
        let running = fleet.running.as_ref().unwrap();
        let (plain, tls) = (running.broker_addr.unwrap(), running.broker_tls_addr.expect("the TLS listener runs"));
        let ca = FleetCa::load_or_create(&trust_dir).unwrap();
        let trust = SqliteTrustStore::open(&dir.path().join("fleet.db")).unwrap();
        World { fleet, tls, plain, ca, trust, _dir: dir }
    }

    /// A key and a certificate for `device` from the fleet CA, as enrolment issues them.
    fn device_cert(&self, device: &str) -> (String, String) {
        common::device_cert(&self.ca, device)
    }

    /// A key and certificate for `device` enrolled as a box does (token, CSR, recorded).
    fn enrolled_cert(&self) -> impl Fn(&str) -> (String, String) + '_ {
        move |device| {
            let store: Arc<dyn TrustStore> =
                Arc::new(SqliteTrustStore::open(&self._dir.path().join("fleet.db")).unwrap());
            let req =
                TokenRequest { group: None, site: None, expires: Duration::from_secs(600), created_by: "t".into() };
            let now = simpul_fleet::auth::now_ms();
            let token = tokens::create(store.as_ref(), self.ca.fleet_id(), &req, now).unwrap().token;
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, device);
            params.distinguished_name = dn;
            let csr = params.serialize_request(&key).unwrap().pem().unwrap();
            let ca = Arc::new(FleetCa::load_or_create(&self._dir.path().join("trust")).unwrap());
            let enroller = Enroller { ca, store, validity: Duration::from_secs(3600), reserved: vec![] };
            let req = EnrolRequest { token, device_id: device.to_owned(), csr };
            let enrolled = enroller.enrol(&req, SystemTime::now()).unwrap().unwrap();
            (key.serialize_pem(), enrolled.certificate)
        }
    }

    /// Security events recorded for `identity`, once there are at least `n`.
    async fn security_events(&self, identity: &str, n: usize) -> Vec<SecurityEvent> {
        let wait = async {
            loop {
                let events = self.trust.security_events(Some(identity), 100).unwrap();
                if events.len() >= n {
                    return events;
                }
                // The events are stored by a task of their own: poll the table.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(WAIT, wait).await.expect("security events recorded")
    }
}

/// A certificate of the fleet CA with no CN at all (the CA never issues one; a stolen CA
/// key or a bug could).
fn nameless_cert(trust_dir_ca_pem: &str, ca_key_pem: &str) -> (String, String) {
    let issuer = Issuer::from_ca_cert_pem(trust_dir_ca_pem, KeyPair::from_pem(ca_key_pem).unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (key.serialize_pem(), cert.pem())
}

/// A TLS client config on ring trusting `ca_pem`, presenting `client` if given.
fn tls_config(ca_pem: &str, client: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((key, cert)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

fn options(client_id: &str, addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", addr.port());
    o.set_keep_alive(Duration::from_secs(5));
    if let Some(tls) = tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    o
}

/// What became of a connection attempt.
#[derive(Debug, PartialEq)]
enum Connected {
    Yes,
    Refused(ConnectReturnCode),
    Failed(String),
}

async fn connect(o: MqttOptions) -> (AsyncClient, EventLoop, Connected) {
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == ConnectReturnCode::Success => {
                    return Connected::Yes;
                }
                Ok(Event::Incoming(Packet::ConnAck(a))) => return Connected::Refused(a.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Connected::Refused(code),
                Err(e) => return Connected::Failed(e.to_string()),
            }
        }
    })
    .await
    .expect("the broker answers");
    (client, eventloop, outcome)
}

/// Polls until `want` is seen or the connection ends; returns what ended it.
async fn poll_until(eventloop: &mut EventLoop, want: impl Fn(&Packet) -> bool) -> Result<Packet, String> {
    tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(p)) if want(&p) => return Ok(p),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("an answer from the broker")
}

fn topic(device: &str, channel: Channel) -> String {
    Topic::new(DeviceId::new(device).unwrap(), channel).name()
}

#[tokio::test]
async fn a_device_publishing_as_another_and_subscribing_to_its_config_is_refused_and_recorded() {
    let w = World::start().await;
    let a = w.device_cert("kel-a");

    // B's desired config is there, retained, as the fleet keeps it.
    let (fleet_client, mut fleet_loop, up) = connect(options("simpul-fleet", w.plain, None)).await;
    assert_eq!(up, Connected::Yes);
    let desired = topic("kel-b", Channel::ConfigDesired);
    fleet_client.publish(&desired, QoS::AtLeastOnce, true, b"secret config of kel-b".to_vec()).await.unwrap();
    poll_until(&mut fleet_loop, |p| matches!(p, Packet::PubAck(_))).await.unwrap();

    let (client, mut eventloop, up) =
        connect(options("kel-a", w.tls, Some(tls_config(w.ca.cert_pem(), Some(&a))))).await;
    assert_eq!(up, Connected::Yes);
    client.subscribe(&desired, QoS::AtLeastOnce).await.unwrap();
    let suback = poll_until(&mut eventloop, |p| matches!(p, Packet::SubAck(_) | Packet::Publish(_))).await.unwrap();
    let Packet::SubAck(suback) = suback else { panic!("kel-a received kel-b's config: {suback:?}") };
    assert_eq!(suback.return_codes, vec![rumqttc::SubscribeReasonCode::Failure], "subscription refused");

    client
        .publish(topic("kel-b", Channel::Readings), QoS::AtLeastOnce, false, batch([1, 2, 3]).encode())
        .await
        .unwrap();
    let ended = poll_until(&mut eventloop, |p| matches!(p, Packet::PubAck(_))).await;
    assert!(ended.is_err(), "a publish as another device ends the connection, not a PUBACK: {ended:?}");

    let events = w.security_events("kel-a", 2).await;
    let kinds: Vec<(&str, &str)> = events.iter().map(|e| (e.kind.as_str(), e.detail.as_str())).collect();
    assert!(kinds.contains(&("subscribe_refused", desired.as_str())), "{kinds:?}");
    assert!(kinds.contains(&("publish_refused", "simpul/v1/dev/kel-b/readings")), "{kinds:?}");
    assert!(events.iter().all(|e| e.remote.starts_with("127.0.0.1:")), "{events:?}");

    // Nothing reached kel-b's data.
    let (status, _) = (w.fleet.get("/api/v1/devices/kel-b").send().await.unwrap().status(), ());
    assert_eq!(status.as_u16(), 404, "kel-b has no data at the fleet");
    w.fleet.stop().await;
}

#[tokio::test]
async fn a_device_is_who_its_certificate_says_whatever_username_it_sends() {
    let w = World::start().await;
    let a = w.device_cert("kel-a");
    let mut o = options("kel-a", w.tls, Some(tls_config(w.ca.cert_pem(), Some(&a))));
    o.set_credentials("simpul-fleet", "");
    let (client, mut eventloop, up) = connect(o).await;
    assert_eq!(up, Connected::Yes, "the CN, not the username, is the identity");
    // Not the fleet: its own readings go through, another device's topic does not.
    client.publish(topic("kel-a", Channel::Readings), QoS::AtLeastOnce, false, batch([1, 2]).encode()).await.unwrap();
    poll_until(&mut eventloop, |p| matches!(p, Packet::PubAck(_))).await.expect("its own readings are taken");
    w.fleet.until("/api/v1/devices/kel-a", |d| d["watermark"].as_u64() == Some(2)).await;
    client.subscribe("simpul/v1/dev/+/readings", QoS::AtLeastOnce).await.unwrap();
    let suback = poll_until(&mut eventloop, |p| matches!(p, Packet::SubAck(_))).await.unwrap();
    let Packet::SubAck(suback) = suback else { unreachable!() };
    assert_eq!(suback.return_codes, vec![rumqttc::SubscribeReasonCode::Failure]);
    w.fleet.stop().await;
}

#[tokio::test]
async fn clients_without_a_certificate_of_the_fleet_or_without_a_name_cannot_connect() {
    let w = World::start().await;
    let ca_pem = w.ca.cert_pem().to_owned();

    let (_, _, none) = connect(options("kel-a", w.tls, Some(tls_config(&ca_pem, None)))).await;
    assert!(matches!(none, Connected::Failed(_)), "no client certificate: {none:?}");

    let other = FleetCa::create(SystemTime::now()).unwrap();
    let foreign = common::device_cert(&other, "kel-a");
    let (_, _, foreign) = connect(options("kel-a", w.tls, Some(tls_config(&ca_pem, Some(&foreign))))).await;
    assert!(matches!(foreign, Connected::Failed(_)), "a certificate of another CA: {foreign:?}");

    let key_pem = std::fs::read_to_string(w._dir.path().join("trust").join("ca.key")).unwrap();
    let nameless = nameless_cert(&ca_pem, &key_pem);
    let mut o = options("simpul-fleet", w.tls, Some(tls_config(&ca_pem, Some(&nameless))));
    o.set_credentials("simpul-fleet", "");
    let (_, _, nameless) = connect(o).await;
    assert_eq!(nameless, Connected::Refused(ConnectReturnCode::NotAuthorized), "no CN, no identity");
    let events = w.security_events("simpul-fleet", 1).await;
    assert_eq!(events[0].kind, "connect_refused");
    assert!(events[0].detail.contains("no CN"), "{events:?}");

    // The plain listener is the fleet's own: a device may not use it.
    let (_, _, plain) = connect(options("kel-a", w.plain, None)).await;
    assert_eq!(plain, Connected::Refused(ConnectReturnCode::NotAuthorized), "devices use TLS");
    w.fleet.stop().await;
}

#[tokio::test]
async fn a_revoked_device_is_cut_off_at_once_and_cannot_connect_again() {
    let w = World::start().await;
    let cert = w.enrolled_cert()("kel-r");
    let tls = || Some(tls_config(w.ca.cert_pem(), Some(&cert)));
    let (client, mut eventloop, up) = connect(options("kel-r", w.tls, tls())).await;
    assert_eq!(up, Connected::Yes);
    client.subscribe(topic("kel-r", Channel::Ack), QoS::AtLeastOnce).await.unwrap();
    poll_until(&mut eventloop, |p| matches!(p, Packet::SubAck(_))).await.unwrap();

    let (status, body) = w.fleet.post("/api/v1/devices/kel-r/revoke", serde_json::Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["disconnected"], true, "{body}");
    let cut = poll_until(&mut eventloop, |_| false).await;
    assert!(cut.is_err(), "the live session is closed at once: {cut:?}");

    let (_, _, again) = connect(options("kel-r", w.tls, tls())).await;
    assert_eq!(again, Connected::Refused(ConnectReturnCode::NotAuthorized), "a revoked certificate stays out");
    let events = w.security_events("kel-r", 1).await;
    assert_eq!(events[0].kind, "connect_refused");
    assert!(events[0].detail.contains("revoked"), "{events:?}");
    let listed = w.fleet.get_json("/api/v1/security-events?identity=kel-r").await;
    assert_eq!(listed["events"][0]["kind"], "connect_refused", "{listed}");
    w.fleet.stop().await;
}

#[tokio::test]
async fn tls_handshakes_beyond_max_handshakes_wait_in_the_accept_queue_and_then_connect() {
    let w = World::start_with(|c| c.broker.max_handshakes = 1).await;
    let a = w.device_cert("kel-a");
    // A client that opens TCP and says nothing holds the only place among the handshakes.
    let silent = tokio::net::TcpStream::connect(w.tls).await.unwrap();
    let device = tokio::spawn(connect(options("kel-a", w.tls, Some(tls_config(w.ca.cert_pem(), Some(&a))))));
    // The device is not let in while that place is taken. (A bounded wait: what is checked
    // is that nothing happens.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!device.is_finished(), "a second handshake ran beside the first");
    drop(silent);
    let (_client, _eventloop, up) = device.await.unwrap();
    assert_eq!(up, Connected::Yes, "once the place is free the device connects");
    w.fleet.stop().await;
}

#[tokio::test]
async fn a_client_that_gave_up_in_the_accept_queue_is_dropped_without_a_handshake() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::start_with(|c| c.broker.max_handshakes = 1).await;
    let a = w.device_cert("kel-a");
    let silent = tokio::net::TcpStream::connect(w.tls).await.unwrap();
    // A box sends its ClientHello, waits behind `silent`, times out and closes its side.
    let mut hello = Vec::new();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    rustls::ClientConnection::new(tls_config(w.ca.cert_pem(), Some(&a)), name).unwrap().write_tls(&mut hello).unwrap();
    let mut gave_up = tokio::net::TcpStream::connect(w.tls).await.unwrap();
    gave_up.write_all(&hello).await.unwrap();
    gave_up.shutdown().await.unwrap();
    drop(silent);
    // Its socket is accepted and closed unanswered: no key exchange is spent on it.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, gave_up.read_to_end(&mut answer)).await.expect("the socket is closed");
    assert!(answer.is_empty(), "the broker answered a client that had gone: {} bytes", answer.len());
    assert!(
        matches!(&read, Ok(0)) || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    // And the listener goes on to the next one.
    let (_client, _eventloop, up) = connect(options("kel-a", w.tls, Some(tls_config(w.ca.cert_pem(), Some(&a))))).await;
    assert_eq!(up, Connected::Yes);
    w.fleet.stop().await;
}

#[tokio::test]
async fn a_batch_far_larger_than_a_connections_first_buffers_arrives_whole() {
    let w = World::start().await;
    let a = w.device_cert("kel-a");
    let mut o = options("kel-a", w.tls, Some(tls_config(w.ca.cert_pem(), Some(&a))));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop, up) = connect(o).await;
    assert_eq!(up, Connected::Yes);
    // Values that do not compress, so the encoded batch stays large.
    let mut big = batch(1..=5_000);
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for r in &mut big.readings {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.value = (x >> 11) as f64;
    }
    let payload = big.encode();
    assert!(payload.len() > 16 * 1024, "larger than the 8 KiB buffers the codec used to start with");
    client.publish(topic("kel-a", Channel::Readings), QoS::AtLeastOnce, false, payload).await.unwrap();
    poll_until(&mut eventloop, |p| matches!(p, Packet::PubAck(_))).await.expect("the batch is taken");
    w.fleet.until("/api/v1/devices/kel-a", |d| d["watermark"].as_u64() == Some(5_000)).await;
    w.fleet.stop().await;
}
