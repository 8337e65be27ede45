//! Operators' authentication and roles (docs/design/auth.md).
//!
//! - [`role`]: `ops` may change things, `viewer` may only read; the rule by HTTP method.
//! - [`token`]: the token format `spl_{id}_{secret}` and how secrets are hashed.
//! - [`password`]: argon2id password hashes (PHC strings).
//! - [`store`]: the blocking [`AuthStore`] trait (SQLite: `store::sqlite::SqliteAuthStore`,
//!   opened by `store::open_stores`).
//! - [`ops`]: what the API and the offline CLI do with them: add users, issue tokens, log in,
//!   authenticate a presented token.
//! - [`layer`]: the axum middleware in front of every `/api/v1` route.

pub mod config;
pub mod layer;
pub mod ops;
pub mod password;
pub mod role;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

pub use config::AuthConfig;
pub use ops::{Issued, Principal};
pub use role::Role;
pub use store::{AuthStore, TokenInfo, TokenRow, User};

/// The name of the session cookie the dashboard uses.
pub const SESSION_COOKIE: &str = "simpul_session";

/// What the API's auth layer and handlers share.
#[derive(Clone, Debug)]
pub struct AuthState {
    pub store: Arc<dyn AuthStore>,
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure`.
    pub cookie_secure: bool,
}

impl AuthState {
    /// The auth state over `store` (from [`crate::store::open_stores`]).
    pub fn new(store: Arc<dyn AuthStore>, config: &AuthConfig) -> AuthState {
        AuthState { store, session_ttl: config.session_ttl, cookie_secure: config.cookie_secure }
    }
}

pub use crate::store::blocking;

/// The wall clock in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    crate::ingest::now_ms()
}
