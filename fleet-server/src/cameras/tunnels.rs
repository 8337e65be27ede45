//! The fleet's side of the camera tunnels: the upgrade route on the device listener, and
//! the registry of open tunnels by device (docs/design/cameras.md). Through a tunnel the
//! fleet is the HTTP/2 client of the box that dialled it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use simpul_protocol::camera::TUNNEL_PROTOCOL;

use super::RelayError;
use crate::trust::listener::{PeerCert, live_box};
use crate::trust::store::TrustStore;

/// How often the fleet pings an idle tunnel, and how long it waits for the answer.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

struct Tunnel {
    id: u64,
    sender: SendRequest<Empty<Bytes>>,
}

/// The open tunnels, by device.
#[derive(Clone, Default)]
pub struct Tunnels {
    open: Arc<Mutex<HashMap<String, Tunnel>>>,
    next: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnels").field("devices", &self.devices()).finish()
    }
}

impl Tunnels {
    fn insert(&self, device: &str, sender: SendRequest<Empty<Bytes>>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let old =
            self.open.lock().unwrap_or_else(PoisonError::into_inner).insert(device.to_owned(), Tunnel { id, sender });
        if old.is_some() {
            tracing::info!(%device, "camera tunnel replaced by a newer one");
        }
        id
    }

    fn remove(&self, device: &str, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.get(device).is_some_and(|t| t.id == id) {
            open.remove(device);
        }
    }

    /// The devices with an open tunnel.
    pub fn devices(&self) -> Vec<String> {
        let mut v: Vec<String> = self.open.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        v.sort();
        v
    }

    /// Sends `GET path` through `device`'s tunnel.
    pub async fn get(&self, device: &str, path: &str) -> Result<hyper::Response<Incoming>, RelayError> {
        let sender = self.open.lock().unwrap_or_else(PoisonError::into_inner).get(device).map(|t| t.sender.clone());
        let mut sender = sender.ok_or_else(|| RelayError::NoTunnel(device.to_owned()))?;
        let req =
            hyper::Request::get(path).body(Empty::<Bytes>::new()).map_err(|e| RelayError::Tunnel(e.to_string()))?;
        sender.ready().await.map_err(|e| RelayError::Tunnel(e.to_string()))?;
        sender.send_request(req).await.map_err(|e| RelayError::Tunnel(e.to_string()))
    }
}

/// What the upgrade route uses.
#[derive(Clone, Debug)]
pub struct TunnelState {
    pub tunnels: Tunnels,
    pub trust: Arc<dyn TrustStore>,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /api/v1/cameras/tunnel` with `Upgrade: simpul-camera-tunnel/1`, from a box with
/// a live certificate: `101`, then the connection is the box's camera tunnel.
pub async fn accept(
    State(s): State<TunnelState>,
    axum::Extension(PeerCert(peer)): axum::Extension<PeerCert>,
    mut req: Request,
) -> Response {
    let wants = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok());
    if !wants.is_some_and(|p| p.eq_ignore_ascii_case(TUNNEL_PROTOCOL)) {
        return refuse(StatusCode::UPGRADE_REQUIRED, format!("ask for Upgrade: {TUNNEL_PROTOCOL}"));
    }
    let device = match live_box(peer.as_ref(), &s.trust, "a camera tunnel").await {
        Ok((device, _)) => device,
        Err((status, message)) => return refuse(status, message),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let tunnels = s.tunnels.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(%device, error = %e, "camera tunnel: the upgrade failed");
                return;
            }
        };
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<Bytes>>(upgraded)
            .await;
        let (sender, conn) = match handshake {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(%device, error = %e, "camera tunnel: HTTP/2 handshake failed");
                return;
            }
        };
        let id = tunnels.insert(device.as_str(), sender);
        tracing::info!(%device, "camera tunnel open");
        if let Err(e) = conn.await {
            tracing::info!(%device, error = %e, "camera tunnel ended");
        } else {
            tracing::info!(%device, "camera tunnel closed");
        }
        tunnels.remove(device.as_str(), id);
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut().insert(header::UPGRADE, HeaderValue::from_static(TUNNEL_PROTOCOL));
    resp
}
