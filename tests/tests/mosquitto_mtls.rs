//! The shipped Mosquitto configuration (`packaging/mosquitto/simpul.conf` and `simpul.acl`)
//! run by Debian's real `/usr/sbin/mosquitto`: mutual TLS with certificates from a fleet CA,
//! the certificate's CN as the identity, and each device confined to its own topics.
//!
//! The broker reads the shipped text with only the port (127.0.0.1 and a free one) and the
//! file paths (into a temp dir) replaced, so these tests prove the files an operator
//! installs. Certificates are made here with rcgen; clients are rumqttc (MQTT 3.1.1, the
//! client of the agent and the fleet) over rustls on ring.
//!
//! "Nothing arrives" is proved with a sentinel, never a sleep: after the forbidden message,
//! an allowed one follows, and the receiver's first message must be the allowed one.
//! Mosquitto handles a client's packets in order, and it routes a QoS 1 PUBLISH to every
//! subscriber's queue before it sends the PUBACK; so once a forbidden PUBLISH is
//! acknowledged, a sentinel published after it (by any client) is delivered after anything
//! the forbidden one could have caused.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rumqttc::{
    AsyncClient, ConnAck, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use simpul_protocol::topic::{Channel, DeviceId, Topic};
use simpul_tests::Mosquitto;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const FLEET: &str = "simpul-fleet";
const SHARED_READINGS: &str = "$share/simpul-fleet/simpul/v1/dev/+/readings";

/// The shipped files, relative to this package.
const SHIPPED_CONF: &str = "../packaging/mosquitto/simpul.conf";
const SHIPPED_ACL: &str = "../packaging/mosquitto/simpul.acl";
/// What the test replaces in the shipped configuration.
const SHIPPED_LISTENER: &str = "listener 8883\n";
const SHIPPED_DIR: &str = "/etc/mosquitto/simpul/";

fn topic(device: &str, channel: Channel) -> String {
    Topic::new(DeviceId::new(device).expect("a valid device id"), channel).name()
}

