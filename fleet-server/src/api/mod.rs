//! The platform API (axum). Every route is in [`router`], so an auth layer added later
//! covers them all. Reference: docs/ref/platform-api.md.

mod devices;
pub mod json;
mod readings;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::{Store, StoreError};

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The largest `limit` honoured.
    pub max_limit: usize,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/readings", get(readings::list))
        .route("/api/v1/devices/{device}", get(devices::show))
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
