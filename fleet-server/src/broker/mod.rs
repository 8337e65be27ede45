//! The MQTT broker embedded in simpul-fleet (the default; an external broker such as
//! Mosquitto or EMQX is the alternative past one machine).
//!
//! It is [rmqtt](https://github.com/rmqtt/rmqtt) run as a library on the fleet's own tokio
//! runtime: docs/design/broker.md says why, and what it can and cannot do. This module owns
//! the broker's configuration (`[broker]` in the fleet config), starts it, and stops it.
//!
//! What the fleet relies on, each with a test in `tests/broker_*.rs`: QoS 1, retained
//! messages, last will, shared subscriptions (`$share/simpul-fleet/...`), persistent sessions
//! (clean_session = false) within the life of the process, and the per-device topic rule
//! in [`acl`].
//!
//! Devices connect to the mutual-TLS listener (`tls_listen`): rmqtt verifies the client
//! certificate against the fleet CA and puts its CN in the MQTT username, and [`acl`] reads
//! the identity from the certificate and refuses one without a CN (docs/design/broker.md,
//! "TLS, tried"; docs/design/trust.md). The plain listener (`listen`, loopback) is then for
//! the fleet's own clients only. What a device tries outside its own topics is recorded as
//! a [`security::SecurityEvent`].

pub mod acl;
mod fitter;
pub mod revocation;
pub mod security;

use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use rmqtt::types::{Message, Reason};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use acl::AclConfig;
pub use revocation::{Disconnector, Revocations};
pub use security::{SecurityEvent, SecurityLog};

/// `[broker]` in the fleet configuration. Every field has a default; an unknown field is an
/// error (a misspelt limit must not silently fall back to its default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Where the broker listens for plain MQTT. Default `127.0.0.1:1883`: keep it on
    /// loopback. With `tls_listen` set it serves only the fleet's own clients; without, any
    /// client (a lab, or a fleet whose boxes are all on one trusted network). Port 0 picks a
    /// free port ([`BrokerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Where devices connect with mutual TLS: a client certificate from the fleet CA is
    /// required and its CN is the device's identity (docs/design/trust.md). The server
    /// certificate is the fleet's, for `[trust] server_names`. Unset: no TLS listener.
    /// Default unset; `0.0.0.0:8883` is the usual setting.
    pub tls_listen: Option<SocketAddr>,
    /// Most MQTT sessions the broker holds, connected or not (a clean_session = false session
    /// counts while it lives). A CONNECT past it is refused with "server unavailable" and the
    /// client retries later. Default 12,000: a province (10,000 devices) plus headroom for the
    /// fleet's own clients and reconnect overlap.
    pub max_connections: usize,
    /// Most handshakes worked on at once, per listener: on the devices' listener a socket is
    /// accepted only while fewer than this are still in their TLS handshake (the rest wait
    /// in the kernel's accept queue), and the CONNECT step after it has the same limit. This
    /// is what spreads a reconnect storm: without it every box's TLS handshake shares the
    /// CPU at once and most outlive the boxes' connect timeout. Default 500.
    pub max_handshakes: usize,
    /// A connection that has not completed its CONNECT in this time is closed. Default 15s.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Largest MQTT packet accepted. Default 1 MiB (a reading batch is a few KiB).
    pub max_packet_size: ByteSize,
    /// QoS 1/2 messages sent to one device and not yet acknowledged. Default 32.
    pub max_inflight: u16,
    /// The same window for a fleet identity's session (ingest). Ingest acknowledges a
    /// message only after the commit that stored it, so this bounds how many batches one
    /// commit gathers: it is the fleet's ingest throughput limit. Default 4096 (at most 65535).
    pub fleet_max_inflight: u16,
    /// `max_queued_messages` for a fleet identity's session: what waits for ingest while it
    /// restarts or falls behind. Default 200,000 (20 messages for each of 10,000 devices).
    pub fleet_max_queued_messages: usize,
    /// Messages queued for one device beyond the inflight window, including while a
    /// clean_session = false client is away; past it the oldest are dropped. Default 10,000.
    pub max_queued_messages: usize,
    /// How long a clean_session = false session, with its subscriptions and queued messages,
    /// outlives its connection. Default 2h.
    #[serde(with = "humantime_serde")]
    pub session_expiry: Duration,
    /// How long a queued message waits for a client that is away before it is dropped, unless
    /// the publisher set an MQTT 5 expiry. Default 24h. (rmqtt's own default is 5 minutes.)
    /// Retained messages never expire: the fleet replaces or clears them.
    #[serde(with = "humantime_serde")]
    pub queued_message_expiry: Duration,
    /// Most retained messages held. Default 100,000 (a few per device). 0 = no limit.
    pub max_retained_messages: usize,
    /// Who may connect and where they may publish and subscribe.
    pub acl: AclConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 1883)),
            tls_listen: None,
            max_connections: 12_000,
            max_handshakes: 500,
            handshake_timeout: Duration::from_secs(15),
            max_packet_size: ByteSize::mib(1),
            max_inflight: 32,
            fleet_max_inflight: 4096,
            max_queued_messages: 10_000,
            fleet_max_queued_messages: 200_000,
            session_expiry: Duration::from_secs(2 * 60 * 60),
            queued_message_expiry: Duration::from_secs(24 * 60 * 60),
            max_retained_messages: 100_000,
            acl: AclConfig::default(),
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker configuration: {0}")]
    Config(String),
    #[error("cannot listen for MQTT on {addr}: {source}")]
    Bind { addr: SocketAddr, source: anyhow::Error },
    #[error("cannot start the broker's {part}: {source}")]
    Start { part: &'static str, source: anyhow::Error },
}