/// A certificate and its key, as a client presents them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// The fleet CA, the broker's server certificate, and client certificates from it or from
/// another CA. Files for the broker live in `dir`.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = make_ca("Simpul fleet CA test");
        let other_ca = make_ca("Some other CA");

        let server_key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::default();
        params.distinguished_name = cn("127.0.0.1");
        params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &ca).expect("server certificate");

        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("server.pem"), server.pem()).expect("write server.pem");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).expect("write server.key");
        let acl = std::fs::read_to_string(shipped(SHIPPED_ACL)).expect("the shipped simpul.acl");
        std::fs::write(dir.path().join("simpul.acl"), acl).expect("write simpul.acl");
        Pki { dir, ca, other_ca }
    }

    /// A client certificate from the fleet CA with this CN (`None`: no CN at all).
    fn client(&self, common_name: Option<&str>) -> Identity {
        client_cert(&self.ca, common_name)
    }

    /// A client certificate with this CN from a CA the broker does not trust.
    fn foreign(&self, common_name: &str) -> Identity {
        client_cert(&self.other_ca, Some(common_name))
    }

    /// The shipped configuration, with the listener on 127.0.0.1:`port` and the files here.
    fn config(&self, port: u16) -> String {
        let shipped = std::fs::read_to_string(shipped(SHIPPED_CONF)).expect("the shipped simpul.conf");
        assert!(shipped.contains(SHIPPED_LISTENER), "simpul.conf no longer has {SHIPPED_LISTENER:?}: update the test");
        assert!(shipped.contains(SHIPPED_DIR), "simpul.conf no longer names {SHIPPED_DIR}: update the test");
        shipped
            .replace(SHIPPED_LISTENER, &format!("listener {port} 127.0.0.1\n"))
            .replace(SHIPPED_DIR, &format!("{}/", self.dir.path().display()))
    }

    /// Client TLS settings: trust only the fleet CA, present `identity` if any.
    fn tls(&self, identity: Option<Identity>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("the fleet CA is a usable root");
        // Two crypto providers are in the build: name ours, never rely on a default.
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots);
        let config = match identity {
            Some(id) => builder.with_client_auth_cert(id.chain, id.key).expect("a usable client certificate"),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

fn shipped(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn cn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name = cn(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate")
}

/// A client certificate as the fleet CA issues one (`fleet-server/src/trust/ca.rs`): CN =
/// the identity, client authentication only.
fn client_cert(issuer: &CertifiedIssuer<'static, KeyPair>, common_name: Option<&str>) -> Identity {
    let key = KeyPair::generate().expect("client key");
    let mut params = CertificateParams::default();
    params.distinguished_name = match common_name {
        Some(name) => cn(name),
        None => {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::OrganizationName, "Simpul");
            dn
        }
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).expect("client certificate");
    Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// The shipped configuration running, with its certificates.
struct Broker {
    pki: Pki,
    mosquitto: Mosquitto,
}

impl Broker {
    async fn start() -> Broker {
        let pki = Pki::new();
        let mosquitto = Mosquitto::start_with_config(|port| pki.config(port)).await.expect("mosquitto starts");
        Broker { pki, mosquitto }
    }

    /// Options for a client with this client id over TLS with `identity` (or none).
    fn options(&self, client_id: &str, identity: Option<Identity>) -> MqttOptions {
        let addr = self.mosquitto.addr();
        let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(self.pki.tls(identity))));
        o
    }

    /// A client with a fleet-CA certificate for `common_name`, client id = the same name.
    async fn connect(&self, common_name: &str) -> Peer {
        self.connect_as(common_name, common_name).await
    }

    async fn connect_as(&self, common_name: &str, client_id: &str) -> Peer {
        self.connect_with(self.options(client_id, Some(self.pki.client(Some(common_name))))).await.0
    }

    /// Connects with these options; the client must be accepted.
    async fn connect_with(&self, options: MqttOptions) -> (Peer, ConnAck) {
        let (peer, ack) = Peer::connect(options).await.unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
        assert_eq!(ack.code, ConnectReturnCode::Success);
        (peer, ack)
    }

    /// The fleet's client, subscribed as the ingest is (client id `simpul-fleet`, a shared
    /// subscription on every device's readings).
    async fn fleet_ingest(&self) -> Peer {
        let mut fleet = self.connect_as(FLEET, FLEET).await;
        assert_eq!(fleet.subscribe(SHARED_READINGS).await, SubscribeReasonCode::Success(QoS::AtLeastOnce));
        fleet
    }

    fn log(&self) -> String {
        format!("--- mosquitto's log ---\n{}", self.mosquitto.log())
    }
}

/// What a client's event loop reported: an event, or how the connection ended.
#[derive(Debug)]
enum Report {
    Event(Event),
    /// The CONNECT was answered with a refusal.
    Refused(ConnectReturnCode),
    /// Any other end of the connection (TLS, I/O), as text.
    Failed(String),
}

