//! `GET/POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}` (ops only, by the auth layer).
//! API tokens for programs (the central platform, a dashboard); a new token's text is in
//! the response once and never again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::auth::{self, Issued, Role, TokenInfo, ops};

/// Every API token (login sessions are not listed).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// A token to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// What it is for (`platform`).
    pub name: String,
    pub role: Role,
}

/// Lists API tokens (ids and names, never secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth",
    responses((status = 200, description = "Every API token, oldest first", body = TokenList)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<TokenList>, ApiError> {
    let tokens = auth::blocking(&state.auth.store, |s| s.tokens()).await?;
    Ok(Json(TokenList { tokens }))
}

/// Issues an API token; the response holds its text, shown only this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", request_body = NewToken,
    responses(
        (status = 201, description = "Issued", body = Issued),
        (status = 400, description = "A bad name", body = super::openapi::ErrorBody),
    ))]
pub async fn create(State(state): State<ApiState>, Json(new): Json<NewToken>) -> Result<Response, ApiError> {
    let now = auth::now_ms();
    let store = std::sync::Arc::clone(&state.auth.store);
    let issued = tokio::task::spawn_blocking(move || ops::create_token(store.as_ref(), &new.name, new.role, now))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Revokes a token (or ends a session) by its id: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "The token's id (after `spl_`, before the secret)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = super::openapi::ErrorBody),
    ))]
pub async fn revoke(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let i = id.clone();
    if auth::blocking(&state.auth.store, move |s| s.remove_token(&i)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no token {id:?}")))
    }
}
