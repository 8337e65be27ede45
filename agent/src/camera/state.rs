//! What the agent knows of each camera, for the heartbeat and the status page.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use simpul_protocol::control::{CameraHealth, CameraState};

/// Each camera's health, shared by the probe, the relay and the heartbeat.
#[derive(Clone, Debug, Default)]
pub struct CameraStates(Arc<Mutex<BTreeMap<String, CameraHealth>>>);

impl CameraStates {
    /// Every configured camera, not looked at yet.
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a String>) -> CameraStates {
        let map = ids.into_iter().map(|id| (id.clone(), CameraHealth::default())).collect();
        CameraStates(Arc::new(Mutex::new(map)))
    }

    /// A copy of every camera's health.
    pub fn snapshot(&self) -> BTreeMap<String, CameraHealth> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut CameraHealth)) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = map.get_mut(id) {
            f(h);
        }
    }

    /// The camera answered with a stream the relay can pass on.
    pub fn answered(&self, id: &str, video: String) {
        self.update(id, |h| {
            if h.state != CameraState::Ok {
                tracing::info!(camera = id, %video, "camera answers");
            }
            h.state = CameraState::Ok;
            h.reachable = true;
            h.video = Some(video);
            h.error = None;
        });
    }

    /// The camera could not be used.
    pub fn failed(&self, id: &str, state: CameraState, error: String) {
        self.update(id, |h| {
            if h.state != state || h.error.as_deref() != Some(error.as_str()) {
                tracing::warn!(camera = id, state = state.as_str(), %error, "camera");
            }
            h.reachable = !matches!(state, CameraState::Unreachable);
            h.state = state;
            h.error = Some(error);
        });
    }

    /// A relay stream started (`+1`) or ended (`-1`).
    pub fn streaming(&self, id: &str, delta: i32) {
        self.update(id, |h| h.viewers = h.viewers.saturating_add_signed(delta));
    }

    /// Whether the camera is being pulled now (the probe leaves it alone then).
    pub fn is_streaming(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(id).is_some_and(|h| h.viewers > 0)
    }
}