/// A running broker. It stops when the `shutdown` token given to [`start`] is cancelled;
/// [`BrokerHandle::stopped`] waits for that to finish.
pub struct BrokerHandle {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    scx: ServerContext,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandle").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

/// What the broker holds now (for health, metrics and the load check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerCounts {
    /// Open MQTT connections.
    pub connections: usize,
    /// Sessions, connected or not (what `max_connections` limits).
    pub sessions: usize,
}

impl BrokerHandle {
    /// The address the broker listens on (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the devices' mutual-TLS listener, when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// What closes a live session (a revoked device's).
    pub fn disconnector(&self) -> Disconnector {
        Disconnector { scx: self.scx.clone() }
    }

    /// Connections and sessions now.
    pub fn counts(&self) -> BrokerCounts {
        self.counts_view().counts()
    }

    /// A handle that reads [`BrokerHandle::counts`] from elsewhere (the metrics).
    pub fn counts_view(&self) -> CountsView {
        CountsView { scx: self.scx.clone() }
    }

    /// Waits until the broker has stopped: listener closed, every client told to disconnect.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Reads a running broker's [`BrokerCounts`]; cheap to clone.
#[derive(Clone)]
pub struct CountsView {
    scx: ServerContext,
}

impl std::fmt::Debug for CountsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountsView").finish_non_exhaustive()
    }
}

impl CountsView {
    /// Connections and sessions now.
    pub fn counts(&self) -> BrokerCounts {
        let n = |c: isize| usize::try_from(c).unwrap_or(0);
        BrokerCounts { connections: n(self.scx.connections.count()), sessions: n(self.scx.sessions.count()) }
    }
}

struct Running {
    scx: ServerContext,
}

/// The devices' TLS listener: the files (PEM) rmqtt reads at start, and the revoked
/// certificates it must refuse.
#[derive(Clone, Debug)]
pub struct DeviceTls {
    /// The server certificate chain.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA whose client certificates are accepted: the fleet CA.
    pub client_ca: PathBuf,
    /// Checked at each CONNECT; `None`: nothing is revoked (tests of the listener alone).
    pub revoked: Option<std::sync::Arc<dyn Revocations>>,
}

/// The listener ids rmqtt hands the hooks, so they can tell the plain from the TLS one.
pub(crate) const PLAIN_LISTENER: u16 = 1;
pub(crate) const TLS_LISTENER: u16 = 2;

/// Starts the broker with its plain listener only (no device TLS, security events dropped).
pub async fn start(config: &BrokerConfig, shutdown: CancellationToken) -> Result<BrokerHandle, BrokerError> {
    start_with(config, None, SecurityLog::discard(), shutdown).await
}

