//! The ops dashboard (docs/design/dashboard.md): plain HTML, CSS and JavaScript embedded
//! in the binary (no build step, nothing fetched from the internet: the command centre
//! may have none), served at `/dashboard/` without credentials. The page gets its data
//! from `/api/v1` with the session cookie that `POST /api/v1/login` sets.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::config::SiteZone;

/// One embedded file: its name under `/dashboard/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", bytes: include_bytes!("assets/index.html") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("assets/app.css") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("assets/app.js") },
    Asset { name: "i18n.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("assets/i18n.js") },
    Asset {
        name: "rollouts.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/rollouts.js"),
    },
    Asset {
        name: "cameras.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/cameras.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/chart.js"),
    },
];

/// The dashboard's routes: `/` and `/dashboard` redirect to `/dashboard/`, which serves
/// `index.html`; `/dashboard/settings.json` tells the page the site's time zone.
pub fn router<S: Clone + Send + Sync + 'static>(zone: SiteZone) -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(|| async { asset("index.html") }))
        .route("/dashboard/settings.json", get(settings))
        .route("/dashboard/{file}", get(|Path(file): Path<String>| async move { asset(&file) }))
        .with_state(zone)
}

/// What the page needs to know before any login: the site's zone.
async fn settings(State(zone): State<SiteZone>) -> Response {
    axum::Json(serde_json::json!({
        "timezone": zone.name(),
        "utc_offset_minutes": zone.utc_offset_minutes(),
    }))
    .into_response()
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => {
            ([(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, "no-cache")], a.bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
