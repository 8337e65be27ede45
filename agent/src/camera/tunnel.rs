//! The box's one outbound connection for camera traffic: TLS to the fleet's device
//! listener with the box's client certificate, an HTTP/1.1 upgrade to
//! [`TUNNEL_PROTOCOL`], then HTTP/2 with the fleet as the client and the box serving
//! (docs/design/cameras.md). Dialled again with backoff whenever it drops.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use simpul_protocol::camera::{TUNNEL_PATH, TUNNEL_PROTOCOL};
use tokio_util::sync::CancellationToken;

use super::serve::{self, Cameras};
use crate::config::RetryConfig;
use crate::sensor::retry::Backoff;
use crate::trust::Identity;

/// How often the box pings the fleet over an idle tunnel (HTTP/2 PING), and how long it
/// waits for the answer before it counts the tunnel as dead.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// A tunnel that stayed up this long starts the backoff over when it drops.
const STABLE: Duration = Duration::from_secs(60);

/// Why one tunnel attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("[trust] fleet {0:?} is not an https:// address with a host")]
    Address(String),
    #[error("the box's identity: {0}")]
    Identity(String),
    #[error("cannot reach the fleet: {0}")]
    Connect(#[source] std::io::Error),
    #[error("TLS with the fleet: {0}")]
    Tls(String),
    #[error("HTTP with the fleet: {0}")]
    Http(#[from] hyper::Error),
    #[error("the fleet refused the tunnel: {status} {body}")]
    Refused { status: StatusCode, body: String },
}

/// Keeps the tunnel up until `shutdown`.
pub async fn run(fleet: String, identity_dir: PathBuf, cams: Cameras, retry: RetryConfig, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(&retry);
    loop {
        let started = Instant::now();
        match session(&fleet, &identity_dir, &cams, &shutdown).await {
            Ok(()) => tracing::info!("camera tunnel closed"),
            Err(e) => tracing::warn!(error = %e, "camera tunnel"),
        }
        if started.elapsed() >= STABLE {
            backoff.reset();
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn session(
    fleet: &str,
    identity_dir: &std::path::Path,
    cams: &Cameras,
    shutdown: &CancellationToken,
) -> Result<(), TunnelError> {
    let url = url::Url::parse(fleet).map_err(|_| TunnelError::Address(fleet.to_owned()))?;
    let host =
        url.host_str().filter(|_| url.scheme() == "https").ok_or_else(|| TunnelError::Address(fleet.to_owned()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let dir = identity_dir.to_owned();
    let identity = tokio::task::spawn_blocking(move || Identity::load(&dir))
        .await
        .map_err(|e| TunnelError::Identity(e.to_string()))?
        .map_err(|e| TunnelError::Identity(e.to_string()))?;
    let tls = identity.client_config().map_err(|e| TunnelError::Identity(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| TunnelError::Tls(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(TunnelError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let stream =
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| TunnelError::Tls(e.to_string()))?;

    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driving = tokio::spawn(conn.with_upgrades());
    let req = Request::get(TUNNEL_PATH)
        .header(HOST, host)
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, TUNNEL_PROTOCOL)
        .body(Empty::<Bytes>::new())
        .map_err(|e| TunnelError::Tls(e.to_string()))?;
    let resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
        driving.abort();
        return Err(TunnelError::Refused { status, body: String::from_utf8_lossy(&body).into_owned() });
    }
    let upgraded = hyper::upgrade::on(resp).await?;
    tracing::info!(%fleet, "camera tunnel open");
    let cams = cams.clone();
    let service = hyper::service::service_fn(move |req| serve::handle(req, cams.clone()));
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .serve_connection(upgraded, service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => served?,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.as_mut()).await;
        }
    }
    Ok(())
}
