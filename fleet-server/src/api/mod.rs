//! The platform API (axum). Every route is in [`router`], under one auth layer
//! (crate::auth::layer, docs/design/auth.md), and documented in [`openapi::ApiDoc`]. Reference: docs/ref/platform-api.md.

pub mod cameras;
mod config;
mod devices;
mod events;
mod fleet_devices;
mod health;
pub mod json;
mod login;
mod metrics;
pub mod openapi;
mod proposals;
mod readings;
pub mod releases;
pub mod rollouts;
mod series;
mod tokens;
pub mod trust;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::store::{Store, StoreError};

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The largest `limit` honoured.
    pub max_limit: usize,
    /// Operators' users, tokens and sessions (docs/design/auth.md).
    pub auth: crate::auth::AuthState,
    /// The online rule and alert thresholds (docs/design/fleet-health.md).
    pub health: Arc<crate::health::HealthSettings>,
    /// The fleet's metrics, served on `GET /metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Publishes desired configs after a change (docs/design/fleet-config-distribution.md).
    pub desired: crate::config_publisher::ConfigPublisher,
    /// The site's time zone, for the dashboard (`[dashboard] timezone`).
    pub zone: crate::config::SiteZone,
    /// Revocation and security events (docs/design/trust.md).
    pub trust: trust::TrustApi,
    /// Published releases (docs/design/updates.md).
    pub releases: releases::ReleasesApi,
    /// Rollouts in waves (docs/design/updates.md).
    pub rollouts: Arc<dyn crate::rollouts::RolloutStore>,
    /// The camera relay (docs/design/cameras.md).
    pub cameras: cameras::CamerasApi,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/readings", get(readings::list))
        .route("/api/v1/devices/{device}", get(devices::show))
        .route("/api/v1/devices", get(fleet_devices::list))
        .route("/api/v1/devices/{device}/health", get(health::history))
        .route("/api/v1/devices/{device}/events", get(events::list))
        .route("/api/v1/devices/{device}/series", get(series::list))
        .route("/metrics", get(metrics::serve))
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/logout", post(login::logout))
        .route("/api/v1/users", get(users::list).post(users::add))
        .route("/api/v1/users/{name}", delete(users::remove))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
        .route("/api/v1/devices/{device}/config", get(config::show).put(config::set))
        .route("/api/v1/devices/{device}/config/history", get(config::history))
        .route("/api/v1/devices/{device}/group", put(config::set_group))
        .route("/api/v1/devices/{device}/proposals/{event}/accept", post(proposals::accept))
        .route("/api/v1/devices/{device}/revoke", post(trust::revoke))
        .route("/api/v1/security-events", get(trust::security_events))
        .route("/api/v1/releases", get(releases::list))
        .route("/api/v1/devices/{device}/release", put(releases::set_device_release))
        .route("/api/v1/rollouts", get(rollouts::list).post(rollouts::start))
        .route("/api/v1/rollouts/{id}", get(rollouts::show))
        .route("/api/v1/rollouts/{id}/pause", post(rollouts::pause))
        .route("/api/v1/rollouts/{id}/resume", post(rollouts::resume))
        .route("/api/v1/rollouts/{id}/abort", post(rollouts::abort))
        .route(
            "/api/v1/releases/{version}/{target}",
            put(releases::publish).layer(axum::extract::DefaultBodyLimit::max(releases::MAX_BINARY)),
        )
        .route("/api/v1/cameras", get(cameras::list))
        .route("/api/v1/cameras/{device}/{camera}/snapshot.jpg", get(cameras::snapshot))
        .route("/api/v1/cameras/{device}/{camera}/live.mp4", get(cameras::live))
        .route("/api/v1/groups", get(config::groups))
        .route("/api/v1/groups/{group}", put(config::set_group_defaults))
        .route("/api/v1/openapi.json", get(openapi::serve))
        // Last: the auth layer covers every route above it, under /api/v1 (auth/layer.rs).
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::layer::require))
        // The dashboard's files need no credentials; its data comes from /api/v1 above.
        .merge(crate::dashboard::router(state.zone))
        .with_state(state)
}

/// An API error: a status and a JSON `{"error": "..."}` body.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "api: store failed");
        let status = if e.is_retryable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}
