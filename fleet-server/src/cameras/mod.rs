//! The camera relay on the fleet (docs/design/cameras.md).
//!
//! - [`tunnels`]: boxes dial in on the device listener and upgrade to the camera tunnel;
//!   the fleet keeps each open tunnel by device.
//! - [`relay`]: one upstream per camera while anyone watches (plus the linger), fanned
//!   out to every viewer.
//! - [`follow`]: what one viewer is sent, from a key frame on.
//! - [`rtp`]: access units to RTP packets for RTSP viewers.
//! - [`fmp4`]: access units to fragmented MP4 boxes.
//! - [`live_mp4`]: the dashboard's live view, fMP4 over HTTP into the browser's MSE.
//! - [`rtsp`]: the RTSP server for VLC, ffplay and a VMS.
//! - [`snapshot`]: JPEG snapshots of a key frame.

pub mod config;
pub mod fmp4;
pub mod follow;
pub mod live_mp4;
pub mod relay;
pub mod rtp;
pub mod rtsp;
pub mod snapshot;
pub mod tunnels;

use std::time::Duration;

use simpul_protocol::control::CameraState;

pub use config::CamerasConfig;
pub use relay::Relays;
pub use snapshot::Snapshots;
pub use tunnels::Tunnels;

/// Why a camera could not be relayed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    #[error("device {0} has no camera tunnel open (it is offline, or has no cameras)")]
    NoTunnel(String),
    #[error("the camera tunnel: {0}")]
    Tunnel(String),
    #[error("camera {camera} is {}: {error}", state.as_str())]
    Camera { camera: String, state: CameraState, error: String },
    #[error("the camera did not start within {0:?}")]
    Timeout(Duration),
    #[error("the camera's stream ended")]
    Ended,
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl RelayError {
    /// The status a viewer gets, the same number over HTTP and RTSP: 404 when the box has
    /// no tunnel or no such camera, 504 when the camera did not start in time, 502 for
    /// anything else the camera or the tunnel did.
    pub fn status(&self) -> u16 {
        match self {
            RelayError::NoTunnel(_) => 404,
            RelayError::Camera { state: CameraState::Unknown, .. } => 404,
            RelayError::Timeout(_) => 504,
            _ => 502,
        }
    }
}
