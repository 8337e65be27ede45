//! `[health]`: the heartbeat to the fleet and the local Prometheus `/metrics`
//! (docs/design/health.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[health]`: how often the box reports its health, where it reads it, and whether it
/// serves `/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// How often a heartbeat is published (and CPU use averaged over). Default 60s; at least 1s.
    #[serde(default = "defaults::heartbeat_interval", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// The SoC temperature in millidegrees Celsius.
    /// Default `/sys/class/thermal/thermal_zone0/temp`.
    #[serde(default = "defaults::thermal_path")]
    pub thermal_path: PathBuf,
    /// The Pi firmware's throttle word (hex or decimal text).
    /// Default `/sys/devices/platform/soc/soc:firmware/get_throttled`.
    #[serde(default = "defaults::throttled_path")]
    pub throttled_path: PathBuf,
    /// Where `stat`, `meminfo` and `loadavg` are read. Default `/proc`.
    #[serde(default = "defaults::proc_path")]
    pub proc_path: PathBuf,
    /// Serve Prometheus `GET /metrics` on this address (`"127.0.0.1:9101"`). Default unset:
    /// no metrics server.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            heartbeat_interval: defaults::heartbeat_interval(),
            thermal_path: defaults::thermal_path(),
            throttled_path: defaults::throttled_path(),
            proc_path: defaults::proc_path(),
            metrics_listen: None,
        }
    }
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn heartbeat_interval() -> Duration {
        Duration::from_secs(60)
    }
    pub fn thermal_path() -> PathBuf {
        PathBuf::from("/sys/class/thermal/thermal_zone0/temp")
    }
    pub fn throttled_path() -> PathBuf {
        PathBuf::from("/sys/devices/platform/soc/soc:firmware/get_throttled")
    }
    pub fn proc_path() -> PathBuf {
        PathBuf::from("/proc")
    }
}
