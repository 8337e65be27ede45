//! `POST /api/v1/login` and `POST /api/v1/logout`: operators' sessions. A session is a
//! token like an API token (docs/design/auth.md) that expires after `auth.session_ttl`;
//! it comes back in the JSON body and as an HttpOnly, SameSite=Strict cookie for the
//! dashboard.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::auth::{self, Principal, Role, SESSION_COOKIE, ops};

/// A user name and password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub user: String,
    pub role: Role,
    /// The session token: send it as `Authorization: Bearer <token>` (or use the cookie).
    pub token: String,
    /// When the session ends, ms since the Unix epoch.
    pub expires_ms: i64,
}

/// Logs in: a session token in the body and in the `simpul_session` cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "auth", request_body = LoginRequest, security(()),
    responses(
        (status = 200, description = "Logged in; also sets the `simpul_session` cookie", body = LoginResponse),
        (status = 401, description = "Wrong user name or password", body = super::openapi::ErrorBody),
    ))]
pub async fn login(State(state): State<ApiState>, Json(req): Json<LoginRequest>) -> Result<Response, ApiError> {
    let ttl = state.auth.session_ttl;
    let now = auth::now_ms();
    let store = std::sync::Arc::clone(&state.auth.store);
    let outcome =
        tokio::task::spawn_blocking(move || ops::login(store.as_ref(), &req.username, &req.password, ttl, now))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let Some((user, issued)) = outcome else {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "wrong user name or password".to_owned()));
    };
    let mut cookie =
        format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", issued.token, ttl.as_secs());
    if state.auth.cookie_secure {
        cookie.push_str("; Secure");
    }
    let body = LoginResponse {
        user: user.name,
        role: user.role,
        token: issued.token,
        expires_ms: issued.expires_ms.unwrap_or(i64::MAX),
    };
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Ends the session presented (an API token is not revoked here: `DELETE /api/v1/tokens/{id}`)
/// and clears the cookie.
#[utoipa::path(post, path = "/api/v1/logout", tag = "auth",
    responses((status = 204, description = "Logged out; the cookie is cleared")))]
pub async fn logout(State(state): State<ApiState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    if who.user.is_some() {
        let id = who.token_id.clone();
        auth::blocking(&state.auth.store, move |s| s.remove_token(&id)).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}
