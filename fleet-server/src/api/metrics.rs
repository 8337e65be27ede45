//! `GET /metrics`: the fleet's metrics in Prometheus text format (outside `/api/v1`).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::health::is_online;
use crate::ingest::now_ms;
use crate::store;
use crate::webhook::CONSUMER;

/// The OpenMetrics text media type prometheus-client writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The fleet's metrics (see `crate::metrics`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses((status = 200, description = "Prometheus / OpenMetrics text", content_type = "application/openmetrics-text"))
)]
pub async fn serve(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let webhook = state.metrics.has_webhook();
    let (devices, lag) = store::blocking(&state.store, move |s| {
        let lag = if webhook { Some(s.delivery_head()?.saturating_sub(s.consumer_cursor(CONSUMER)?)) } else { None };
        Ok((s.devices()?, lag))
    })
    .await?;
    let now = now_ms();
    let offline_after = state.health.offline_after;
    let online = devices
        .iter()
        .filter(|d| is_online(d.status_online, d.health.as_ref().map(|h| h.received_at_ms), now, offline_after))
        .count();
    let text = state
        .metrics
        .render(devices.len(), online, lag)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}")))?;
    let mut resp = text.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(resp)
}
