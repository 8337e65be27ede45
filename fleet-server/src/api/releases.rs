//! `GET /api/v1/releases` and `PUT /api/v1/releases/{version}/{target}` (ops): publishing
//! a signed agent binary (docs/design/updates.md). The body is the binary; the
//! `Simpul-Release-Signature` header is the `.sig` file `releases sign` wrote (JSON).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use simpul_protocol::release::SignedManifest;

use super::{ApiError, ApiState};
use crate::auth::Principal;
use crate::releases::{ReleaseInfo, ReleaseStore};

pub use simpul_protocol::release::SIGNATURE_HEADER;

/// The largest binary the API takes.
pub const MAX_BINARY: usize = 64 * 1024 * 1024;

/// What the release routes use.
#[derive(Clone, Debug)]
pub struct ReleasesApi {
    pub store: Arc<dyn ReleaseStore>,
    /// `[releases] keys`.
    pub keys: Vec<String>,
}

/// The release list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleasesJson {
    pub releases: Vec<ReleaseInfo>,
}

/// Every published release, newest first (never the bytes).
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases",
    responses((status = 200, description = "The releases", body = ReleasesJson)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<ReleasesJson>, ApiError> {
    let releases = crate::store::blocking(&state.releases.store, |s| s.releases()).await?;
    Ok(Json(ReleasesJson { releases }))
}

/// Publishes a release: the body is the binary, the `Simpul-Release-Signature` header its
/// `.sig` (JSON). Refused unless signed by one of `[releases] keys` over this binary.
#[utoipa::path(put, path = "/api/v1/releases/{version}/{target}", tag = "releases",
    params(
        ("version" = String, Path, description = "x.y.z, as signed"),
        ("target" = String, Path, description = "The target triple, as signed"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The binary"),
    responses(
        (status = 201, description = "Published", body = ReleaseInfo),
        (status = 400, description = "No or a malformed signature, or it does not match the binary", body = super::openapi::ErrorBody),
        (status = 403, description = "Signed by a key the fleet does not accept, or the signature does not hold", body = super::openapi::ErrorBody),
        (status = 409, description = "That version and target exist, or no release keys are configured", body = super::openapi::ErrorBody),
    ))]
pub async fn publish(
    State(state): State<ApiState>,
    Path((version, target)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ReleaseInfo>), ApiError> {
    let Some(sig) = headers.get(SIGNATURE_HEADER) else {
        return Err(ApiError::bad_request(format!(
            "the release is not signed: send its .sig (JSON) in the {SIGNATURE_HEADER} header"
        )));
    };
    let signed: SignedManifest = serde_json::from_slice(sig.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("{SIGNATURE_HEADER} is not a release signature: {e}")))?;
    if let Err(refused) = crate::releases::check(&state.releases.keys, &version, &target, &signed, &body) {
        tracing::warn!(%version, %target, reason = %refused, "release refused");
        let status = StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::BAD_REQUEST);
        return Err(ApiError(status, refused.to_string()));
    }
    let by = super::config::author(principal);
    let at_ms = crate::ingest::now_ms();
    let info = ReleaseInfo {
        version: version.clone(),
        target: target.clone(),
        sha256: signed.manifest.sha256.clone(),
        size: signed.manifest.size,
        public_key: signed.public_key.clone(),
        published_ms: at_ms,
        published_by: by.clone(),
    };
    let added =
        crate::store::blocking(&state.releases.store, move |s| s.add_release(&signed, &body, at_ms, &by)).await?;
    if !added {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("release {version} for {target} exists: a release is never replaced, publish a new version"),
        ));
    }
    tracing::info!(%version, %target, by = %info.published_by, "release published");
    Ok((StatusCode::CREATED, Json(info)))
}

/// The body of `PUT /api/v1/devices/{device}/release`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct DeviceReleaseBody {
    /// A published version.
    pub version: String,
}

/// The release a device is now told to run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceReleaseJson {
    pub device: String,
    pub version: String,
}

/// Tells one device to run a published release now (outside any rollout): its retained
/// update order is set and published; the box checks the release itself.
#[utoipa::path(put, path = "/api/v1/devices/{device}/release", tag = "releases",
    params(("device" = String, Path, description = "The device id")),
    request_body = DeviceReleaseBody,
    responses(
        (status = 200, description = "Ordered", body = DeviceReleaseJson),
        (status = 400, description = "Not a device id or not a version", body = super::openapi::ErrorBody),
        (status = 404, description = "No release of that version is published", body = super::openapi::ErrorBody),
    ))]
pub async fn set_device_release(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<DeviceReleaseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DeviceReleaseJson>, ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("the body must be {{\"version\": \"x.y.z\"}}: {e}")))?;
    let device = simpul_protocol::DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    simpul_protocol::release::parse_version(&body.version).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let by = super::config::author(principal);
    let (d, v) = (device.clone(), body.version.clone());
    let set = crate::store::blocking(&state.releases.store, move |s| {
        if !s.has_version(&v)? {
            return Ok(false);
        }
        s.set_device_release(&d, &v, None, crate::ingest::now_ms(), &by)?;
        Ok(true)
    })
    .await?;
    if !set {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no release {} is published", body.version)));
    }
    state.desired.changed([device.clone()]);
    tracing::info!(%device, version = %body.version, "device told to run a release");
    Ok(Json(DeviceReleaseJson { device: device.to_string(), version: body.version }))
}
