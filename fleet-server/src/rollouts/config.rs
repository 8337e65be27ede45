//! `[rollouts]`: how often the rollout engine looks at the devices.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[rollouts]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutsConfig {
    /// How often each running rollout is stepped: devices settled from their heartbeats
    /// and events, the next wave opened. Default 5s.
    #[serde(default = "default_tick", with = "humantime_serde")]
    pub tick: Duration,
}

fn default_tick() -> Duration {
    Duration::from_secs(5)
}

impl Default for RolloutsConfig {
    fn default() -> Self {
        RolloutsConfig { tick: default_tick() }
    }
}