/// A client whose event loop runs in its own task and reports every event.
struct Peer {
    client: AsyncClient,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Messages that came while the test awaited something else (a PUBACK, a SUBACK), in
    /// order: [`Peer::expect_first`] sees them first.
    stash: VecDeque<Publish>,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    /// Connects; the CONNACK, or how the connection ended before one came.
    async fn connect(options: MqttOptions) -> Result<(Peer, ConnAck), String> {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(eventloop, tx));
        let mut peer = Peer { client, reports, stash: VecDeque::new(), task };
        let first = peer
            .next_matching(|r| match r {
                Report::Event(Event::Incoming(Packet::ConnAck(a))) => Some(Ok(a.clone())),
                Report::Refused(code) => Some(Err(format!("CONNECT refused: {code:?}"))),
                Report::Failed(e) => Some(Err(e.clone())),
                Report::Event(_) => None,
            })
            .await;
        first.map(|ack| (peer, ack))
    }

    async fn next_matching<T>(&mut self, f: impl FnMut(&Report) -> Option<T>) -> T {
        self.try_next_matching(f).await.expect("the awaited event came in time")
    }

    /// The next report `f` picks, or `None` when none came in time.
    async fn try_next_matching<T>(&mut self, mut f: impl FnMut(&Report) -> Option<T>) -> Option<T> {
        tokio::time::timeout(WAIT, async {
            loop {
                let r = self.reports.recv().await.expect("the event loop reports until it ends");
                if let Some(t) = f(&r) {
                    return t;
                }
                if let Report::Event(Event::Incoming(Packet::Publish(p))) = r {
                    self.stash.push_back(p);
                }
            }
        })
        .await
        .ok()
    }

    async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe queued");
        self.next_matching(|r| match r {
            Report::Event(Event::Incoming(Packet::SubAck(a))) => Some(a.return_codes[0]),
            Report::Failed(e) => panic!("connection ended while subscribing to {filter}: {e}"),
            _ => None,
        })
        .await
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK (which Mosquitto sends for a
    /// refused message too).
    async fn publish_acked(&mut self, topic: &str, payload: &str, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec()).await.expect("queued");
        self.next_matching(|r| match r {
            Report::Event(Event::Incoming(Packet::PubAck(_))) => Some(()),
            Report::Failed(e) => panic!("connection ended while publishing on {topic}: {e}"),
            _ => None,
        })
        .await;
    }

    /// Asserts that the next message is `(topic, payload)`: the sentinel, with nothing
    /// before it.
    async fn expect_first(&mut self, topic: &str, payload: &str, log: impl Fn() -> String) {
        let p = match self.stash.pop_front() {
            Some(p) => Some(p),
            None => {
                self.try_next_matching(|r| match r {
                    Report::Event(Event::Incoming(Packet::Publish(p))) => Some(p.clone()),
                    Report::Failed(e) => panic!("connection ended while waiting for {topic}: {e}\n{}", log()),
                    _ => None,
                })
                .await
            }
        }
        .unwrap_or_else(|| panic!("nothing arrived in time; awaited {topic}: {payload}\n{}", log()));
        assert_eq!(
            (p.topic.as_str(), String::from_utf8_lossy(&p.payload).as_ref()),
            (topic, payload),
            "the first message to arrive must be the sentinel\n{}",
            log()
        );
    }

    /// Waits until the broker ends this connection.
    async fn closed(&mut self) -> String {
        self.next_matching(|r| match r {
            Report::Failed(e) => Some(e.clone()),
            _ => None,
        })
        .await
    }
}

/// Polls the event loop until it fails (no automatic reconnect in these tests).
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Report>) {
    loop {
        let report = match eventloop.poll().await {
            Ok(e) => Report::Event(e),
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Report::Refused(code),
            Err(e) => Report::Failed(e.to_string()),
        };
        let end = !matches!(report, Report::Event(_));
        if tx.send(report).is_err() || end {
            return;
        }
    }
}

#[tokio::test]
async fn a_device_with_a_fleet_certificate_publishes_its_readings_and_the_fleet_receives_them() {
    let broker = Broker::start().await;
    let mut fleet = broker.fleet_ingest().await;
    let mut device = broker.connect("dev-a").await;

    device.publish_acked(&topic("dev-a", Channel::Readings), "batch-1", false).await;

    fleet.expect_first(&topic("dev-a", Channel::Readings), "batch-1", || broker.log()).await;
}

#[tokio::test]
async fn a_device_may_publish_on_every_channel_devices_publish_and_receive_what_the_fleet_sends_it() {
    let broker = Broker::start().await;
    let mut fleet = broker.connect(FLEET).await;
    assert_eq!(fleet.subscribe("simpul/v1/dev/+/#").await, SubscribeReasonCode::Success(QoS::AtLeastOnce));
    let mut device = broker.connect("dev-a").await;
    assert_eq!(device.subscribe("simpul/v1/dev/dev-a/#").await, SubscribeReasonCode::Success(QoS::AtLeastOnce));

    for channel in Channel::ALL.into_iter().filter(|c| c.device_publishes()) {
        let t = topic("dev-a", channel);
        device.publish_acked(&t, channel.suffix(), false).await;
        fleet.expect_first(&t, channel.suffix(), || broker.log()).await;
        // The device's own subscription covers what it publishes itself.
        device.expect_first(&t, channel.suffix(), || broker.log()).await;
    }
    for channel in Channel::ALL.into_iter().filter(|c| !c.device_publishes()) {
        let t = topic("dev-a", channel);
        fleet.publish_acked(&t, channel.suffix(), false).await;
        device.expect_first(&t, channel.suffix(), || broker.log()).await;
    }
}

