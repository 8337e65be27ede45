//! `GET /api/v1/releases/{version}/{target}` on the device listener: a box with a live
//! certificate of the fleet downloads a release's binary; the signed manifest comes with it
//! in the `Simpul-Release-Signature` header (docs/design/updates.md).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ReleaseStore;
use crate::trust::listener::{PeerCert, live_box};
use crate::trust::store::TrustStore;

/// What the download route uses.
#[derive(Clone, Debug)]
pub struct DownloadState {
    pub releases: Arc<dyn ReleaseStore>,
    pub trust: Arc<dyn TrustStore>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The binary, to a box presenting a live certificate.
pub async fn download(
    State(s): State<DownloadState>,
    axum::Extension(PeerCert(peer)): axum::Extension<PeerCert>,
    Path((version, target)): Path<(String, String)>,
) -> Response {
    let (device, _serial) = match live_box(peer.as_ref(), &s.trust, "a release").await {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let releases = Arc::clone(&s.releases);
    let (v, t) = (version.clone(), target.clone());
    let release = match tokio::task::spawn_blocking(move || releases.release(&v, &t)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some((signed, binary)) = release else {
        return error(StatusCode::NOT_FOUND, format!("no release {version} for {target}"));
    };
    let sig = serde_json::to_string(&signed).ok().and_then(|s| HeaderValue::from_str(&s).ok());
    tracing::info!(%device, %version, %target, bytes = binary.len(), "release downloaded");
    let mut resp = binary.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(sig) = sig {
        headers.insert(crate::api::releases::SIGNATURE_HEADER, sig);
    }
    resp
}
