//! What the API and the offline CLI do with users and tokens. Blocking (argon2 and the
//! database): call from `spawn_blocking` or a command-line tool.

use std::time::Duration;

use serde::Serialize;

use super::password::{self, hash_password, hash_secret};
use super::{AuthStore, Role, TokenInfo, TokenRow, User, token};
use crate::store::StoreError;

/// Who a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The id of the token or session presented.
    pub token_id: String,
    pub role: Role,
    /// The user, for a login session.
    pub user: Option<String>,
}

/// A token just issued: its text is shown once and never again.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Issued {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The whole token: `spl_{id}_{secret}`. Shown only now.
    pub token: String,
    /// When it stops working (sessions), ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

/// Why adding a user or a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user named {0:?} exists already")]
    UserExists(String),
    #[error("cannot hash: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds a user with a new password (hashed here; the clear text is not kept).
pub fn add_user(store: &dyn AuthStore, name: &str, role: Role, pwd: &str, now_ms: i64) -> Result<User, AuthError> {
    check_name(name)?;
    password::check_new_password(pwd).map_err(AuthError::Invalid)?;
    let hash = hash_password(pwd).map_err(|e| AuthError::Hash(e.to_string()))?;
    let user = User { name: name.to_owned(), role, created_ms: now_ms };
    if store.add_user(&user, &hash)? { Ok(user) } else { Err(AuthError::UserExists(name.to_owned())) }
}

/// Issues an API token (no expiry).
pub fn create_token(store: &dyn AuthStore, name: &str, role: Role, now_ms: i64) -> Result<Issued, AuthError> {
    check_name(name)?;
    issue(store, name, role, None, None, now_ms)
}

/// Issues a token or session: `user` and `expires_ms` set for a session.
pub fn issue(
    store: &dyn AuthStore,
    name: &str,
    role: Role,
    user: Option<&str>,
    expires_ms: Option<i64>,
    now_ms: i64,
) -> Result<Issued, AuthError> {
    let generated = token::generate();
    let secret_hash = hash_secret(&generated.secret).map_err(|e| AuthError::Hash(e.to_string()))?;
    let row = TokenRow {
        id: generated.id.clone(),
        name: name.to_owned(),
        role,
        secret_hash,
        user: user.map(str::to_owned),
        created_ms: now_ms,
        expires_ms,
    };
    store.add_token(&row)?;
    let info = TokenInfo { id: row.id, name: row.name, role, created_ms: now_ms };
    Ok(Issued { info, token: generated.text, expires_ms })
}

/// Checks a user name and password; a session for `ttl` if they match, `None` if not.
pub fn login(
    store: &dyn AuthStore,
    name: &str,
    pwd: &str,
    ttl: Duration,
    now_ms: i64,
) -> Result<Option<(User, Issued)>, AuthError> {
    let Some(user) = check_password(store, name, pwd)? else { return Ok(None) };
    store.remove_expired(now_ms)?;
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires = now_ms.saturating_add(ttl_ms);
    let issued = issue(store, "session", user.role, Some(&user.name), Some(expires), now_ms)?;
    Ok(Some((user, issued)))
}

/// The user `name` if `pwd` is theirs (as long to answer whether or not the user exists).
pub fn check_password(store: &dyn AuthStore, name: &str, pwd: &str) -> Result<Option<User>, StoreError> {
    let Some((user, hash)) = store.user(name)? else {
        password::verify_nobody(pwd);
        return Ok(None);
    };
    Ok(password::verify(pwd.as_bytes(), &hash).then_some(user))
}

/// Who presents `text` at `now_ms`; `None` for anything that is not a live token.
pub fn authenticate(store: &dyn AuthStore, text: &str, now_ms: i64) -> Result<Option<Principal>, StoreError> {
    let Some((id, secret)) = token::parse(text) else { return Ok(None) };
    let Some(row) = store.token(id)? else { return Ok(None) };
    if row.expires_ms.is_some_and(|e| e <= now_ms) || !password::verify(&secret, &row.secret_hash) {
        return Ok(None);
    }
    Ok(Some(Principal { token_id: row.id, role: row.role, user: row.user }))
}

/// User and token names: 1-64 letters, digits, `-`, `_`, `.`, `@`.
fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok { Ok(()) } else { Err(AuthError::Invalid(format!("{name:?}: use 1-64 letters, digits, -, _, ., @"))) }
}
