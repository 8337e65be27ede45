//! `[camera_relay]` and `[cameras.<id>]`: the office's IP cameras and the tunnel that
//! carries them to the fleet (docs/design/cameras.md). Camera passwords are read here and
//! used only towards the camera: they are never logged, printed or sent to the fleet.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

/// `[camera_relay]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraRelayConfig {
    /// How often each camera is checked (an RTSP DESCRIBE, no video) while nobody watches,
    /// so its state in the heartbeat is current. Default 5m.
    #[serde(default = "defaults::probe_interval", with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long a camera may take to answer before it counts as unreachable. Default 10s.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The first wait before dialling the fleet again after the tunnel dropped. Default 1s.
    #[serde(default = "defaults::reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// The longest wait between tunnel attempts. Default 60s.
    #[serde(default = "defaults::reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

impl Default for CameraRelayConfig {
    fn default() -> Self {
        CameraRelayConfig {
            probe_interval: defaults::probe_interval(),
            connect_timeout: defaults::connect_timeout(),
            reconnect_min: defaults::reconnect_min(),
            reconnect_max: defaults::reconnect_max(),
        }
    }
}

/// `[cameras.<id>]`: one camera on the office LAN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's RTSP address, without credentials
    /// (`rtsp://192.168.1.64:554/Streaming/Channels/101`).
    pub url: String,
    /// The user name the camera asks for (Basic or Digest). Default unset: no credentials.
    #[serde(default)]
    pub username: Option<String>,
    /// The camera's password. It stays on the box: printed as `(hidden)`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A name for people (`"Gerbang depan"`). Default unset: the id.
    #[serde(default)]
    pub name: Option<String>,
}

/// A string that is never printed: `Debug` and `Serialize` show `(hidden)`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const HIDDEN: &str = "(hidden)";

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(HIDDEN)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(HIDDEN)
    }
}

mod defaults {
    use std::time::Duration;

    pub fn probe_interval() -> Duration {
        Duration::from_secs(300)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn reconnect_min() -> Duration {
        Duration::from_secs(1)
    }
    pub fn reconnect_max() -> Duration {
        Duration::from_secs(60)
    }
}
