//! The axum middleware in front of the whole API router: every path under `/api/v1/`
//! needs a live token (`Authorization: Bearer spl_...` or the session cookie), except
//! [`PUBLIC`]; GET and HEAD need `viewer` or `ops`, any other method `ops` (logout: any
//! role); anything under [`OPS_ONLY`] needs `ops` whatever the method (who may log in is
//! not a viewer's business). No or a dead token: 401; too small a role: 403. The [`Principal`] goes into the
//! request's extensions for the handlers.
//!
//! It sits on the router as a whole (not per route) and checks the path itself, so a route
//! added later under `/api/v1` is covered without anyone doing anything.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Principal, Role, SESSION_COOKIE, ops};
use crate::api::ApiState;

/// Paths under `/api/v1` anyone may call.
pub const PUBLIC: &[&str] = &["/api/v1/login", "/api/v1/openapi.json"];

/// Path prefixes only `ops` may call, reads included: users and tokens.
pub const OPS_ONLY: &[&str] = &["/api/v1/users", "/api/v1/tokens"];

/// The path any authenticated role may POST to.
pub const LOGOUT: &str = "/api/v1/logout";

/// The middleware (see the module docs).
pub async fn require(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/api/v1" || path.starts_with("/api/v1/")) || PUBLIC.contains(&path) {
        return next.run(req).await;
    }
    let needed = if path == LOGOUT {
        Role::Viewer
    } else if OPS_ONLY.iter().any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))) {
        Role::Ops
    } else {
        Role::needed_for(req.method())
    };
    let Some(text) = presented(req.headers()) else {
        return unauthorized("no credentials: send `Authorization: Bearer <token>` or log in");
    };
    let now = super::now_ms();
    let principal = match super::blocking(&state.auth.store, move |s| ops::authenticate(s, &text, now)).await {
        Ok(Some(p)) => p,
        Ok(None) => return unauthorized("the token is unknown, revoked or expired"),
        Err(e) => {
            tracing::error!(error = %e, "auth: store failed");
            let status =
                if e.is_retryable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
            return error(status, &e.to_string());
        }
    };
    if !principal.role.allows(needed) {
        let msg =
            format!("{} {} needs the {needed} role; these credentials have {}", req.method(), path, principal.role);
        return error(StatusCode::FORBIDDEN, &msg);
    }
    req.extensions_mut().insert::<Principal>(principal);
    next.run(req).await
}

/// The token a request presents: the bearer token first, else the session cookie.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned());
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value.to_owned())
    })
}

fn unauthorized(msg: &str) -> Response {
    let mut resp = error(StatusCode::UNAUTHORIZED, msg);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    resp
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_wins_over_the_cookie_and_the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "theme=dark; simpul_session=spl_c; x=y".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("spl_c"));
        h.insert(header::AUTHORIZATION, "Bearer spl_b".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("spl_b"));
        assert_eq!(presented(&HeaderMap::new()), None);
    }
}
