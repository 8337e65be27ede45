//! `[cameras]`: the camera relay's viewer side (docs/design/cameras.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[cameras]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CamerasConfig {
    /// Where viewers (VLC, ffplay, a VMS) connect over RTSP:
    /// `rtsp://HOST:PORT/cameras/{device}/{camera}` (`"0.0.0.0:8554"` for the command
    /// centre's LAN). Default unset: no RTSP.
    #[serde(default)]
    pub rtsp_listen: Option<SocketAddr>,
    /// How long a camera keeps streaming through the tunnel after its last viewer left, so
    /// a viewer that comes straight back starts at once. Default 30s.
    #[serde(default = "defaults::linger", with = "humantime_serde")]
    pub linger: Duration,
    /// How long a viewer waits for a camera to start. Default 20s.
    #[serde(default = "defaults::open_timeout", with = "humantime_serde")]
    pub open_timeout: Duration,
    /// The ffmpeg that turns a key frame into a JPEG snapshot. Default `ffmpeg` (on PATH).
    #[serde(default = "defaults::ffmpeg")]
    pub ffmpeg: PathBuf,
    /// A snapshot younger than this is served again rather than fetched through the
    /// tunnel, so a grid of snapshots on several screens costs one key frame each.
    /// Default 10s.
    #[serde(default = "defaults::snapshot_max_age", with = "humantime_serde")]
    pub snapshot_max_age: Duration,
}

impl Default for CamerasConfig {
    fn default() -> Self {
        CamerasConfig {
            rtsp_listen: None,
            linger: defaults::linger(),
            open_timeout: defaults::open_timeout(),
            ffmpeg: defaults::ffmpeg(),
            snapshot_max_age: defaults::snapshot_max_age(),
        }
    }
}

mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn linger() -> Duration {
        Duration::from_secs(30)
    }
    pub fn open_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub fn ffmpeg() -> PathBuf {
        PathBuf::from("ffmpeg")
    }
    pub fn snapshot_max_age() -> Duration {
        Duration::from_secs(10)
    }
}
