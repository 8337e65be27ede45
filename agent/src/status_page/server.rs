//! The status page's HTTP server: `/` (HTML), `/status.json`, and `POST /probe?port=`
//! (probe a newly plugged port and propose it to the fleet).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::i18n::{Lang, Zone};
use super::ports;
use super::probe::ProbeHook;
use super::render;
use super::view::{LinkView, SensorView, StatusView};
use crate::buffer::Buffer;
use crate::sensor::LiveSensors;
use crate::uplink::UplinkStats;

/// Where the page's facts come from: the live counters, shared with the rest of the agent.
#[derive(Clone, Debug)]
pub struct Sources {
    pub device: String,
    pub site: Option<String>,
    pub version: String,
    /// The running sensors (a sensor the fleet adds shows up without a restart).
    pub sensors: LiveSensors,
    /// `None` when the uplink is off.
    pub uplink: Option<Arc<UplinkStats>>,
    pub buffer_path: PathBuf,
    pub ports_dir: PathBuf,
    pub port_prefixes: Vec<String>,
    pub zone: Zone,
    /// A sensor without a reading for this long is shown failing.
    pub stale_after: Duration,
    /// Probing new ports and proposing them to the fleet, with the results so far.
    pub probe: ProbeHook,
}

impl Sources {
    /// The view now. Reads the buffer's counts on the blocking pool.
    pub async fn view(&self) -> StatusView {
        let now_ms = crate::clock::wall_ms(std::time::SystemTime::now());
        let stale_ms = i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX);
        let sensors = self.sensors.stats();
        let sensors = sensors.iter().map(|(id, s)| SensorView::from_snapshot(id, &s.snapshot(), now_ms, stale_ms));
        let path = self.buffer_path.clone();
        let stats = tokio::task::spawn_blocking(move || Buffer::open_read_only(&path).and_then(|b| b.stats()))
            .await
            .ok()
            .and_then(Result::ok);
        let new_ports = self.unconfigured().await;
        StatusView {
            site: self.site.clone(),
            device: self.device.clone(),
            version: self.version.clone(),
            now_ms,
            link: LinkView::from_uplink(self.uplink.as_ref().map(|u| u.snapshot()).as_ref()),
            waiting: stats.as_ref().map(|s| s.readings),
            oldest_waiting_ms: stats.as_ref().and_then(|s| s.oldest_wall_ms),
            sensors: sensors.collect(),
            new_ports: new_ports.iter().map(|p| p.display().to_string()).collect(),
            probes: self.probe.results(),
        }
    }

    /// Ports plugged in that no sensor uses, read on the blocking pool.
    async fn unconfigured(&self) -> Vec<PathBuf> {
        let (dir, prefixes, used) = (self.ports_dir.clone(), self.port_prefixes.clone(), self.sensors.ports());
        tokio::task::spawn_blocking(move || ports::unconfigured(&dir, &prefixes, &used)).await.unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProbeQuery {
    port: Option<String>,
    lang: Option<String>,
}

/// The routes.
pub fn router(sources: Arc<Sources>) -> Router {
    Router::new()
        .route("/", get(html))
        .route("/status.json", get(json))
        .route("/probe", post(probe))
        .with_state(sources)
}

async fn html(State(s): State<Arc<Sources>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let lang = Lang::choose(q.lang.as_deref(), accept);
    let view = s.view().await;
    ([(header::CACHE_CONTROL, "no-store")], Html(render::page(&view, lang, s.zone)))
}

async fn json(State(s): State<Arc<Sources>>) -> Json<StatusView> {
    Json(s.view().await)
}

/// Probes `port` if it is in the unconfigured list (never any other path, whatever the
/// request says), then sends the browser back to the page, which shows the result.
async fn probe(State(s): State<Arc<Sources>>, Query(q): Query<ProbeQuery>) -> Response {
    let wanted = q.port.unwrap_or_default();
    let Some(port) = s.unconfigured().await.into_iter().find(|p| p.as_os_str() == wanted.as_str()) else {
        return (StatusCode::NOT_FOUND, "not a newly plugged port / bukan port baru").into_response();
    };
    s.probe.start(port);
    let back = match q.lang.as_deref() {
        Some("en") => "/?lang=en",
        Some("id") => "/?lang=id",
        _ => "/",
    };
    Redirect::to(back).into_response()
}

/// Binds `listen` and serves the page until `shutdown`. Returns the bound address (port 0
/// picks one). A port that cannot be bound is logged and the agent runs on without a page.
pub async fn spawn(listen: SocketAddr, sources: Sources, shutdown: CancellationToken) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot open the status page; the agent runs without it");
            return None;
        }
    };
    let addr = listener.local_addr().ok()?;
    tracing::info!(%addr, "status page listening");
    let mut sources = sources;
    sources.probe.shutdown = shutdown.child_token();
    let app = router(Arc::new(sources));
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "status page stopped");
        }
    });
    Some(addr)
}