/// Starts the broker on the current tokio runtime and returns once it is listening: the
/// plain listener, and the devices' TLS listener when `config.tls_listen` is set (then
/// `tls` must be given). What devices try outside their topics goes to `security`.
pub async fn start_with(
    config: &BrokerConfig,
    tls: Option<DeviceTls>,
    security: SecurityLog,
    shutdown: CancellationToken,
) -> Result<BrokerHandle, BrokerError> {
    validate(config)?;
    let revoked = tls.as_ref().and_then(|t| t.revoked.clone());
    let tls_listener = match (config.tls_listen, tls) {
        (Some(addr), Some(files)) => Some(tls_listener(config, addr, &files)?),
        (Some(_), None) => {
            return Err(BrokerError::Config("tls_listen is set but no certificate was given".to_owned()));
        }
        (None, _) => None,
    };

    let scx = ServerContext::new()
        // rmqtt's "busy" check refuses CONNECTs while the machine's load average or CPU use is
        // high, whoever causes it. On a small shared box that would lock devices out because
        // ingest is busy; the handshake queue (`max_handshakes`) is our back-pressure instead.
        .busy_check_enable(false)
        .mqtt_max_sessions(isize::try_from(config.max_connections).unwrap_or(isize::MAX))
        // Plugin configuration comes only from here: no plugin directory is read.
        .plugins_config_map_add("rmqtt-retainer", retainer_config(config))
        .plugins_config_map_add("rmqtt-shared-subscription", r#"strategy = "round_robin""#)
        .build()
        .await;

    rmqtt_retainer::register(&scx, true, false)
        .await
        .map_err(|source| BrokerError::Start { part: "retained message store", source })?;
    rmqtt_shared_subscription::register(&scx, true, false)
        .await
        .map_err(|source| BrokerError::Start { part: "shared subscriptions", source })?;
    acl::register(&scx, &config.acl, tls_listener.is_some(), security, revoked).await;
    let fleet_limits = fitter::FleetLimits {
        acl: config.acl.clone(),
        max_inflight: NonZeroU16::new(config.fleet_max_inflight).unwrap_or(NonZeroU16::MIN),
        max_queued_messages: config.fleet_max_queued_messages,
    };
    fitter::register(&scx, fleet_limits).await;

    let listener = listener(config)?;
    let local_addr = listener.local_addr().map_err(|source| BrokerError::Bind { addr: config.listen, source })?;
    let mut server = MqttServer::new(scx.clone()).listener_by_id(listener, PLAIN_LISTENER);
    let mut tls_addr = None;
    if let Some(l) = tls_listener {
        let addr = l.local_addr().map_err(|source| BrokerError::Bind { addr: l.cfg.laddr, source })?;
        tracing::info!(%addr, "MQTT broker listening for devices (mutual TLS)");
        tls_addr = Some(addr);
        server = server.listener_by_id(l, TLS_LISTENER);
    }
    let server = server.build();
    tracing::info!(%local_addr, "MQTT broker listening");

    let running = Running { scx: scx.clone() };
    let task = tokio::spawn(async move {
        tokio::select! {
            result = server.run() => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "MQTT broker stopped");
                }
            }
            () = shutdown.cancelled() => {}
        }
        // Dropping `server.run()` closed the listener; now close every client connection.
        running.disconnect_all().await;
        tracing::info!(%local_addr, "MQTT broker stopped");
    });
    Ok(BrokerHandle { local_addr, tls_addr, scx, task })
}

impl Running {
    async fn disconnect_all(&self) {
        let shared = self.scx.extends.shared().await;
        let mut closed = 0usize;
        for entry in shared.iter() {
            if let Some(tx) = entry.tx() {
                if tx.unbounded_send(Message::Closed(Reason::from_static("broker shutting down"))).is_ok() {
                    closed += 1;
                }
            }
        }
        tracing::debug!(closed, "MQTT sessions told to close");
    }
}

fn validate(config: &BrokerConfig) -> Result<(), BrokerError> {
    let bad = |m: &str| Err(BrokerError::Config(m.to_owned()));
    if config.max_connections == 0 {
        return bad("max_connections must be at least 1");
    }
    if config.max_handshakes == 0 {
        return bad("max_handshakes must be at least 1");
    }
    if config.max_inflight == 0 || config.fleet_max_inflight == 0 {
        return bad("max_inflight and fleet_max_inflight must be at least 1");
    }
    if config.max_packet_size.as_u64() < 1024 || config.max_packet_size.as_u64() > u64::from(u32::MAX) {
        return bad("max_packet_size must be between 1 KiB and 4 GiB");
    }
    if config.handshake_timeout.is_zero() {
        return bad("handshake_timeout must be more than 0");
    }
    config.acl.validate().map_err(BrokerError::Config)
}