#[tokio::test]
async fn a_device_publishing_as_another_device_and_subscribing_to_its_config_gets_nothing_through() {
    let broker = Broker::start().await;
    let mut fleet = broker.fleet_ingest().await;
    let mut config = broker.connect_as(FLEET, "simpul-fleet-config").await;
    config.publish_acked(&topic("dev-b", Channel::ConfigDesired), "dev-b's config", true).await;
    config.publish_acked(&topic("dev-a", Channel::ConfigDesired), "dev-a's config", true).await;

    let mut device = broker.connect("dev-a").await;

    // Mosquitto's acl_file never refuses a SUBSCRIBE (2.0.11 to 2.0.18: "FIXME - implement
    // ACL subscription strings"): the SUBACK grants it. What is refused is every message.
    assert_eq!(
        device.subscribe(&topic("dev-b", Channel::ConfigDesired)).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce),
        "Mosquitto now refuses a SUBSCRIBE outside the ACL: update docs/ops/mosquitto.md"
    );
    // The retained config of dev-b is not sent; the device's own is (the sentinel).
    device.subscribe(&topic("dev-a", Channel::ConfigDesired)).await;
    device.expect_first(&topic("dev-a", Channel::ConfigDesired), "dev-a's config", || broker.log()).await;
    // Nor is a new one.
    config.publish_acked(&topic("dev-b", Channel::ConfigDesired), "dev-b's new config", true).await;
    config.publish_acked(&topic("dev-a", Channel::ConfigDesired), "dev-a's new config", true).await;
    device.expect_first(&topic("dev-a", Channel::ConfigDesired), "dev-a's new config", || broker.log()).await;

    // A reading as dev-b is acknowledged (MQTT 3.1.1 has no "refused") and dropped.
    device.publish_acked(&topic("dev-b", Channel::Readings), "forged", false).await;
    device.publish_acked(&topic("dev-a", Channel::Readings), "sentinel", false).await;
    fleet.expect_first(&topic("dev-a", Channel::Readings), "sentinel", || broker.log()).await;
}

#[tokio::test]
async fn a_device_claiming_the_fleets_username_in_connect_is_still_only_itself() {
    let broker = Broker::start().await;
    let mut fleet = broker.fleet_ingest().await;
    let mut options = broker.options("dev-a", Some(broker.pki.client(Some("dev-a"))));
    options.set_credentials(FLEET, "anything");
    let (mut device, ack) = Peer::connect(options).await.expect("connects: the username is ignored");
    assert_eq!(ack.code, ConnectReturnCode::Success);

    device.publish_acked(&topic("dev-b", Channel::Readings), "forged", false).await;
    device.publish_acked(&topic("dev-a", Channel::Readings), "sentinel", false).await;
    fleet.expect_first(&topic("dev-a", Channel::Readings), "sentinel", || broker.log()).await;
}

#[tokio::test]
async fn a_device_may_not_publish_on_channels_only_the_fleet_publishes() {
    let broker = Broker::start().await;
    let mut fleet = broker.connect(FLEET).await;
    fleet.subscribe("simpul/v1/dev/dev-a/#").await;
    let mut device = broker.connect("dev-a").await;

    for channel in Channel::ALL.into_iter().filter(|c| !c.device_publishes()) {
        device.publish_acked(&topic("dev-a", channel), "forged", false).await;
        device.publish_acked(&topic("dev-a", channel), "forged, retained", true).await;
    }
    device.publish_acked(&topic("dev-a", Channel::Events), "sentinel", false).await;
    fleet.expect_first(&topic("dev-a", Channel::Events), "sentinel", || broker.log()).await;

    // Nor was a forged retained message stored: a new subscriber gets the fleet's only.
    fleet.publish_acked(&topic("dev-a", Channel::ConfigDesired), "the fleet's config", true).await;
    let mut later = broker.connect_as(FLEET, "simpul-fleet-later").await;
    later.subscribe(&topic("dev-a", Channel::ConfigDesired)).await;
    later.expect_first(&topic("dev-a", Channel::ConfigDesired), "the fleet's config", || broker.log()).await;
}

