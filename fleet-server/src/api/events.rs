//! `GET /api/v1/devices/{device}/events?limit=`: what a device reported (sensor proposals,
//! config rollbacks, sensors lost and back, buffer evictions).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;
use simpul_protocol::control::Event;

use super::json::rfc3339_ms;
use super::{ApiError, ApiState};
use crate::store;

/// The default number of events returned.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// At most this many, newest first. Default 100; capped at `api.max_limit`.
    #[serde(default)]
    limit: Option<usize>,
}

/// A device's events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceEventsJson {
    pub device: String,
    pub events: Vec<DeviceEventJson>,
}

/// One event as received.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceEventJson {
    /// Its number on the fleet: a `sensor_proposed` event is accepted by it.
    pub id: i64,
    /// When the fleet received it, RFC 3339 UTC.
    pub at: String,
    pub at_ms: i64,
    /// The event's tag: `sensor_proposed`, `config_rolled_back`, `sensor_disconnected`,
    /// `sensor_connected`, `buffer_evicted` or `unknown`.
    pub kind: String,
    /// The event as the agent sent it (simpul-protocol `Event`, tagged by `event`).
    #[schema(value_type = Object)]
    pub detail: Event,
    /// For a `sensor_proposed` event ops accepted: into which version, by whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<AcceptedJson>,
}

/// How a proposal was accepted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptedJson {
    /// The id the sensor got in the config.
    pub sensor_id: String,
    /// The desired version it went into.
    pub version: u64,
    pub by: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// A device's events (clock syncs are not listed: they correct readings instead).
#[utoipa::path(
    get,
    path = "/api/v1/devices/{device}/events",
    tag = "devices",
    params(("device" = String, Path, description = "The device id"), EventsParams),
    responses(
        (status = 200, description = "Events, newest first", body = DeviceEventsJson),
        (status = 400, description = "Not a device id"),
        (status = 404, description = "The fleet never heard from this device"),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    Query(p): Query<EventsParams>,
) -> Result<Json<DeviceEventsJson>, ApiError> {
    let device = DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, state.max_limit);
    let d = device.clone();
    let events = store::blocking(&state.store, move |s| match s.device(&d)? {
        Some(_) => s.device_events(&d, limit).map(Some),
        None => Ok(None),
    })
    .await?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {:?} has sent anything", device.as_str())))?;
    let events = events
        .into_iter()
        .map(|e| DeviceEventJson {
            id: e.id,
            at: rfc3339_ms(e.at_ms),
            at_ms: e.at_ms,
            kind: e.kind,
            detail: e.event,
            accepted: e.accepted.map(|a| AcceptedJson {
                sensor_id: a.sensor_id,
                version: a.version,
                by: a.author,
                at: rfc3339_ms(a.at_ms),
            }),
        })
        .collect();
    Ok(Json(DeviceEventsJson { device: device.to_string(), events }))
}
