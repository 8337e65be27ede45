//! `[trust]`: where the box's identity lives and where its bootstrap bundle is read
//! (docs/design/trust.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[trust]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The box's identity: `device.key` (0600, made here and never sent), `device.pem` and
    /// the fleet CA `ca.pem`. Default `/var/lib/simpul/trust`.
    #[serde(default = "defaults::dir")]
    pub dir: PathBuf,
    /// The bootstrap bundle `simpul-provision` wrote on the SD card's boot partition. While
    /// it holds a token and the box has no identity, the box enrols with it. Default
    /// `/boot/firmware/simpul/bundle.toml`.
    #[serde(default = "defaults::bundle")]
    pub bundle: PathBuf,
    /// The fleet's device listener (`https://host:port`), where the box renews its
    /// certificate. Enrolment writes it (from the bundle); unset: no renewal. Default unset.
    #[serde(default)]
    pub fleet: Option<String>,
    /// Renew the certificate when it has less than this left. Default 30d (of 90).
    #[serde(default = "defaults::renew_before", with = "humantime_serde")]
    pub renew_before: Duration,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            dir: defaults::dir(),
            bundle: defaults::bundle(),
            fleet: None,
            renew_before: defaults::renew_before(),
        }
    }
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn dir() -> PathBuf {
        PathBuf::from("/var/lib/simpul/trust")
    }
    pub fn bundle() -> PathBuf {
        PathBuf::from("/boot/firmware/simpul/bundle.toml")
    }
    pub fn renew_before() -> Duration {
        Duration::from_secs(30 * 24 * 3600)
    }
}
