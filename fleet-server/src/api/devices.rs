//! `GET /api/v1/devices/{device}`: a device's watermark and counts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use simpul_protocol::DeviceId;

use super::{ApiError, ApiState};
use crate::store::{self, DeviceSummary};

/// A device's watermark and counts.
#[utoipa::path(get, path = "/api/v1/devices/{device}", tag = "devices",
    params(("device" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "What the fleet knows of the device", body = DeviceSummary),
        (status = 400, description = "Not a device id", body = super::openapi::ErrorBody),
        (status = 404, description = "The fleet never heard from the device", body = super::openapi::ErrorBody),
    ))]
pub async fn show(State(state): State<ApiState>, Path(device): Path<String>) -> Result<Json<DeviceSummary>, ApiError> {
    let device = DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let name = device.to_string();
    match store::blocking(&state.store, move |s| s.device(&device)).await? {
        Some(summary) => Ok(Json(summary)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no device {name:?} has sent anything"))),
    }
}
