//! Making enrolment tokens (docs/design/trust.md, "Enrolment tokens"): shared by the API
//! (`POST /api/v1/enrolment-tokens`) and `simpul-fleet tokens create --group G --offline`.

use std::time::Duration;

use super::store::{NewEnrolmentToken, TrustStore};
use crate::auth::password::hash_secret;
use crate::auth::token;
use crate::store::StoreError;

/// The longest a token may be valid.
pub const MAX_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// An enrolment token, made: the text is shown once.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedEnrolment {
    pub id: String,
    /// The token (`sple_...`): put it in the box's bootstrap bundle.
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub expires_ms: i64,
}

/// Why a token was not made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("hashing the token: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the new token is for.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub group: Option<String>,
    pub site: Option<String>,
    pub expires: Duration,
    pub created_by: String,
}

/// Makes and stores a one-time enrolment token of fleet `fleet_id`.
pub fn create(
    store: &dyn TrustStore,
    fleet_id: &str,
    req: &TokenRequest,
    now_ms: i64,
) -> Result<IssuedEnrolment, TokenError> {
    if req.expires.is_zero() || req.expires > MAX_EXPIRY {
        return Err(TokenError::Invalid(format!(
            "--expires must be more than 0s and at most {}",
            humantime::format_duration(MAX_EXPIRY)
        )));
    }
    if req.group.as_deref().is_some_and(str::is_empty) {
        return Err(TokenError::Invalid("--group must not be empty".to_owned()));
    }
    let generated = token::generate_enrolment(fleet_id);
    let hash = hash_secret(&generated.secret).map_err(|e| TokenError::Hash(e.to_string()))?;
    let expires_ms = now_ms.saturating_add(i64::try_from(req.expires.as_millis()).unwrap_or(i64::MAX));
    let row = NewEnrolmentToken {
        id: generated.id.clone(),
        group: req.group.clone(),
        site: req.site.clone(),
        created_ms: now_ms,
        expires_ms,
        created_by: req.created_by.clone(),
    };
    store.add_enrolment_token(&row, &hash)?;
    Ok(IssuedEnrolment { id: generated.id, token: generated.text, group: row.group, site: row.site, expires_ms })
}
