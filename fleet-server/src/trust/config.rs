//! `[trust]`: the fleet CA and the device listener (docs/design/trust.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[trust]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Where the CA (`ca.pem`, `ca.key`) lives; made there on first use. Default
    /// `/var/lib/simpul-fleet/trust`.
    #[serde(default = "defaults::dir")]
    pub dir: PathBuf,
    /// The device listener (HTTPS: enrolment). Unset: off. Default unset.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The names boxes reach the fleet by (DNS names or IP addresses), put in the server
    /// certificate. Default `["localhost", "127.0.0.1"]`.
    #[serde(default = "defaults::server_names")]
    pub server_names: Vec<String>,
    /// How long a device certificate is valid. Default 90d.
    #[serde(default = "defaults::device_cert_validity", with = "humantime_serde")]
    pub device_cert_validity: Duration,
    /// How long an enrolment token is valid when `--expires` is not given. Default 24h.
    #[serde(default = "defaults::token_expiry", with = "humantime_serde")]
    pub token_expiry: Duration,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            dir: defaults::dir(),
            listen: None,
            server_names: defaults::server_names(),
            device_cert_validity: defaults::device_cert_validity(),
            token_expiry: defaults::token_expiry(),
        }
    }
}

impl TrustConfig {
    /// What is wrong with it, by key.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.server_names.is_empty() || self.server_names.iter().any(String::is_empty) {
            out.push(("trust.server_names", "needs at least one name, none empty".to_owned()));
        }
        if self.device_cert_validity < Duration::from_secs(3600) {
            out.push(("trust.device_cert_validity", "must be at least 1h".to_owned()));
        }
        if self.token_expiry.is_zero() {
            out.push(("trust.token_expiry", "must be longer than 0s".to_owned()));
        }
        out
    }
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn dir() -> PathBuf {
        PathBuf::from("/var/lib/simpul-fleet/trust")
    }
    pub fn server_names() -> Vec<String> {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    }
    pub fn device_cert_validity() -> Duration {
        Duration::from_secs(90 * 24 * 3600)
    }
    pub fn token_expiry() -> Duration {
        Duration::from_secs(24 * 3600)
    }
}
