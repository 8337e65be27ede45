//! `[remote_config]`: desired config from the fleet (docs/design/remote-config.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[remote_config]`: whether the agent takes its config from the fleet, and how long a
/// new one may leave it without a broker before it goes back to the previous one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfigConfig {
    /// Apply the fleet's desired config (`agent.d/90-fleet.toml`). Default true; it also
    /// needs `[uplink] enabled` and a config file (the binary always has one).
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// After applying a desired config, the agent must have a broker connection (CONNACK)
    /// within this time, or it restores the previous fleet drop-in. Default 2m; at least 1s.
    #[serde(default = "defaults::rollback_after", with = "humantime_serde")]
    pub rollback_after: Duration,
}

impl Default for RemoteConfigConfig {
    fn default() -> Self {
        RemoteConfigConfig { enabled: defaults::enabled(), rollback_after: defaults::rollback_after() }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn enabled() -> bool {
        true
    }
    pub fn rollback_after() -> Duration {
        Duration::from_secs(120)
    }
}
