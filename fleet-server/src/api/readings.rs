//! `GET /api/v1/readings?after=CURSOR&limit=N[&format=ndjson]`: deliverable readings in
//! cursor order. The same `after` always gives the same readings (new ones only ever get
//! higher cursors); the reader stores `next` and passes it back.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::json::ReadingJson;
use super::{ApiError, ApiState};
use crate::store;

/// The NDJSON media type.
pub const NDJSON: &str = "application/x-ndjson";

/// The response header that carries the next cursor (both formats).
pub const NEXT_CURSOR_HEADER: &str = "simpul-next-cursor";

/// The default page size.
const DEFAULT_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct Params {
    /// The cursor to read after; absent: from the start.
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// `json` (default) or `ndjson`.
    #[serde(default)]
    format: Option<String>,
}

/// Deliverable readings in cursor order (docs/ref/platform-api.md).
#[utoipa::path(get, path = "/api/v1/readings", tag = "readings",
    params(
        ("after" = Option<String>, Query, description = "A cursor from an earlier response: readings after it"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 1000, capped at `api.max_limit`)"),
        ("format" = Option<String>, Query, description = "`json` (default) or `ndjson`"),
    ),
    responses(
        (status = 200, description = "A page; NDJSON: one reading a line, then `{\"next\": CURSOR}`",
            body = super::openapi::ReadingsPage, headers(("simpul-next-cursor" = String, description = "The next cursor"))),
        (status = 400, description = "A bad cursor or format", body = super::openapi::ErrorBody),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let after = match p.after.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<u64>().map_err(|_| ApiError::bad_request(format!("`after` {c:?} is not a cursor")))?,
    };
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, state.max_limit);
    let ndjson = match p.format.as_deref() {
        Some("ndjson") => true,
        Some("json") => false,
        Some(other) => return Err(ApiError::bad_request(format!("`format` {other:?}: use json or ndjson"))),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with(NDJSON))),
    };
    let readings = store::blocking(&state.store, move |s| s.readings_after(after, limit)).await?;
    let next = readings.last().map_or(after, |r| r.cursor).to_string();
    let items: Vec<ReadingJson<'_>> = readings.iter().map(ReadingJson::from).collect();
    let (content_type, body) = if ndjson {
        let mut body = Vec::new();
        for r in &items {
            serde_json::to_writer(&mut body, r).map_err(encode_error)?;
            body.push(b'\n');
        }
        serde_json::to_writer(&mut body, &serde_json::json!({ "next": next })).map_err(encode_error)?;
        body.push(b'\n');
        (NDJSON, body)
    } else {
        let body = serde_json::to_vec(&serde_json::json!({ "readings": items, "next": next })).map_err(encode_error)?;
        ("application/json", body)
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&next) {
        resp.headers_mut().insert(NEXT_CURSOR_HEADER, v);
    }
    Ok(resp)
}

fn encode_error(e: serde_json::Error) -> ApiError {
    ApiError(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode: {e}"))
}
