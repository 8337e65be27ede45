//! Where users, API tokens and sessions live. Blocking, like [`crate::store::Store`]:
//! call it through [`super::blocking`]. It stores only hashes; hashing and checking are
//! in [`super::ops`].

use serde::Serialize;

use super::Role;
use crate::store::StoreError;

/// An operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// When the user was added, ms since the Unix epoch.
    pub created_ms: i64,
}

/// An API token as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The public id: the part after `spl_` and before the secret.
    pub id: String,
    /// What the token is for (`platform`, `grafana`).
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
}

/// A token or session row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// argon2id PHC string of the secret.
    pub secret_hash: String,
    /// The user a login session belongs to; `None` for an API token.
    pub user: Option<String>,
    pub created_ms: i64,
    /// After this (ms since the Unix epoch) the token no longer works; `None`: never.
    pub expires_ms: Option<i64>,
}

/// The operators' tables. Deleting a user deletes their sessions.
pub trait AuthStore: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a user; `false` if the name is taken.
    fn add_user(&self, user: &User, password_hash: &str) -> Result<bool, StoreError>;

    /// A user and their password hash.
    fn user(&self, name: &str) -> Result<Option<(User, String)>, StoreError>;

    /// Every user, by name.
    fn users(&self) -> Result<Vec<User>, StoreError>;

    /// Removes a user and their sessions; `false` if there was none.
    fn remove_user(&self, name: &str) -> Result<bool, StoreError>;

    /// Stores a token or session. A session's user must exist.
    fn add_token(&self, token: &TokenRow) -> Result<(), StoreError>;

    /// The token or session with this id.
    fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError>;

    /// Every API token (not sessions), oldest first.
    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Removes a token or session; `false` if there was none.
    fn remove_token(&self, id: &str) -> Result<bool, StoreError>;

    /// Removes tokens and sessions that expired before `now_ms`; how many.
    fn remove_expired(&self, now_ms: i64) -> Result<u64, StoreError>;
}
