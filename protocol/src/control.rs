//! Control-plane messages: small, rare, JSON.
//!
//! Forward compatibility: a reader ignores fields it does not know, every field added
//! after v1 is an `Option` or has a default, and enums that may grow have an `Unknown`
//! catch-all, so an older fleet or agent keeps reading what a newer one writes.
//! Optional fields are left out of the JSON when `None`: a box that cannot measure
//! something says nothing, never zero.
//!
//! Each message names its [`Channel`] (see the table in [`crate::topic`]).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::SeqRange;
use crate::reading::BootId;
use crate::topic::Channel;

/// Why a control message could not be read or written.
#[derive(Debug, Error)]
#[error("{message} JSON: {source}")]
pub struct ControlError {
    /// Which message type.
    pub message: &'static str,
    /// What serde_json said.
    #[source]
    pub source: serde_json::Error,
}

/// A control-plane message: JSON on its own [`Channel`].
pub trait ControlMessage: Serialize + DeserializeOwned {
    /// The type's name, for errors.
    const NAME: &'static str;
    /// The channel that carries it.
    const CHANNEL: Channel;

    /// The JSON payload.
    fn to_json(&self) -> Result<Vec<u8>, ControlError> {
        serde_json::to_vec(self).map_err(|source| ControlError { message: Self::NAME, source })
    }

    /// Parses a JSON payload; unknown fields are ignored.
    fn from_json(bytes: &[u8]) -> Result<Self, ControlError> {
        serde_json::from_slice(bytes).map_err(|source| ControlError { message: Self::NAME, source })
    }
}

/// Fleet -> agent: every seq up to and including `watermark` is durably stored
/// (the highest contiguous seq, counting dropped ranges as done). The agent may delete them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Highest contiguous seq durably stored.
    pub watermark: u64,
}

/// Agent -> fleet, retained: whether the agent is connected. The agent publishes
/// `online: true` on connect; the same topic with `online: false` is its MQTT last will.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Status {
    /// Connected (false: the last will, or a clean shutdown).
    pub online: bool,
    /// The agent's version, when it knows it (a last will may omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The boot this status belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<BootId>,
}

/// Agent -> fleet, every N seconds: the box's health. (Minimal now; later versions add
/// optional fields for CPU, memory, disk, temperature, link and cameras.)
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Readings in the buffer not yet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_depth: Option<u64>,
    /// Age in seconds of the oldest reading not yet acknowledged (none when the buffer is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unsent_age_s: Option<u64>,
    /// Each configured sensor's state, by sensor id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sensors: BTreeMap<String, SensorHealth>,
}

/// One sensor's health in a [`Heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SensorHealth {
    /// What the driver is doing.
    pub state: SensorState,
    /// Seconds since its last reading, if it ever gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reading_age_s: Option<u64>,
    /// The last error, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A sensor driver's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// Reading normally.
    Ok,
    /// The port is gone (unplugged) or never opened.
    Disconnected,
    /// Connected, but frames fail (timeouts, CRC, parse errors).
    Failing,
    /// A state this build does not know (written by a newer agent).
    #[default]
    #[serde(other)]
    Unknown,
}

/// Fleet -> agent, retained: the config the device should run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredConfig {
    /// Increases with every change on the fleet.
    pub version: u64,
    /// The agent config file, as TOML text.
    pub toml: String,
}

/// Agent -> fleet, retained: what the agent did with a [`DesiredConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedConfig {
    /// The desired version this report is about.
    pub version: u64,
    /// What became of it.
    pub state: ConfigState,
    /// Why it was rejected or rolled back, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of a desired config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigState {
    /// Validated and running.
    Applied,
    /// Invalid; the previous config keeps running.
    Rejected,
    /// Applied, but it cut the agent off from the fleet, so the agent went back.
    RolledBack,
    /// A state this build does not know.
    #[serde(other)]
    Unknown,
}

/// Agent -> fleet: something happened. JSON is tagged: `{"event":"clock_synced",...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The clock synchronised: readings of `boot_id` taken unsynced are corrected by
    /// adding `offset_ms` to their wall time.
    ClockSynced {
        /// The boot whose readings this corrects.
        boot_id: BootId,
        /// True wall time minus the box's wall time before the sync, in ms.
        offset_ms: i64,
        /// Monotonic time of the sync in that boot.
        at_mono_ms: u64,
    },
    /// A sensor stopped answering or was unplugged.
    SensorDisconnected {
        /// The sensor id.
        sensor: String,
    },
    /// A sensor is back.
    SensorConnected {
        /// The sensor id.
        sensor: String,
    },
    /// The buffer reached its quota and evicted readings that were never sent.
    BufferEvicted {
        /// How many readings of each sensor were evicted.
        #[serde(default)]
        counts: BTreeMap<String, u64>,
        /// The seq ranges evicted.
        #[serde(default)]
        ranges: Vec<SeqRange>,
    },
    /// An event this build does not know (written by a newer agent).
    #[serde(other)]
    Unknown,
}

/// Names each message type and its channel.
macro_rules! control_messages {
    ($($ty:ty => $name:literal on $channel:ident;)*) => {$(
        impl ControlMessage for $ty {
            const NAME: &'static str = $name;
            const CHANNEL: Channel = Channel::$channel;
        }
    )*};
}

control_messages! {
    Ack => "ack" on Ack;
    Status => "status" on Status;
    Heartbeat => "heartbeat" on Heartbeat;
    DesiredConfig => "desired config" on ConfigDesired;
    ReportedConfig => "reported config" on ConfigReported;
    Event => "event" on Events;
}
