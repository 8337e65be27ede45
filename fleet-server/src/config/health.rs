//! `[health]` (when a device counts as online) and `[alerts]` (the device list's
//! thresholds). docs/design/fleet-health.md explains the rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[health]`: online/offline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// A device whose last heartbeat is older than this is shown offline, whatever its
    /// status says. Default 3m (three missed heartbeats at the agent's default 60 s).
    #[serde(default = "defaults::offline_after", with = "humantime_serde")]
    pub offline_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { offline_after: defaults::offline_after() }
    }
}

/// `[alerts]`: when the device list flags a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Stale data: the oldest unsent reading in the agent's buffer is older than this, or
    /// no heartbeat arrived for this long. Default 15m.
    #[serde(default = "defaults::stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
    /// Growing buffer: more unacknowledged readings than this in the agent's buffer.
    /// Default 10000.
    #[serde(default = "defaults::buffer_depth_over")]
    pub buffer_depth_over: u64,
    /// Heat: SoC temperature at or above this, degrees Celsius. Default 75.0 (the Pi's
    /// firmware starts soft-throttling at 80).
    #[serde(default = "defaults::soc_temp_c_at_least")]
    pub soc_temp_c_at_least: f64,
    /// Water level: `"device/sensor" = limit`; the sensor's last `level` value in the
    /// device's latest heartbeat above the limit raises `water_level`. Default: none.
    #[serde(default)]
    pub level_thresholds: std::collections::BTreeMap<String, f64>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            stale_after: defaults::stale_after(),
            buffer_depth_over: defaults::buffer_depth_over(),
            soc_temp_c_at_least: defaults::soc_temp_c_at_least(),
            level_thresholds: Default::default(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn offline_after() -> Duration {
        Duration::from_secs(180)
    }
    pub fn stale_after() -> Duration {
        Duration::from_secs(15 * 60)
    }
    pub fn buffer_depth_over() -> u64 {
        10_000
    }
    pub fn soc_temp_c_at_least() -> f64 {
        75.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_alert_sections_parse_durations_and_refuse_unknown_keys() {
        let a: AlertsConfig = toml::from_str("stale_after = \"5m\"\nbuffer_depth_over = 5").unwrap_or_default();
        assert_eq!((a.stale_after, a.buffer_depth_over, a.soc_temp_c_at_least), (Duration::from_secs(300), 5, 75.0));
        assert!(toml::from_str::<AlertsConfig>("soc_temp = 70").is_err());
        let a: AlertsConfig = toml::from_str("level_thresholds = { \"kel-a/sungai\" = 250.0 }").unwrap_or_default();
        assert_eq!(a.level_thresholds.get("kel-a/sungai"), Some(&250.0));
        let h: HealthConfig = toml::from_str("offline_after = \"10m\"").unwrap_or_default();
        assert_eq!(h.offline_after, Duration::from_secs(600));
    }
}
