//! Where rollouts are kept: the `rollouts` and `rollout_devices` tables, next to the
//! releases and each device's desired release they drive.

use std::time::Duration;

use simpul_protocol::DeviceId;

use super::{Rollout, RolloutDevice, RolloutSpec, RolloutState, WaveProgress};
use crate::store::StoreError;

/// Why a rollout was not started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartRefused {
    #[error("no release {0} is published")]
    NoRelease(String),
    #[error("no group {0:?}")]
    NoGroup(String),
    #[error("no devices to roll out to (a device joins once it sent a heartbeat)")]
    NoDevices,
    #[error("rollout {0} is still running or paused: let it finish or abort it first")]
    Active(u64),
}

/// What ops do to a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Open no more waves until resumed.
    Pause,
    /// Go on; the failures of the open wave so far are accepted.
    Resume,
    /// Stop for good; devices not yet updated are told to stay on what they run.
    Abort,
}

/// Why a control was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    #[error("no rollout {0}")]
    NotFound(u64),
    #[error("rollout {id} is {state}")]
    Wrong { id: u64, state: &'static str },
}

/// A rollout started or changed, its progress after the change, and the devices whose
/// update order changed (to publish).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub rollout: Rollout,
    pub progress: Vec<WaveProgress>,
    pub devices: Vec<DeviceId>,
}

/// The rollout tables.
pub trait RolloutStore: Send + Sync + std::fmt::Debug {
    /// Starts a rollout of `spec` to its devices (those that sent a heartbeat, of its
    /// group if it names one, not revoked), in the order of their seed, and orders the
    /// canaries, all in one transaction.
    fn start(&self, spec: &RolloutSpec, at_ms: i64, by: &str) -> Result<Result<Changed, StartRefused>, StoreError>;

    /// Every rollout, newest first, with its progress per wave.
    fn rollouts(&self) -> Result<Vec<(Rollout, Vec<WaveProgress>)>, StoreError>;

    /// One rollout and its devices, in rollout order.
    fn rollout(&self, id: u64) -> Result<Option<(Rollout, Vec<RolloutDevice>)>, StoreError>;

    /// The running and paused rollouts.
    fn active(&self) -> Result<Vec<u64>, StoreError>;

    /// One [`super::engine::step`] of rollout `id` at `now_ms` in one transaction; the
    /// devices it ordered. `offline_after` is `[health] offline_after`.
    fn advance(&self, id: u64, now_ms: i64, offline_after: Duration) -> Result<Vec<DeviceId>, StoreError>;

    /// Pauses, resumes or aborts rollout `id`.
    fn control(
        &self,
        id: u64,
        control: Control,
        at_ms: i64,
        by: &str,
    ) -> Result<Result<Changed, ControlRefused>, StoreError>;
}

/// Which states a control applies to, and the state it leads to.
pub fn transition(control: Control, from: RolloutState) -> Option<RolloutState> {
    match (control, from) {
        (Control::Pause, RolloutState::Running) => Some(RolloutState::Paused),
        (Control::Resume, RolloutState::Paused) => Some(RolloutState::Running),
        (Control::Abort, RolloutState::Running | RolloutState::Paused) => Some(RolloutState::Aborted),
        _ => None,
    }
}
