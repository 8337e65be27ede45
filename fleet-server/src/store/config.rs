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

// --- What both backends do around their SQL -------------------------------------------

use super::StoreError;
use crate::config_merge;
use crate::proposal;

/// A device name read back from the database.
pub(crate) fn device_name(name: String) -> Result<DeviceId, StoreError> {
    DeviceId::new(name).map_err(|e| StoreError::Corrupt(format!("stored device name: {e}")))
}

fn parse_stored(what: &str, text: &str) -> Result<toml::Table, StoreError> {
    config_merge::parse(text).map_err(|e| StoreError::Corrupt(format!("stored {what}: {e}")))
}

/// A device's config inputs as stored: its group's defaults (when in a group) and its own
/// override text (empty when none).
pub(crate) struct ConfigInputs {
    pub defaults: Option<String>,
    pub own: String,
}

impl ConfigInputs {
    /// The group's defaults merged with the device's override: what the device runs.
    pub fn merged(&self) -> Result<toml::Table, StoreError> {
        let defaults = parse_stored("group defaults", self.defaults.as_deref().unwrap_or(""))?;
        let own = parse_stored("device override", &self.own)?;
        Ok(config_merge::merge(&defaults, &own))
    }

    /// [`ConfigInputs::merged`] as the TOML a desired version holds.
    pub fn desired_toml(&self) -> Result<String, StoreError> {
        Ok(config_merge::render(&self.merged()?))
    }
}

/// The version after `last` (0: none yet) of `device`, holding `toml`, made by `change`.
pub(crate) fn next_version_of(
    device: &DeviceId,
    last: i64,
    toml: String,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    Ok(ConfigVersion {
        device: device.clone(),
        version: super::sqlite::to_u64(last)? + 1,
        toml,
        author: change.author.clone(),
        at_ms: change.at_ms,
        comment: change.comment.clone(),
    })
}

/// A `config_versions` row joined with its device's name:
/// (name, version, toml, author, at_ms, comment).
pub(crate) type VersionRow = (String, i64, String, String, i64, String);

pub(crate) fn to_version(row: VersionRow) -> Result<ConfigVersion, StoreError> {
    let (name, version, toml, author, at_ms, comment) = row;
    Ok(ConfigVersion {
        device: device_name(name)?,
        version: super::sqlite::to_u64(version)?,
        toml,
        author,
        at_ms,
        comment,
    })
}

/// A device's config from its rows: membership (group, override), its report (version,
/// state, error, at_ms), its latest desired version. `None` when it has none of them.
pub(crate) fn device_config_of(
    membership: Option<(Option<String>, String)>,
    reported: Option<(i64, String, Option<String>, i64)>,
    desired: Option<ConfigVersion>,
) -> Result<Option<DeviceConfig>, StoreError> {
    if membership.is_none() && reported.is_none() && desired.is_none() {
        return Ok(None);
    }
    let (group, override_toml) = membership.unwrap_or_default();
    let reported = reported
        .map(|(version, state, error, at_ms)| {
            Ok::<_, StoreError>(ReportedState {
                version: super::sqlite::to_u64(version)?,
                state: state_from_name(&state),
                error,
                at_ms,
            })
        })
        .transpose()?;
    Ok(Some(DeviceConfig { group, override_toml, desired, reported }))
}

/// Puts each (group, device) of `members` (by device name) into its group of `groups`
/// (by name, in Rust's `str` order).
pub(crate) fn add_members(groups: &mut [ConfigGroup], members: Vec<(String, String)>) {
    for (group, device) in members {
        if let Ok(i) = groups.binary_search_by(|g| g.name.as_str().cmp(&group)) {
            if let Some(g) = groups.get_mut(i) {
                g.devices.push(device);
            }
        }
    }
}

/// A device's sensor proposal, as its event recorded it.
pub(crate) struct Proposal {
    toml: String,
    summary: String,
    port: String,
}

impl Proposal {
    /// The proposal in an event's stored JSON; `None` if it is not one.
    pub fn parse(detail: &str) -> Option<Proposal> {
        match serde_json::from_str::<simpul_protocol::control::Event>(detail) {
            Ok(simpul_protocol::control::Event::SensorProposed { toml, summary, port }) => {
                Some(Proposal { toml, summary, port })
            }
            _ => None,
        }
    }

    /// The device's override with the proposal's sensor added (under `sensor_id` when
    /// given), noting who accepted it; the entry added. Refused when the proposal is
    /// malformed or its sensor id is taken in the device's config (`inputs`).
    pub fn into_override(
        self,
        event: i64,
        sensor_id: Option<&str>,
        inputs: &ConfigInputs,
        change: &ConfigChange,
    ) -> Result<Result<(proposal::Entry, String), ProposalRefused>, StoreError> {
        let entry = match proposal::entry(&self.toml, sensor_id) {
            Ok(e) => e,
            Err(e) => return Ok(Err(e.into())),
        };
        let merged = inputs.merged()?;
        let note = format!("proposal {event} from {} ({}), accepted by {}", self.port, self.summary, change.author);
        match proposal::add_to_override(&inputs.own, &merged, &entry, &note) {
            Ok(text) => Ok(Ok((entry, text))),
            Err(e) => Ok(Err(e.into())),
        }
    }
}
