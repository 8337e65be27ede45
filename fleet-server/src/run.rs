//! `run(config, shutdown)`: the whole fleet server, as the binary and the tests start it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiState};
use crate::broker::{self, BrokerError, BrokerHandle};
use crate::config::FleetConfig;
use crate::health::HealthSettings;
use crate::ingest::{self, IngestError};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, Stores};
use crate::trust::enrol::Enroller;
use crate::trust::routes::DeviceApiState;
use crate::trust::server::ServerTrust;
use crate::trust::store::TrustStore;
use crate::webhook::{Webhook, WebhookError};

/// How long a graceful stop may take before `run` stops waiting for its tasks.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the fleet server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("embedded broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("ingest: {0}")]
    Ingest(#[from] IngestError),
    #[error("webhook: {0}")]
    Webhook(#[from] WebhookError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the API server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("trust: {0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("opening the store panicked: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A started fleet server.
#[derive(Debug)]
pub struct Running {
    /// Where the API listens (useful with port 0).
    pub api_addr: SocketAddr,
    /// Where the device listener (HTTPS) listens, when `[trust] listen` is set.
    pub device_addr: Option<SocketAddr>,
    /// The store, for tools and tests that look inside.
    pub store: Arc<dyn Store>,
    /// Cancelled once ingest is subscribed at the broker.
    pub ingest_ready: CancellationToken,
    /// Where the embedded broker listens, when the fleet runs one.
    pub broker_addr: Option<SocketAddr>,
    /// Where the embedded broker's mutual-TLS listener for devices is, when there is one.
    pub broker_tls_addr: Option<SocketAddr>,
    /// Where viewers connect over RTSP, when `[cameras] rtsp_listen` is set.
    pub rtsp_addr: Option<SocketAddr>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    broker: Option<(BrokerHandle, CancellationToken)>,
}

impl Running {
    /// Waits until `shutdown` is cancelled and every task stopped (or [`STOP_TIMEOUT`]).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        if tokio::time::timeout(STOP_TIMEOUT, self.tracker.wait()).await.is_err() {
            tracing::warn!(timeout = ?STOP_TIMEOUT, "tasks did not stop in time");
        }
        // The broker stops last, so the last commit's acks still reach the agents.
        if let Some((broker, stop)) = self.broker {
            stop.cancel();
            broker.stopped().await;
        }
        tracing::info!("simpul-fleet stopped");
    }
}

/// Runs the fleet server until `shutdown` is cancelled, then stops gracefully: the
/// commit in progress finishes and is acked, the API finishes its requests. Under a
/// `Type=notify` unit it says READY once it serves and pings the watchdog.
pub async fn run(config: FleetConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    simpul_base::systemd::spawn_watchdog();
    let running = start(config, shutdown).await?;
    simpul_base::systemd::ready(&format!("API on {}", running.api_addr));
    running.wait().await;
    Ok(())
}

/// Starts every part and returns once the stores are open and the API listens.
pub async fn start(config: FleetConfig, shutdown: CancellationToken) -> Result<Running, RunError> {
    let store = match config.store.backend {
        crate::config::StoreBackend::Sqlite => config.store.path.display().to_string(),
        crate::config::StoreBackend::Postgres => "PostgreSQL ([store] url)".to_owned(),
    };
    tracing::info!(%store, broker = ?config.mqtt.broker, client_id = %config.mqtt.client_id, "simpul-fleet starting");
    let store_config = config.store.clone();
    let stores = tokio::task::spawn_blocking(move || crate::store::open_stores(&store_config)).await??;
    start_with_stores(config, stores, shutdown).await
}