#[tokio::test]
async fn a_device_subscribing_to_every_topic_receives_only_its_own() {
    let broker = Broker::start().await;
    let mut fleet = broker.connect(FLEET).await;
    let mut dev_b = broker.connect("dev-b").await;
    let mut device = broker.connect("dev-a").await;
    assert_eq!(device.subscribe("#").await, SubscribeReasonCode::Success(QoS::AtLeastOnce));

    dev_b.publish_acked(&topic("dev-b", Channel::Readings), "dev-b's reading", false).await;
    fleet.publish_acked(&topic("dev-b", Channel::Ack), "dev-b's ack", false).await;
    fleet.publish_acked("elsewhere/entirely", "not simpul's", false).await;
    fleet.publish_acked(&topic("dev-a", Channel::Ack), "sentinel", false).await;
    device.expect_first(&topic("dev-a", Channel::Ack), "sentinel", || broker.log()).await;
}

#[tokio::test]
async fn clients_without_a_certificate_or_with_another_cas_certificate_cannot_connect() {
    let broker = Broker::start().await;

    let no_certificate = Peer::connect(broker.options("dev-a", None)).await;
    let Err(e) = no_certificate else { panic!("connected without a client certificate\n{}", broker.log()) };
    assert!(!e.starts_with("CONNECT refused"), "refused in the TLS handshake, not after it: {e}");

    let foreign = Peer::connect(broker.options("dev-a", Some(broker.pki.foreign("dev-a")))).await;
    let Err(e) = foreign else { panic!("connected with another CA's certificate\n{}", broker.log()) };
    assert!(!e.starts_with("CONNECT refused"), "refused in the TLS handshake, not after it: {e}");

    let addr = broker.mosquitto.addr();
    let plain = Peer::connect(MqttOptions::new("dev-a", addr.ip().to_string(), addr.port())).await;
    assert!(plain.is_err(), "connected without TLS\n{}", broker.log());

    // The listener still serves a good client after all that.
    broker.connect("dev-a").await;
}

#[tokio::test]
async fn a_certificate_from_the_fleet_ca_without_a_cn_is_refused() {
    let broker = Broker::start().await;
    let mut options = broker.options("anyone", Some(broker.pki.client(None)));
    options.set_credentials(FLEET, "");
    let refused = Peer::connect(options).await;
    let Err(e) = refused else { panic!("connected with a certificate without a CN\n{}", broker.log()) };
    assert_eq!(e, format!("CONNECT refused: {:?}", ConnectReturnCode::BadUserNamePassword));
}

#[tokio::test]
async fn a_certificate_cn_with_a_wildcard_gets_no_access_through_the_device_patterns() {
    let broker = Broker::start().await;
    let mut fleet = broker.fleet_ingest().await;
    // "+" would turn `pattern write simpul/v1/dev/%u/readings` into every device's readings.
    // Mosquitto refuses any pattern access to an identity with "+" or "#".
    let mut wildcard = broker.connect_as("+", "wildcard").await;
    wildcard.publish_acked(&topic("dev-b", Channel::Readings), "forged", false).await;
    let mut device = broker.connect("dev-a").await;
    device.publish_acked(&topic("dev-a", Channel::Readings), "sentinel", false).await;
    fleet.expect_first(&topic("dev-a", Channel::Readings), "sentinel", || broker.log()).await;
}

