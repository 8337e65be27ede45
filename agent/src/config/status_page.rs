//! `[status_page]`: the local page for the kelurahan staff (docs/design/status-page.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::status_page::Zone;

/// `[status_page]`: where the staff's page listens, the site's time zone, and where
/// newly plugged serial ports are looked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    /// Serve the page on this address (`"0.0.0.0:8080"` on the office LAN). Default unset:
    /// no page (the packaged agent.toml sets it).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The site's time zone: `"WIB"` (UTC+7), `"WITA"` (UTC+8) or `"WIT"` (UTC+9).
    /// Default `"WIB"`.
    #[serde(default)]
    pub timezone: Zone,
    /// A sensor with no reading for this long is shown as failing. Default 2m.
    #[serde(default = "defaults::stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
    /// Where serial ports appear when plugged in. Default `/dev`.
    #[serde(default = "defaults::ports_dir")]
    pub ports_dir: PathBuf,
    /// Which names there are serial ports. Default `["ttyUSB", "ttyACM"]`.
    #[serde(default = "defaults::port_prefixes")]
    pub port_prefixes: Vec<String>,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig {
            listen: None,
            timezone: Zone::default(),
            stale_after: defaults::stale_after(),
            ports_dir: defaults::ports_dir(),
            port_prefixes: defaults::port_prefixes(),
        }
    }
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn stale_after() -> Duration {
        Duration::from_secs(120)
    }
    pub fn ports_dir() -> PathBuf {
        PathBuf::from("/dev")
    }
    pub fn port_prefixes() -> Vec<String> {
        vec!["ttyUSB".to_owned(), "ttyACM".to_owned()]
    }
}
