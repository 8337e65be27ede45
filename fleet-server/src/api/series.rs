//! `GET /api/v1/devices/{device}/series?since=&until=`: a device's readings per minute,
//! for charts (docs/design/dashboard.md). Read from `series_minutes`, which the ingest
//! commit keeps; the readings table has no per-device index.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;

use super::{ApiError, ApiState};
use crate::ingest::now_ms;
use crate::store::{self, SeriesPoints};

/// The default window: the last 24 hours.
const DEFAULT_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// The widest window one call may ask for: 31 days (44,640 minutes a series).
const MAX_WINDOW_MS: i64 = 31 * 24 * 3600 * 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// From this time (by its minute), ms since the epoch. Default: `until` less 24 hours.
    #[serde(default)]
    since: Option<i64>,
    /// Up to this time (by its minute), ms since the epoch. Default: now.
    #[serde(default)]
    until: Option<i64>,
}

/// A device's series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceSeriesJson {
    pub device: String,
    pub since_ms: i64,
    pub until_ms: i64,
    /// Each series (sensor, metric, unit) with its minutes, oldest first; by sensor.
    pub series: Vec<SeriesPoints>,
}

/// A device's readings aggregated per minute (count, min, max, average), for charts.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{device}/series",
    tag = "devices",
    params(("device" = String, Path, description = "The device id"), SeriesParams),
    responses(
        (status = 200, description = "Every series of the device with its minutes in the window", body = DeviceSeriesJson),
        (status = 400, description = "Not a device id, `since` after `until`, or a window over 31 days"),
        (status = 404, description = "The fleet never heard from this device"),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    Query(p): Query<SeriesParams>,
) -> Result<Json<DeviceSeriesJson>, ApiError> {
    let device = DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let until = p.until.unwrap_or_else(now_ms);
    let since = p.since.unwrap_or(until.saturating_sub(DEFAULT_WINDOW_MS));
    if since > until {
        return Err(ApiError::bad_request("`since` is after `until`"));
    }
    if until.saturating_sub(since) > MAX_WINDOW_MS {
        return Err(ApiError::bad_request("the window is over 31 days: ask for less"));
    }
    let d = device.clone();
    let series = store::blocking(&state.store, move |s| match s.device(&d)? {
        Some(_) => s.series_minutes(&d, since, until).map(Some),
        None => Ok(None),
    })
    .await?
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no device {:?} has sent anything", device.as_str())))?;
    Ok(Json(DeviceSeriesJson { device: device.to_string(), since_ms: since, until_ms: until, series }))
}
