//! `[update]`: signed self-update (docs/design/updates.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[update]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The release keys this box trusts: their public halves, 64 hex digits each. A release
    /// signed by none of them is refused. Default empty: every update is refused.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Where a downloaded release waits for its trial, the kept previous binary, and the
    /// update state. Default `/var/lib/simpul/update`.
    #[serde(default = "defaults::dir")]
    pub dir: PathBuf,
    /// How long a new release has to come up healthy (uplink connected, a heartbeat sent)
    /// before the box goes back to the old one. Default 5m.
    #[serde(default = "defaults::trial_timeout", with = "humantime_serde")]
    pub trial_timeout: Duration,
    /// How many times a new release may exit during its trial before the box goes back.
    /// Default 3.
    #[serde(default = "defaults::crash_limit")]
    pub crash_limit: u32,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            keys: Vec::new(),
            dir: defaults::dir(),
            trial_timeout: defaults::trial_timeout(),
            crash_limit: defaults::crash_limit(),
        }
    }
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn dir() -> PathBuf {
        PathBuf::from("/var/lib/simpul/update")
    }
    pub fn trial_timeout() -> Duration {
        Duration::from_secs(300)
    }
    pub fn crash_limit() -> u32 {
        3
    }
}
