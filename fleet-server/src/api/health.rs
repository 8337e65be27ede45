//! `GET /api/v1/devices/{device}/health?since=&limit=`: a device's heartbeat history.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;
use simpul_protocol::control::Heartbeat;

use super::json::rfc3339_ms;
use super::{ApiError, ApiState};
use crate::store;

/// The default number of heartbeats returned (a day at the agent's default 60 s).
const DEFAULT_LIMIT: usize = 1440;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only heartbeats received at or after this time, ms since the epoch. Default: all kept.
    #[serde(default)]
    since: Option<i64>,
    /// At most this many, newest first. Default 1440; capped at `api.max_limit`.
    #[serde(default)]
    limit: Option<usize>,
}

/// A device's heartbeats, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthHistoryJson {
    pub device: String,
    pub heartbeats: Vec<HealthPointJson>,
}

/// One heartbeat as received.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthPointJson {
    /// When the fleet received it, RFC 3339 UTC.
    pub at: String,
    pub at_ms: i64,
    /// The heartbeat as the agent sent it (simpul-protocol `Heartbeat`).
    #[schema(value_type = Object)]
    pub heartbeat: Heartbeat,
}

/// A device's heartbeat history (kept for `store.health_retention`).
#[utoipa::path(
    get,
    path = "/api/v1/devices/{device}/health",
    tag = "devices",
    params(("device" = String, Path, description = "The device id"), HistoryParams),
    responses(
        (status = 200, description = "Heartbeats, newest first", body = HealthHistoryJson),
        (status = 400, description = "Not a device id"),
        (status = 404, description = "The fleet never heard from this device"),
    )
)]
pub async fn history(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    Query(p): Query<HistoryParams>,
) -> Result<Json<HealthHistoryJson>, ApiError> {
    let device = DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, state.max_limit);
    let since = p.since.unwrap_or(i64::MIN);
    let d = device.clone();
    let points = store::blocking(&state.store, move |s| match s.device(&d)? {
        Some(_) => s.device_health(&d, since, limit).map(Some),
        None => Ok(None),
    })
    .await?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {:?} has sent anything", device.as_str())))?;
    let heartbeats = points
        .into_iter()
        .map(|p| HealthPointJson { at: rfc3339_ms(p.at_ms), at_ms: p.at_ms, heartbeat: p.heartbeat })
        .collect();
    Ok(Json(HealthHistoryJson { device: device.to_string(), heartbeats }))
}
