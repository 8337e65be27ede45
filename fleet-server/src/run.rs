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
use crate::store::sqlite::SqliteTrustStore;
use crate::store::{SqliteStore, Store, StoreError};
use crate::trust::FleetCa;
use crate::trust::enrol::Enroller;
use crate::trust::routes::DeviceApiState;
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
/// commit in progress finishes and is acked, the API finishes its requests.
pub async fn run(config: FleetConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    start(config, shutdown).await?.wait().await;
    Ok(())
}

/// Starts every part and returns once the store is open and the API listens.
pub async fn start(config: FleetConfig, shutdown: CancellationToken) -> Result<Running, RunError> {
    let path = config.store.path.clone();
    tracing::info!(store = %path.display(), broker = ?config.mqtt.broker, "simpul-fleet starting");
    let every = config.store.health_history_every;
    let open = move || SqliteStore::open(&path).map(|s| s.with_health_history_every(every));
    let store: Arc<dyn Store> = Arc::new(tokio::task::spawn_blocking(open).await??);
    start_with_store(config, store, shutdown).await
}

/// [`start`] with a store of the caller's choosing (another database; a test's wrapper).
/// `config.store.path` holds only the operators' users and tokens here (docs/design/auth.md).
pub async fn start_with_store(
    config: FleetConfig,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<Running, RunError> {
    let mut config = config;
    let broker = match &config.mqtt.broker {
        Some(_) => None,
        None => {
            let stop = CancellationToken::new();
            let handle = broker::start(&config.broker, stop.clone()).await?;
            let addr = handle.local_addr();
            tracing::info!(%addr, "embedded broker listening");
            config.mqtt.broker = Some(addr.to_string());
            Some((handle, stop))
        }
    };
    let broker_addr = broker.as_ref().map(|(h, _)| h.local_addr());

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| RunError::Listen { addr: config.api.listen, source })?;
    let api_addr = listener.local_addr().map_err(|source| RunError::Listen { addr: config.api.listen, source })?;

    let tracker = TaskTracker::new();
    let delivered = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::new(broker.as_ref().map(|(h, _)| h.counts_view()), config.webhook.url.is_some()));
    let ingest_ready = ingest::spawn(
        &config,
        Arc::clone(&store),
        Arc::clone(&delivered),
        Arc::clone(&metrics),
        shutdown.clone(),
        &tracker,
    )?;

    if let Some(url) = config.webhook.url.clone() {
        let webhook = Webhook::new(url, config.webhook.clone(), Arc::clone(&store))?;
        tracker.spawn(webhook.run(Arc::clone(&delivered), shutdown.clone()));
    }

    let health = Arc::new(HealthSettings { offline_after: config.health.offline_after, alerts: config.alerts.clone() });
    let auth = crate::auth::AuthState::open(&config.store.path, &config.auth).await?;
    let desired = crate::config_publisher::spawn(&config, Arc::clone(&store), shutdown.clone(), &tracker)?;
    let max_limit = config.api.max_limit;
    let zone = config.dashboard.timezone;
    let device_addr = match config.trust.listen {
        Some(listen) => Some(start_device_listener(&config, listen, &store, &desired, &shutdown, &tracker).await?),
        None => None,
    };
    let app = api::router(ApiState { store: Arc::clone(&store), max_limit, auth, health, metrics, desired, zone });
    let stop = shutdown.clone();
    tracker.spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        if let Err(e) = served.map_err(RunError::Serve) {
            tracing::error!(error = %e, "api stopped");
        }
    });
    tracker.close();
    tracing::info!(api = %api_addr, "simpul-fleet running");
    Ok(Running { api_addr, device_addr, store, ingest_ready, broker_addr, tracker, shutdown, broker })
}

/// The fleet CA (made on first start) and the HTTPS device listener where boxes enrol.
async fn start_device_listener(
    config: &FleetConfig,
    listen: SocketAddr,
    store: &Arc<dyn Store>,
    desired: &crate::config_publisher::ConfigPublisher,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<SocketAddr, RunError> {
    let trust = config.trust.clone();
    let db = config.store.path.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, RunError> {
        let ca = FleetCa::load_or_create(&trust.dir)?;
        let (chain, key) = ca.server_identity(&trust.server_names, std::time::SystemTime::now())?;
        let tls = crate::trust::listener::server_config(&chain, &key, ca.cert_pem())?;
        Ok((ca, tls, SqliteTrustStore::open(&db)?))
    })
    .await??;
    let (ca, tls, trust_store) = opened;
    let enroller = Enroller {
        ca: Arc::new(ca),
        store: Arc::new(trust_store),
        validity: config.trust.device_cert_validity,
        reserved: config.broker.acl.fleet_identities.clone(),
    };
    tracing::info!(fleet_id = enroller.ca.fleet_id(), "fleet CA loaded");
    let app =
        crate::trust::routes::router(DeviceApiState { enroller, store: Arc::clone(store), desired: desired.clone() });
    Ok(crate::trust::listener::spawn(listen, tls, app, shutdown.clone(), tracker).await?)
}