/// Documents the one hole the ACL file cannot close: Mosquitto does not guard "/" in an
/// identity, so a CN such as `dev-b/config` reaches into dev-b's topics through the device
/// patterns. Only the fleet CA's check keeps such a CN from existing.
#[tokio::test]
async fn a_cn_with_a_slash_would_reach_another_devices_topics_so_the_fleet_ca_never_issues_one() {
    let crafted = "dev-b/config";
    assert!(DeviceId::new(crafted).is_err(), "the fleet CA issues only valid device ids");

    let broker = Broker::start().await;
    let mut fleet = broker.connect(FLEET).await;
    fleet.subscribe("simpul/v1/dev/dev-b/#").await;
    fleet.publish_acked(&topic("dev-b", Channel::ConfigDesired), "dev-b's config", true).await;
    fleet.expect_first(&topic("dev-b", Channel::ConfigDesired), "dev-b's config", || broker.log()).await;

    let mut crafted_client = broker.connect_as(crafted, "crafted").await;
    // `pattern read simpul/v1/dev/%u/#` = simpul/v1/dev/dev-b/config/#: dev-b's desired config.
    crafted_client.subscribe(&topic("dev-b", Channel::ConfigDesired)).await;
    crafted_client.expect_first(&topic("dev-b", Channel::ConfigDesired), "dev-b's config", || broker.log()).await;
    // (Its write patterns become simpul/v1/dev/dev-b/config/readings and the like: no
    // channel of dev-b's, with today's channel names. Reading is the harm.)
}

#[tokio::test]
async fn a_device_can_take_over_another_devices_session_by_client_id_but_receives_none_of_its_messages() {
    let broker = Broker::start().await;
    let mut fleet = broker.connect(FLEET).await;
    // A persistent session, as a device keeps one: its subscription outlives a connection.
    let persistent = |common_name: &str| {
        let mut o = broker.options("dev-b", Some(broker.pki.client(Some(common_name))));
        o.set_clean_session(false);
        o
    };
    let (mut dev_b, _) = broker.connect_with(persistent("dev-b")).await;
    dev_b.subscribe(&topic("dev-b", Channel::ConfigDesired)).await;

    // Mosquitto cannot tie the client id to the certificate (use_username_as_clientid would
    // give the fleet's two clients one id): dev-a may use dev-b's, and dev-b is thrown off.
    let (mut device, ack) = broker.connect_with(persistent("dev-a")).await;
    assert!(ack.session_present, "dev-a took over dev-b's session, subscriptions included");
    let closed = dev_b.closed().await;
    assert!(!closed.is_empty());
    // dev-b's subscription is now dev-a's, but every message on it is checked against
    // dev-a's identity.
    device.subscribe(&topic("dev-a", Channel::Ack)).await;

    fleet.publish_acked(&topic("dev-b", Channel::ConfigDesired), "dev-b's config", false).await;
    fleet.publish_acked(&topic("dev-a", Channel::Ack), "sentinel", false).await;
    device.expect_first(&topic("dev-a", Channel::Ack), "sentinel", || broker.log()).await;
}

#[tokio::test]
async fn a_devices_last_will_on_another_devices_topic_is_not_sent() {
    let broker = Broker::start().await;
    let mut fleet = broker.connect(FLEET).await;
    fleet.subscribe("simpul/v1/dev/+/status").await;

    // A will is sent, after Mosquitto's ACL check, when a new connection with the same
    // client id takes over the session: an event the test can order against.
    let with_will = |will_topic: String, payload: &str| {
        let mut o = broker.options("dev-a-will", Some(broker.pki.client(Some("dev-a"))));
        o.set_last_will(LastWill::new(will_topic, payload.as_bytes().to_vec(), QoS::AtLeastOnce, false));
        o
    };
    // Its own status: the will arrives (so the forbidden one below is not missing for
    // another reason).
    let (_own, _) = Peer::connect(with_will(topic("dev-a", Channel::Status), "offline")).await.expect("connects");
    let (_forged, _) =
        Peer::connect(with_will(topic("dev-b", Channel::Status), "forged offline")).await.expect("takes over");
    fleet.expect_first(&topic("dev-a", Channel::Status), "offline", || broker.log()).await;

    let mut last = broker.connect_as("dev-a", "dev-a-will").await;
    last.publish_acked(&topic("dev-a", Channel::Status), "sentinel", false).await;
    fleet.expect_first(&topic("dev-a", Channel::Status), "sentinel", || broker.log()).await;
}
