//! Desired and reported device config, as the store keeps it
//! (docs/design/fleet-config-distribution.md).

use simpul_protocol::DeviceId;
use simpul_protocol::control::ConfigState;

/// Who changed a config, when, and why: recorded on every version it produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    pub author: String,
    pub at_ms: i64,
    pub comment: String,
}

/// One desired-config version of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigVersion {
    pub device: DeviceId,
    /// 1 for the first, then one more each change.
    pub version: u64,
    /// The merged config sent to the device.
    pub toml: String,
    pub author: String,
    pub at_ms: i64,
    pub comment: String,
}

/// What the device last said about its config (its retained `ReportedConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedState {
    pub version: u64,
    pub state: ConfigState,
    pub error: Option<String>,
    /// When the fleet received it.
    pub at_ms: i64,
}

/// Everything the fleet knows of one device's config.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceConfig {
    /// The group it belongs to, if any.
    pub group: Option<String>,
    /// Its own override, as written (empty when none).
    pub override_toml: String,
    /// The latest desired version.
    pub desired: Option<ConfigVersion>,
    pub reported: Option<ReportedState>,
}

/// A group and its defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigGroup {
    pub name: String,
    pub defaults: String,
    pub updated_ms: i64,
    /// Its devices, by name.
    pub devices: Vec<String>,
}

/// Why a config change was refused by the store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRefused {
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
}

/// A sensor proposal taken into a device's desired config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedProposal {
    /// The id the sensor got.
    pub sensor_id: String,
    /// The version written (and to publish).
    pub version: ConfigVersion,
}

/// Why a sensor proposal was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalRefused {
    #[error("device {device:?} has no sensor proposal {event}")]
    NoSuchProposal { device: String, event: i64 },
    #[error("proposal {event} was already accepted as sensor {sensor_id:?} in version {version}")]
    AlreadyAccepted { event: i64, sensor_id: String, version: u64 },
    #[error(transparent)]
    Invalid(#[from] crate::proposal::ProposalError),
}

/// `ConfigState` as stored.
pub fn state_name(s: ConfigState) -> &'static str {
    match s {
        ConfigState::Applied => "applied",
        ConfigState::Rejected => "rejected",
        ConfigState::RolledBack => "rolled_back",
        ConfigState::Unknown => "unknown",
    }
}

/// A stored state name back to `ConfigState` (an unknown name is `Unknown`).
pub fn state_from_name(s: &str) -> ConfigState {
    match s {
        "applied" => ConfigState::Applied,
        "rejected" => ConfigState::Rejected,
        "rolled_back" => ConfigState::RolledBack,
        _ => ConfigState::Unknown,
    }
}
