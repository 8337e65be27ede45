//! `[auth]`: operators' login sessions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a login session (`POST /api/v1/login`) lasts. Default 12h.
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (browsers send it only over HTTPS): set it when a
    /// TLS proxy fronts the API. Default false.
    #[serde(default)]
    pub cookie_secure: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { session_ttl: default_session_ttl(), cookie_secure: false }
    }
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}
