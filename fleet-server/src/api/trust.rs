//! `POST /api/v1/devices/{device}/revoke` (ops) and `GET /api/v1/security-events`: cutting
//! a box off, and what the broker refused (docs/design/trust.md).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;

use super::{ApiError, ApiState};
use crate::broker::{Disconnector, SecurityEvent};
use crate::trust::store::TrustStore;

/// What the trust routes use.
#[derive(Clone, Debug)]
pub struct TrustApi {
    pub store: Arc<dyn TrustStore>,
    /// Closes a live session on the embedded broker (none with an external broker).
    pub disconnector: Option<Disconnector>,
}

/// A revocation's outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedJson {
    pub device: String,
    /// The serials revoked now (empty: it had no live certificate).
    pub revoked: Vec<String>,
    /// Whether a live MQTT session was closed (always false with an external broker).
    pub disconnected: bool,
}

/// Revokes every certificate of a device and closes its live session: it is refused at
/// its next connect, and enrolling it again needs a new token.
#[utoipa::path(post, path = "/api/v1/devices/{device}/revoke", tag = "trust",
    params(("device" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "Revoked (or nothing left to revoke)", body = RevokedJson),
        (status = 400, description = "Not a device id", body = super::openapi::ErrorBody),
    ))]
pub async fn revoke(State(state): State<ApiState>, Path(device): Path<String>) -> Result<Json<RevokedJson>, ApiError> {
    let device = DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let d = device.clone();
    let now = crate::ingest::now_ms();
    let revoked = crate::store::blocking(&state.trust.store, move |s| s.revoke_device(&d, now)).await?;
    let disconnected = match &state.trust.disconnector {
        Some(d) => d.disconnect(device.as_str(), "certificate revoked").await,
        None => false,
    };
    tracing::warn!(%device, ?revoked, disconnected, "device revoked");
    Ok(Json(RevokedJson { device: device.to_string(), revoked, disconnected }))
}

/// Which security events.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Only this identity's (a device id, or what a refused client called itself).
    pub identity: Option<String>,
    /// At most this many, newest first. Default 100.
    pub limit: Option<usize>,
}

/// Security events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecurityEventsJson {
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<SecurityEvent>,
}

/// What the broker refused: publishes and subscribes outside a device's topics, refused
/// connections.
#[utoipa::path(get, path = "/api/v1/security-events", tag = "trust", params(EventsQuery),
    responses((status = 200, description = "Newest first", body = SecurityEventsJson)))]
pub async fn security_events(
    State(state): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<SecurityEventsJson>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(state.max_limit);
    let events =
        crate::store::blocking(&state.trust.store, move |s| s.security_events(q.identity.as_deref(), limit)).await?;
    Ok(Json(SecurityEventsJson { events }))
}