/// [`start`] with a readings store of the caller's choosing (another database; a test's
/// wrapper). `config.store.path` holds only the side stores here: the operators' users and
/// tokens (docs/design/auth.md), releases, rollouts and trust.
pub async fn start_with_store(
    config: FleetConfig,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<Running, RunError> {
    let store_config = config.store.clone();
    let side = tokio::task::spawn_blocking(move || crate::store::open_side_stores(&store_config)).await??;
    start_with_stores(config, side.with_store(store), shutdown).await
}

/// [`start`] with the stores open.
async fn start_with_stores(
    config: FleetConfig,
    stores: Stores,
    shutdown: CancellationToken,
) -> Result<Running, RunError> {
    let mut config = config;
    let Stores { store, auth: auth_store, releases: release_store, rollouts, trust } = stores;
    let tracker = TaskTracker::new();
    let embedded = config.mqtt.broker.is_none();
    let server_trust = if config.trust.listen.is_some() || (embedded && config.broker.tls_listen.is_some()) {
        Some(load_trust(&config).await?)
    } else {
        None
    };
    let broker = match &config.mqtt.broker {
        Some(_) => None,
        None => {
            let stop = CancellationToken::new();
            let (tls, security) = match &server_trust {
                Some(server) if config.broker.tls_listen.is_some() => {
                    let mut files = server.write_broker_files(&config.trust.dir)?;
                    files.revoked = Some(Arc::clone(&trust).revocations());
                    let log = security_log(Arc::clone(&trust).trust_store(), shutdown.clone(), &tracker);
                    (Some(files), log)
                }
                _ => (None, broker::SecurityLog::discard()),
            };
            let handle = broker::start_with(&config.broker, tls, security, stop.clone()).await?;
            let addr = handle.local_addr();
            tracing::info!(%addr, "embedded broker listening");
            config.mqtt.broker = Some(addr.to_string());
            // One fleet process per embedded broker: ingest needs no shared subscription.
            // And rmqtt 0.24's shared-subscription dispatch checks the member's connection
            // while holding a lock of the session table across an await; under a reconnect
            // storm, session takeovers then block both runtime workers and the broker stops
            // accepting (benches/province, docs/design/broker.md). Plain subscriptions avoid it.
            config.mqtt.shared_group.clear();
            Some((handle, stop))
        }
    };
    let broker_addr = broker.as_ref().map(|(h, _)| h.local_addr());
    let broker_tls_addr = broker.as_ref().and_then(|(h, _)| h.tls_addr());

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| RunError::Listen { addr: config.api.listen, source })?;
    let api_addr = listener.local_addr().map_err(|source| RunError::Listen { addr: config.api.listen, source })?;

    let store_config = config.store.clone();
    let leadership =
        tokio::task::spawn_blocking(move || crate::store::leader::open_leadership(&store_config)).await??;
    let delivered = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::new(broker.as_ref().map(|(h, _)| h.counts_view()), config.webhook.url.is_some()));
    let broker_tls = if embedded {
        None
    } else {
        let c = config.clone();
        tokio::task::spawn_blocking(move || crate::trust::broker_client::client_config(&c)).await??
    };
    let ingest_ready = ingest::spawn(
        &config,
        Arc::clone(&store),
        Arc::clone(&delivered),
        Arc::clone(&metrics),
        broker_tls.as_ref(),
        shutdown.clone(),
        &tracker,
    )?;

    if let Some(url) = config.webhook.url.clone() {
        let webhook = Webhook::new(url, config.webhook.clone(), Arc::clone(&store), Arc::clone(&leadership))?;
        tracker.spawn(webhook.run(Arc::clone(&delivered), shutdown.clone()));
    }

    let health = Arc::new(HealthSettings { offline_after: config.health.offline_after, alerts: config.alerts.clone() });
    let auth = crate::auth::AuthState::new(auth_store, &config.auth);
    let desired = crate::config_publisher::spawn(
        &config,
        Arc::clone(&store),
        Arc::clone(&release_store),
        broker_tls.as_ref(),
        shutdown.clone(),
        &tracker,
    )?;
    let engine = crate::rollouts::task::Engine {
        store: Arc::clone(&rollouts),
        desired: desired.clone(),
        tick: config.rollouts.tick,
        offline_after: config.health.offline_after,
        leader: leadership,
    };
    tracker.spawn(engine.run(shutdown.clone()));
    tracker.spawn(crate::memory::trim_while_running(shutdown.clone()));
    let max_limit = config.api.max_limit;
    let zone = config.dashboard.timezone;
    let trust_store = trust.trust_store();
    let trust_api = api::trust::TrustApi {
        store: Arc::clone(&trust_store),
        disconnector: broker.as_ref().map(|(h, _)| h.disconnector()),
    };
    let releases = api::releases::ReleasesApi { store: Arc::clone(&release_store), keys: config.releases.keys.clone() };
    let tunnels = crate::cameras::Tunnels::default();
    let cam = &config.cameras;
    let relays = crate::cameras::Relays::new(tunnels.clone(), cam.linger, cam.open_timeout);
    let rtsp_addr = match cam.rtsp_listen {
        Some(listen) => Some(
            crate::cameras::rtsp::spawn(listen, relays.clone(), Arc::clone(&auth.store), shutdown.clone(), &tracker)
                .await
                .map_err(|source| RunError::Listen { addr: listen, source })?,
        ),
        None => None,
    };
    let cameras = api::cameras::CamerasApi {
        snapshots: crate::cameras::Snapshots::new(relays.clone(), cam.ffmpeg.clone(), cam.snapshot_max_age),
        relays,
        rtsp: rtsp_addr,
    };
    let device_addr = match (config.trust.listen, server_trust) {
        (Some(listen), Some(server)) => {
            let parts = DeviceListener {
                server,
                trust_store,
                store: Arc::clone(&store),
                desired: desired.clone(),
                releases: Arc::clone(&release_store),
                tunnels,
            };
            Some(start_device_listener(&config, listen, parts, &shutdown, &tracker).await?)
        }
        _ => None,
    };
    let app = api::router(ApiState {
        store: Arc::clone(&store),
        max_limit,
        auth,
        health,
        metrics,
        desired,
        zone,
        trust: trust_api,
        releases,
        rollouts,
        cameras,
    });
    let stop = shutdown.clone();
    tracker.spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        if let Err(e) = served.map_err(RunError::Serve) {
            tracing::error!(error = %e, "api stopped");
        }
    });
    tracker.close();
    tracing::info!(api = %api_addr, "simpul-fleet running");
    Ok(Running {
        api_addr,
        device_addr,
        store,
        ingest_ready,
        broker_addr,
        broker_tls_addr,
        rtsp_addr,
        tracker,
        shutdown,
        broker,
    })
}

