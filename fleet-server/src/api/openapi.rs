//! The OpenAPI 3.1 document of the API, served without credentials at
//! `GET /api/v1/openapi.json`. Every route in [`super::router`] is listed in [`ApiDoc`]
//! (a test compares the two: fleet-server/tests/api_auth.rs).

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::json::ReadingJson;
use super::{
    cameras, config, devices, events, fleet_devices, health, login, metrics, proposals, readings, releases, rollouts,
    series, tokens, trust, users,
};

/// An error: a 4xx or 5xx status and this body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A page of the cursor API (JSON format).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadingsPage<'a> {
    pub readings: Vec<ReadingJson<'a>>,
    /// Pass it back as `after`.
    pub next: String,
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Simpul fleet API", description = "Readings for the central platform; devices, users and tokens for operators. \
        GET and HEAD need the viewer or ops role, everything else ops (docs/design/auth.md)."),
    paths(
        readings::list,
        devices::show,
        fleet_devices::list,
        health::history,
        events::list,
        series::list,
        metrics::serve,
        login::login,
        login::logout,
        users::list,
        users::add,
        users::remove,
        tokens::list,
        tokens::create,
        tokens::revoke,
        config::show,
        config::set,
        config::history,
        config::set_group,
        config::groups,
        config::set_group_defaults,
        proposals::accept,
        trust::revoke,
        trust::security_events,
        releases::list,
        releases::publish,
        releases::set_device_release,
        rollouts::list,
        rollouts::show,
        rollouts::start,
        rollouts::pause,
        rollouts::resume,
        rollouts::abort,
        cameras::list,
        cameras::snapshot,
        cameras::live,
        serve,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("cookie" = [])),
)]
pub struct ApiDoc;

/// The security schemes: a bearer token, or the session cookie.
#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("spl_{id}_{secret}")
                    .description(Some("An API token or a login session token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
