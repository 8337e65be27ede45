//! The update state on disk (`[update] dir`/state.json): where an update is, so a restart
//! at any point knows what happened (docs/design/updates.md, the power-cut table).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::UpdateError;

/// The state file's name.
pub const STATE: &str = "state.json";

/// Where an update is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum State {
    /// Nothing under way.
    Idle,
    /// `agent.new` holds a checked release, not yet tried.
    Fetched { version: String, from: String },
    /// The old binary runs the new one on trial.
    Trial { version: String, from: String },
    /// The new binary replaced the old at its path; the next start reports it.
    Committed { version: String, from: String, reported: bool },
    /// The trial failed; the old binary runs again. The same release is not tried again.
    RolledBack { version: String, reason: String, reported: bool },
    /// The release was refused before any trial. The same release is not fetched again.
    Refused { version: String, reason: String, reported: bool },
}

impl State {
    /// The state in `dir`: `Idle` when there is none or it does not parse (logged).
    pub fn load(dir: &Path) -> State {
        let path = dir.join(STATE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "update state unreadable; starting idle");
                State::Idle
            }),
            Err(_) => State::Idle,
        }
    }

    /// Writes it to `dir` (made if missing), whole or not at all.
    pub fn save(&self, dir: &Path) -> Result<(), UpdateError> {
        std::fs::create_dir_all(dir).map_err(|e| UpdateError::io(dir, e))?;
        let path: PathBuf = dir.join(STATE);
        let text = serde_json::to_vec_pretty(self).map_err(|e| UpdateError::io(&path, std::io::Error::other(e)))?;
        simpul_base::fs::write_atomic(&path, &text, 0o644).map_err(|e| UpdateError::io(&path, e))
    }

    /// Whether an order for `version` should be left alone: tried and rolled back, or
    /// refused, already.
    pub fn settled_against(&self, version: &str) -> bool {
        match self {
            State::RolledBack { version: v, .. } | State::Refused { version: v, .. } => v == version,
            _ => false,
        }
    }
}