/// The CA with a fresh server certificate.
async fn load_trust(config: &FleetConfig) -> Result<ServerTrust, RunError> {
    let (dir, names) = (config.trust.dir.clone(), config.trust.server_names.clone());
    tokio::task::spawn_blocking(move || -> Result<_, RunError> {
        let server = ServerTrust::load(&dir, &names)?;
        tracing::info!(fleet_id = server.ca.fleet_id(), "fleet CA loaded");
        Ok(server)
    })
    .await?
}

/// A [`broker::SecurityLog`] whose events go into `store` until `shutdown`.
fn security_log(store: Arc<dyn TrustStore>, shutdown: CancellationToken, tracker: &TaskTracker) -> broker::SecurityLog {
    let (log, mut rx) = broker::SecurityLog::channel();
    tracker.spawn(async move {
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                e = rx.recv() => match e { Some(e) => e, None => break },
            };
            let store = Arc::clone(&store);
            let stored = tokio::task::spawn_blocking(move || store.record_security_event(&event))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))
                .and_then(|stored| stored);
            if let Err(e) = stored {
                tracing::error!(error = %e, "a security event could not be stored");
            }
        }
    });
    log
}

/// What the device listener serves from.
struct DeviceListener {
    server: ServerTrust,
    trust_store: Arc<dyn TrustStore>,
    store: Arc<dyn Store>,
    desired: crate::config_publisher::ConfigPublisher,
    releases: Arc<dyn crate::releases::ReleaseStore>,
    tunnels: crate::cameras::Tunnels,
}

/// The HTTPS device listener where boxes enrol, renew and download releases.
async fn start_device_listener(
    config: &FleetConfig,
    listen: SocketAddr,
    parts: DeviceListener,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<SocketAddr, RunError> {
    let DeviceListener { server, trust_store, store, desired, releases, tunnels } = parts;
    let tls = crate::trust::listener::server_config(&server.chain, &server.key, server.ca.cert_pem())?;
    let enroller = Enroller {
        ca: Arc::new(server.ca),
        store: trust_store,
        validity: config.trust.device_cert_validity,
        // The embedded broker's fleet identities, and the one the fleet uses at an external
        // broker: there a certificate's CN is the identity (`[mqtt] tls`).
        reserved: config.broker.acl.fleet_identities.iter().chain([&config.mqtt.identity]).cloned().collect(),
    };
    let app = crate::trust::routes::router(DeviceApiState { enroller, store, desired, releases, tunnels });
    Ok(crate::trust::listener::spawn(listen, tls, app, shutdown.clone(), tracker).await?)
}
