//! `GET/POST /api/v1/users`, `DELETE /api/v1/users/{name}` (ops only, by the auth layer).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::auth::{self, Role, User, ops};

/// Every user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// A user to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    /// At least 10 characters; stored only as an argon2id hash.
    pub password: String,
}

impl From<ops::AuthError> for ApiError {
    fn from(e: ops::AuthError) -> Self {
        match e {
            ops::AuthError::Invalid(m) => ApiError::bad_request(m),
            e @ ops::AuthError::UserExists(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
            ops::AuthError::Store(e) => e.into(),
            e @ ops::AuthError::Hash(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// Lists users.
#[utoipa::path(get, path = "/api/v1/users", tag = "auth",
    responses((status = 200, description = "Every user, by name", body = UserList)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<UserList>, ApiError> {
    let users = auth::blocking(&state.auth.store, |s| s.users()).await?;
    Ok(Json(UserList { users }))
}

/// Adds a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = NewUser,
    responses(
        (status = 201, description = "Added", body = User),
        (status = 400, description = "A bad name or too short a password", body = super::openapi::ErrorBody),
        (status = 409, description = "The name is taken", body = super::openapi::ErrorBody),
    ))]
pub async fn add(State(state): State<ApiState>, Json(new): Json<NewUser>) -> Result<Response, ApiError> {
    let now = auth::now_ms();
    let store = std::sync::Arc::clone(&state.auth.store);
    let user =
        tokio::task::spawn_blocking(move || ops::add_user(store.as_ref(), &new.name, new.role, &new.password, now))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// Removes a user and ends their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "auth",
    params(("name" = String, Path, description = "The user's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody),
    ))]
pub async fn remove(State(state): State<ApiState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let n = name.clone();
    if auth::blocking(&state.auth.store, move |s| s.remove_user(&n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no user {name:?}")))
    }
}
