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

/// Agent -> fleet, every `[health] heartbeat_interval` (default 60 s): the box's health.
/// Anything the box cannot measure is absent (`None`), never zero.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// The desired-config version the agent runs (none before the fleet sent one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<u64>,
    /// The box: CPU, memory, disk, SoC temperature, throttling.
    #[serde(default, skip_serializing_if = "SystemHealth::is_empty")]
    pub system: SystemHealth,
    /// The uplink to the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkHealth>,
    /// Readings in the buffer not yet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_depth: Option<u64>,
    /// Age in seconds of the oldest reading not yet acknowledged (none when the buffer is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unsent_age_s: Option<u64>,
    /// Each configured sensor's state, by sensor id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sensors: BTreeMap<String, SensorHealth>,
    /// Each configured camera's state, by camera id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cameras: BTreeMap<String, CameraHealth>,
}

/// The box itself, in a [`Heartbeat`]. Every field is optional: a box without a thermal
/// zone or the Pi's throttle flags says nothing about them.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemHealth {
    /// CPU busy, percent of all cores, since the previous heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// 1-minute load average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_1m: Option<f64>,
    /// Memory in use (total minus available), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<u64>,
    /// Memory installed, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    /// Disk in use on the buffer's filesystem, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_bytes: Option<u64>,
    /// Size of the buffer's filesystem, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<u64>,
    /// SoC temperature, degrees Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc_temp_c: Option<f64>,
    /// The Pi's throttle flags (the firmware's `get_throttled` word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<Throttled>,
}

/// The Raspberry Pi firmware's throttle flags, decoded (bits 0-3 now, 16-19 since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Throttled {
    /// The raw flag word.
    pub raw: u32,
    pub under_voltage_now: bool,
    pub freq_capped_now: bool,
    pub throttled_now: bool,
    pub soft_temp_limit_now: bool,
    pub under_voltage_since_boot: bool,
    pub freq_capped_since_boot: bool,
    pub throttled_since_boot: bool,
    pub soft_temp_limit_since_boot: bool,
}

impl SystemHealth {
    /// Nothing measured.
    pub fn is_empty(&self) -> bool {
        self == &SystemHealth::default()
    }
}

impl Throttled {
    /// Decodes the firmware's flag word.
    pub fn from_raw(raw: u32) -> Throttled {
        let bit = |n: u32| raw & (1 << n) != 0;
        Throttled {
            raw,
            under_voltage_now: bit(0),
            freq_capped_now: bit(1),
            throttled_now: bit(2),
            soft_temp_limit_now: bit(3),
            under_voltage_since_boot: bit(16),
            freq_capped_since_boot: bit(17),
            throttled_since_boot: bit(18),
            soft_temp_limit_since_boot: bit(19),
        }
    }
}

/// The uplink, in a [`Heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkHealth {
    /// Connected to the broker now.
    pub connected: bool,
    /// Successful connects since the agent started (1 = never dropped).
    pub connects: u64,
    /// The last watermark the fleet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<u64>,
    /// The last connection error, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One sensor's health in a [`Heartbeat`].
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct SensorHealth {
    /// What the driver is doing.
    pub state: SensorState,
    /// Seconds since its last reading, if it ever gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reading_age_s: Option<u64>,
    /// The last value of each metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_values: BTreeMap<String, f64>,
    /// Error counts since the agent started, by kind (`garbage`, `crc`, `timeout`, `io`,
    /// `exception`); kinds with no error are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// The last error, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One camera's health in a [`Heartbeat`] (docs/design/cameras.md).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CameraHealth {
    /// What the agent found at its last look at the camera.
    #[serde(default)]
    pub state: CameraState,
    /// Reachable on the office LAN at its last check.
    pub reachable: bool,
    /// Streams the relay is pulling from the camera now (0 or 1: the fleet fans out).
    #[serde(default)]
    pub viewers: u32,
    /// The codec and size it sends (`h264 1920x1080`), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// The last error, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A camera's state as the agent sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// It answered with a stream the relay can pass on.
    Ok,
    /// It refused the configured user name and password.
    Unauthorized,
    /// Nothing answered at its address, or it broke off.
    Unreachable,
    /// It answered, but with no H.264 or H.265 video.
    Unsupported,
    /// Not looked at yet, or a state this build does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

impl CameraState {
    /// The state's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Ok => "ok",
            CameraState::Unauthorized => "unauthorized",
            CameraState::Unreachable => "unreachable",
            CameraState::Unsupported => "unsupported",
            CameraState::Unknown => "unknown",
        }
    }
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
    /// Staff plugged in a serial sensor; the agent probed it and proposes a sensor entry.
    /// Ops accept it into the device's desired config on the fleet.
    SensorProposed {
        /// The serial port, e.g. `/dev/ttyUSB1`.
        port: String,
        /// The proposed `[sensors.<id>]` entry as agent-config TOML, id included.
        toml: String,
        /// What the probe found, for people (e.g. "Modbus slave 1 at 9600 baud").
        summary: String,
    },
    /// The agent applied a desired config and then rolled it back on its own.
    ConfigRolledBack {
        /// The version it rolled back from.
        version: u64,
        /// The version it runs again, if it came from the fleet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running: Option<u64>,
        /// Why, for people (e.g. "no broker within 2m after applying").
        reason: String,
    },
    /// The agent runs a new release: its trial passed and it replaced the old binary.
    UpdateApplied {
        /// The version it ran before.
        from: String,
        /// The version it runs now.
        to: String,
    },
    /// The agent tried a release and went back to the binary it kept.
    UpdateRolledBack {
        /// The release it tried.
        version: String,
        /// Why, for people (e.g. "exited 3 times before it was healthy").
        reason: String,
    },
    /// The agent refused a release before running it (unsigned, a key it does not pin, a
    /// changed binary, not newer, another target).
    UpdateRefused {
        /// The release it was asked to run.
        version: String,
        /// Why, for people.
        reason: String,
    },
    /// An event this build does not know (written by a newer agent).
    #[serde(other)]
    Unknown,
}

/// Fleet -> agent, retained on `update`: run this release. An empty payload clears it.
/// The agent downloads the release for its own target from the fleet's device listener
/// (`GET /api/v1/releases/{version}/{target}`), with its signed manifest, and checks both
/// against the keys it pins; nothing in the order is trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOrder {
    /// The release version to run.
    pub version: String,
    /// The rollout that asked, for its reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<u64>,
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
    UpdateOrder => "update order" on Update;
}
