//! Signed self-update (docs/design/updates.md). The fleet's retained `update` order names a
//! release; [`task`] checks it against the pinned keys, downloads it over mutual TLS,
//! checks the bytes and stages them as `agent.new`, then stops the agent with a
//! [`Staged`] release. The command line then runs the trial ([`trial::supervise`]): the old
//! binary runs the new one as a child until it is healthy (commit: replace and exec) or
//! fails (roll back: exec the old one again). [`startup`] reports what the last run did.

pub mod fetch;
pub mod state;
pub mod task;
pub mod trial;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use simpul_protocol::control::Event;
use simpul_protocol::release::ReleaseError;

pub use state::State;

/// The staged binary's name in `[update] dir`.
pub const NEW: &str = "agent.new";
/// The kept previous binary's name.
pub const PREV: &str = "agent.prev";
/// The file a trial child writes once healthy (its version).
pub const HEALTHY: &str = "healthy";
/// Set in a trial child's environment: the path of the file to write once healthy.
pub const TRIAL_ENV: &str = "SIMPUL_UPDATE_TRIAL";

/// What went wrong with an update.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Refused(#[from] ReleaseError),
    #[error("this box pins no release keys ([update] keys): it takes no update")]
    NoKeys,
    #[error("this box has no fleet address ([trust] fleet) to download from")]
    NoFleet,
    #[error("download: {0}")]
    Download(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl UpdateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> UpdateError {
        UpdateError::Io { path: path.display().to_string(), source }
    }

    /// Whether trying again later may help (the fleet out of reach), rather than the
    /// release being wrong for this box.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UpdateError::Download(_) | UpdateError::Io { .. } | UpdateError::NoFleet)
    }
}

/// A release downloaded and checked, waiting for its trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub version: String,
    pub from: String,
    pub binary: PathBuf,
}

/// Where the update task leaves a staged release for the command line.
pub type StagedSlot = Arc<Mutex<Option<Staged>>>;

/// At start: settles a state a restart interrupted and returns the event to report, if
/// any (the update, the rollback or the refusal the last run left).
pub fn startup(dir: &Path, running: &str) -> Option<Event> {
    let state = State::load(dir);
    let (next, event) = match state {
        State::Idle => return None,
        // A staged release that was never tried: drop it; the order is still retained.
        State::Fetched { .. } => {
            let _ = std::fs::remove_file(dir.join(NEW));
            (State::Idle, None)
        }
        // The power went during a trial. The path changes only after the trial passed, so
        // a binary of the trial's version means it passed; any other, that it did not end.
        State::Trial { version, from } if version == running => {
            let event = Event::UpdateApplied { from: from.clone(), to: version.clone() };
            (State::Committed { version, from, reported: true }, Some(event))
        }
        State::Trial { version, .. } => {
            let _ = std::fs::remove_file(dir.join(NEW));
            let reason = "the box restarted during the trial".to_owned();
            let event = Event::UpdateRolledBack { version: version.clone(), reason: reason.clone() };
            (State::RolledBack { version, reason, reported: true }, Some(event))
        }
        State::Committed { version, from, reported: false } => {
            let event = Event::UpdateApplied { from: from.clone(), to: version.clone() };
            (State::Committed { version, from, reported: true }, Some(event))
        }
        State::RolledBack { version, reason, reported: false } => {
            let event = Event::UpdateRolledBack { version: version.clone(), reason: reason.clone() };
            (State::RolledBack { version, reason, reported: true }, Some(event))
        }
        State::Refused { version, reason, reported: false } => {
            let event = Event::UpdateRefused { version: version.clone(), reason: reason.clone() };
            (State::Refused { version, reason, reported: true }, Some(event))
        }
        State::Committed { .. } | State::RolledBack { .. } | State::Refused { .. } => return None,
    };
    if let Err(e) = next.save(dir) {
        tracing::error!(error = %e, "cannot write the update state");
    }
    event
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn after(state: State, running: &str) -> (Option<Event>, State) {
        let dir = tempfile::tempdir().unwrap();
        state.save(dir.path()).unwrap();
        let event = startup(dir.path(), running);
        (event, State::load(dir.path()))
    }

    #[test]
    fn a_restart_mid_trial_counts_as_passed_only_when_the_path_holds_the_new_version() {
        let trial = State::Trial { version: "2.0.0".into(), from: "1.0.0".into() };
        let (event, state) = after(trial.clone(), "2.0.0");
        assert_eq!(event, Some(Event::UpdateApplied { from: "1.0.0".into(), to: "2.0.0".into() }));
        assert!(matches!(state, State::Committed { reported: true, .. }));
        let (event, state) = after(trial, "1.0.0");
        assert!(matches!(event, Some(Event::UpdateRolledBack { .. })), "{event:?}");
        assert!(state.settled_against("2.0.0"), "not tried again");
    }

    #[test]
    fn each_outcome_is_reported_once() {
        let rolled = State::RolledBack { version: "2.0.0".into(), reason: "crashed".into(), reported: false };
        let (event, state) = after(rolled, "1.0.0");
        assert!(matches!(event, Some(Event::UpdateRolledBack { .. })));
        assert_eq!(after(state, "1.0.0").0, None);
        assert_eq!(after(State::Idle, "1.0.0").0, None);
        let (event, state) = after(State::Fetched { version: "2.0.0".into(), from: "1.0.0".into() }, "1.0.0");
        assert_eq!((event, state), (None, State::Idle), "an untried download is dropped");
    }
}
