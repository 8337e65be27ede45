//! The device listener's routes: `POST /api/v1/enrol` and `POST /api/v1/renew`
//! (docs/design/trust.md, "Enrolment" and "Renewal"); `GET /api/v1/releases/{version}/{target}`
//! (docs/design/updates.md); `GET /api/v1/cameras/tunnel` (docs/design/cameras.md).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use simpul_protocol::DeviceId;

use simpul_protocol::enrol::{ENROL_PATH, RENEW_PATH, RenewRequest};

use super::enrol::{EnrolRequest, Enroller};
use super::listener::PeerCert;
use crate::config_publisher::ConfigPublisher;
use crate::releases::download::DownloadState;
use crate::store::{ConfigChange, ConfigRefused, Store};

/// What the device routes use.
#[derive(Clone, Debug)]
pub struct DeviceApiState {
    pub enroller: Enroller,
    pub store: Arc<dyn Store>,
    pub desired: ConfigPublisher,
    /// Releases boxes download (docs/design/updates.md).
    pub releases: Arc<dyn crate::releases::ReleaseStore>,
    /// Where boxes' camera tunnels are kept (docs/design/cameras.md).
    pub tunnels: crate::cameras::Tunnels,
}

/// The device listener's routes.
pub fn router(state: DeviceApiState) -> Router {
    let download = DownloadState { releases: Arc::clone(&state.releases), trust: Arc::clone(&state.enroller.store) };
    let releases = Router::new()
        .route("/api/v1/releases/{version}/{target}", get(crate::releases::download::download))
        .with_state(download);
    let tunnel = crate::cameras::tunnels::TunnelState {
        tunnels: state.tunnels.clone(),
        trust: Arc::clone(&state.enroller.store) as Arc<dyn crate::trust::store::TrustStore>,
    };
    let cameras = Router::new()
        .route(simpul_protocol::camera::TUNNEL_PATH, get(crate::cameras::tunnels::accept))
        .with_state(tunnel);
    Router::new()
        .route(ENROL_PATH, post(enrol))
        .route(RENEW_PATH, post(renew))
        .with_state(state)
        .merge(releases)
        .merge(cameras)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn enrol(
    State(s): State<DeviceApiState>,
    body: Result<Json<EnrolRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("the body must be JSON {{token, device_id, csr}}: {e}"));
        }
    };
    let enroller = s.enroller.clone();
    let outcome = tokio::task::spawn_blocking(move || enroller.enrol(&req, SystemTime::now())).await;
    let enrolled = match outcome {
        Ok(Ok(Ok(e))) => e,
        Ok(Ok(Err(refused))) => {
            tracing::warn!(reason = %refused, "enrolment refused");
            let status = StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, refused.to_string());
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "enrolment failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some(group) = enrolled.group.clone() {
        join_group(&s, &enrolled.device_id, group).await;
    }
    Json(enrolled).into_response()
}

async fn renew(
    State(s): State<DeviceApiState>,
    axum::Extension(PeerCert(peer)): axum::Extension<PeerCert>,
    body: Result<Json<RenewRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body must be JSON {{csr}}: {e}")),
    };
    let enroller = s.enroller.clone();
    let outcome =
        tokio::task::spawn_blocking(move || enroller.renew(peer.as_deref(), &req.csr, SystemTime::now())).await;
    match outcome {
        Ok(Ok(Ok(renewed))) => Json(renewed).into_response(),
        Ok(Ok(Err(refused))) => {
            tracing::warn!(reason = %refused, "renewal refused");
            let status = StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::FORBIDDEN);
            error(status, refused.to_string())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "renewal failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Puts a newly enrolled device in its token's group (a missing group is logged: the
/// device is enrolled either way, and ops can assign it).
async fn join_group(s: &DeviceApiState, device: &str, group: String) {
    let Ok(device) = DeviceId::new(device.to_owned()) else { return };
    let change = ConfigChange {
        author: "enrolment".to_owned(),
        at_ms: crate::ingest::now_ms(),
        comment: format!("enrolled with a token of group {group}"),
    };
    let d = device.clone();
    let g = group.clone();
    let joined = crate::store::blocking(&s.store, move |st| st.set_device_group(&d, Some(&g), &change)).await;
    match joined {
        Ok(Ok(_)) => s.desired.changed([device]),
        Ok(Err(ConfigRefused::NoSuchGroup(_))) => {
            tracing::warn!(%device, %group, "enrolled, but its token's group does not exist: assign it by hand");
        }
        Err(e) => tracing::error!(%device, %group, error = %e, "enrolled, but joining its group failed"),
    }
}
