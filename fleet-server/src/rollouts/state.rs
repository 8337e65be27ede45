//! A rollout's state and each of its devices' (what the `rollouts` and `rollout_devices`
//! tables hold), and the progress ops see.

use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;

use super::RolloutSpec;

/// Where a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Waves open as the ones before pass their gate.
    Running,
    /// Stopped by the failure threshold or by ops: no new wave opens until resumed.
    Paused,
    /// Stopped for good by ops; devices not yet updated were told to stay.
    Aborted,
    /// Every wave opened and settled.
    Done,
}

/// Where one device of a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Its wave has not opened.
    Pending,
    /// Told to run the release; it has not reported the new version yet.
    Ordered,
    /// Reports the new version; in the health gate.
    Updated,
    /// Ran the new version, online, through the gate.
    Succeeded,
    /// Refused the release, or stopped reporting the new version after it updated.
    Failed,
    /// Tried the release and went back to the old one by itself.
    RolledBack,
    /// Did not report the new version before the deadline (offline): settled, and not
    /// counted as a failure; it may still update and succeed later.
    Unreachable,
    /// The rollout was aborted before it updated; its order was taken back.
    Withdrawn,
}

impl DeviceState {
    /// Every state, in the order progress lists them.
    pub const ALL: [DeviceState; 8] = [
        DeviceState::Pending,
        DeviceState::Ordered,
        DeviceState::Updated,
        DeviceState::Succeeded,
        DeviceState::Failed,
        DeviceState::RolledBack,
        DeviceState::Unreachable,
        DeviceState::Withdrawn,
    ];

    /// Its name in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Ordered => "ordered",
            DeviceState::Updated => "updated",
            DeviceState::Succeeded => "succeeded",
            DeviceState::Failed => "failed",
            DeviceState::RolledBack => "rolled_back",
            DeviceState::Unreachable => "unreachable",
            DeviceState::Withdrawn => "withdrawn",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<DeviceState> {
        DeviceState::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Nothing more is awaited from it for its wave to pass.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            DeviceState::Succeeded
                | DeviceState::Failed
                | DeviceState::RolledBack
                | DeviceState::Unreachable
                | DeviceState::Withdrawn
        )
    }

    /// Counts against the failure threshold.
    pub fn is_failure(self) -> bool {
        matches!(self, DeviceState::Failed | DeviceState::RolledBack)
    }
}

impl RolloutState {
    /// Its name in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Aborted => "aborted",
            RolloutState::Done => "done",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<RolloutState> {
        [RolloutState::Running, RolloutState::Paused, RolloutState::Aborted, RolloutState::Done]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Running or paused: it holds its devices.
    pub fn is_active(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Paused)
    }
}

/// A rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    pub id: u64,
    pub spec: RolloutSpec,
    pub state: RolloutState,
    /// Why it is paused, aborted or done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The wave open now (0: the canaries).
    pub wave: u32,
    /// Failures in the open wave ops accepted when they resumed it.
    pub accepted_failures: u32,
    pub created_ms: i64,
    pub created_by: String,
    pub updated_ms: i64,
}

/// One device of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RolloutDevice {
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// Its place in the rollout's order (0 first).
    pub position: u32,
    pub wave: u32,
    pub state: DeviceState,
    /// When it entered `state` (fleet clock, ms).
    pub since_ms: i64,
    /// When its wave opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_ms: Option<i64>,
    /// Why it failed, rolled back or is unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the fleet knows of a device now, for settling it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The version its latest heartbeat reported, and when that heartbeat arrived.
    pub heartbeat: Option<(String, i64)>,
    /// Online by `[health] offline_after`.
    pub online: bool,
    /// Its last `update_rolled_back` or `update_refused` event for the rollout's version:
    /// the state it leads to and the box's reason.
    pub verdict: Option<(DeviceState, String)>,
}

/// How many devices of one wave are in each state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WaveProgress {
    pub wave: u32,
    pub devices: u32,
    pub pending: u32,
    pub ordered: u32,
    pub updated: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub rolled_back: u32,
    pub unreachable: u32,
    pub withdrawn: u32,
}

impl WaveProgress {
    /// Counts `devices` by wave.
    pub fn of(devices: &[RolloutDevice]) -> Vec<WaveProgress> {
        let waves = devices.iter().map(|d| d.wave).max().map_or(0, |w| w + 1);
        let mut out: Vec<WaveProgress> = (0..waves).map(|wave| WaveProgress { wave, ..Default::default() }).collect();
        for d in devices {
            let Some(w) = usize::try_from(d.wave).ok().and_then(|i| out.get_mut(i)) else { continue };
            w.devices += 1;
            *match d.state {
                DeviceState::Pending => &mut w.pending,
                DeviceState::Ordered => &mut w.ordered,
                DeviceState::Updated => &mut w.updated,
                DeviceState::Succeeded => &mut w.succeeded,
                DeviceState::Failed => &mut w.failed,
                DeviceState::RolledBack => &mut w.rolled_back,
                DeviceState::Unreachable => &mut w.unreachable,
                DeviceState::Withdrawn => &mut w.withdrawn,
            } += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip_and_match_the_json() {
        for s in DeviceState::ALL {
            assert_eq!(DeviceState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        for r in [RolloutState::Running, RolloutState::Paused, RolloutState::Aborted, RolloutState::Done] {
            assert_eq!(RolloutState::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).ok(), Some(serde_json::Value::from(r.as_str())));
        }
    }
}