/// The plain listener.
fn listener(config: &BrokerConfig) -> Result<Listener, BrokerError> {
    let bind_err = |source| BrokerError::Bind { addr: config.listen, source };
    builder(config, "simpul/tcp", config.listen).bind().and_then(Listener::tcp).map_err(bind_err)
}

/// The devices' listener: TLS, a client certificate of the fleet CA required (rmqtt's
/// `tls_cross_certificate`), its CN put in the username and the certificate handed to the
/// authentication hook, which refuses a certificate without a CN.
fn tls_listener(config: &BrokerConfig, addr: SocketAddr, files: &DeviceTls) -> Result<Listener, BrokerError> {
    let bind_err = |source| BrokerError::Bind { addr, source };
    let path = |p: &PathBuf| Some(p.display().to_string());
    builder(config, "simpul/tls", addr)
        .tls_cert(path(&files.cert))
        .tls_key(path(&files.key))
        .tls_client_ca_certs(path(&files.client_ca))
        .tls_cross_certificate(true)
        .cert_cn_as_username(true)
        .collect_cert_info(true)
        .bind()
        .and_then(Listener::tls)
        .map_err(bind_err)
}

/// A listener's settings, every limit set explicitly (rmqtt's defaults are not ours).
fn builder(config: &BrokerConfig, name: &str, addr: SocketAddr) -> Builder {
    Builder::new()
        .name(name)
        .laddr(addr)
        // A reconnect storm brings every box at once: a short accept queue drops their SYNs
        // and final ACKs, each box's 5 s connect timeout fires and it backs off for seconds
        // (benches/province). The kernel caps this at net.core.somaxconn (4096 by default).
        .backlog(i32::try_from(config.max_connections).unwrap_or(i32::MAX))
        .nodelay(true)
        .reuseaddr(Some(true))
        .max_connections(config.max_connections)
        .max_handshaking_limit(config.max_handshakes)
        .handshake_timeout(config.handshake_timeout)
        .max_packet_size(u32::try_from(config.max_packet_size.as_u64()).unwrap_or(u32::MAX))
        .max_inflight(NonZeroU16::new(config.max_inflight).unwrap_or(NonZeroU16::MIN))
        .max_mqueue_len(config.max_queued_messages)
        .mqueue_rate_limit(NonZeroU32::MAX, Duration::from_secs(1))
        .session_expiry_interval(config.session_expiry)
        .message_expiry_interval(config.queued_message_expiry)
        .max_clientid_len(128)
        // Identity checks happen in the authentication hook, which rmqtt skips for a client
        // without a username when anonymous clients are allowed: so never allow them.
        .allow_anonymous(false)
}

fn retainer_config(config: &BrokerConfig) -> String {
    // `retained_message_ttl = "0s"` means never expire: without it rmqtt expires a retained
    // message after the listener's message expiry (5 minutes by its default).
    format!(
        "storage.type = \"ram\"\nmax_retained_messages = {}\nmax_payload_size = \"{}B\"\nretained_message_ttl = \"0s\"\n",
        config.max_retained_messages,
        config.max_packet_size.as_u64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let c = BrokerConfig::default();
        assert_eq!(c.listen, "127.0.0.1:1883".parse().expect("valid test input"));
        assert_eq!(c.max_connections, 12_000);
        assert!(c.acl.enabled);
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn an_empty_broker_table_gives_the_defaults_and_a_misspelt_key_is_an_error() {
        let c: BrokerConfig = toml::from_str("").expect("valid test input");
        assert_eq!(c, BrokerConfig::default());
        let c: BrokerConfig =
            toml::from_str("listen = \"0.0.0.0:8883\"\nsession_expiry = \"1day\"\nmax_packet_size = \"256 KiB\"")
                .expect("valid test input");
        assert_eq!(c.listen.port(), 8883);
        assert_eq!(c.session_expiry, Duration::from_secs(86_400));
        assert_eq!(c.max_packet_size, ByteSize::kib(256));
        assert!(toml::from_str::<BrokerConfig>("max_conections = 5").is_err());
        assert!(toml::from_str::<BrokerConfig>("[acl]\nenabeld = false").is_err());
    }

    #[test]
    fn nonsense_limits_are_refused() {
        let c = BrokerConfig { max_connections: 0, ..BrokerConfig::default() };
        assert!(validate(&c).is_err());
        let c = BrokerConfig { max_packet_size: ByteSize::b(10), ..BrokerConfig::default() };
        assert!(validate(&c).is_err());
    }
}
