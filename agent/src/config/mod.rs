//! The agent's configuration: `/etc/simpul/agent.toml` plus `agent.d/*.toml` drop-ins.
//!
//! Types live here and in [`sensor`]; [`load`] reads files, merges drop-ins and names the
//! file and line of any mistake; the commented default is [`DEFAULT_CONFIG`].
//! Every field and its default is listed in docs/ref/agent-config.md.

mod camera;
mod error;
mod health;
mod load;
mod probe;
mod provenance;
mod remote_config;
pub mod sensor;
mod status_page;
mod trust;
mod update;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;

pub use camera::{CameraConfig, CameraRelayConfig, Secret};
pub use error::{ConfigError, Problem};
pub use health::HealthConfig;
pub use load::{ConfigSource, drop_in_dir, load, load_str, load_with_drop_in};
pub use probe::ProbeConfig;
pub use remote_config::RemoteConfigConfig;
pub use sensor::SensorConfig;
pub use status_page::StatusPageConfig;
pub use trust::TrustConfig;
pub use update::UpdateConfig;
pub use validate::valid_sensor_id;

/// The commented default configuration, printed by `simpul-agent print-default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The whole agent configuration, after merging and validation.
#[derive(Clone, Debug, PartialEq, Serialize, Default)]
pub struct AgentConfig {
    pub device: DeviceConfig,
    pub buffer: BufferConfig,
    pub clock: ClockConfig,
    pub log: LogConfig,
    pub sensor_retry: RetryConfig,
    pub uplink: UplinkConfig,
    pub status_page: StatusPageConfig,
    pub health: HealthConfig,
    pub remote_config: RemoteConfigConfig,
    pub probe: ProbeConfig,
    pub trust: TrustConfig,
    pub update: UpdateConfig,
    pub camera_relay: CameraRelayConfig,
    /// Sensors by id (the key of `[sensors.<id>]`).
    pub sensors: BTreeMap<String, SensorConfig>,
    /// Cameras by id (the key of `[cameras.<id>]`).
    pub cameras: BTreeMap<String, CameraConfig>,
}

/// `[device]`: who this box is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The device id; until enrolment gives one, the host name (made safe) is used.
    #[serde(default)]
    pub id: Option<DeviceId>,
    /// A human name for the site, shown on the status page ("Kelurahan Ciwedus").
    #[serde(default)]
    pub site: Option<String>,
}

/// `[buffer]`: the durable buffer between sensors and uplink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// The SQLite file. Default `/var/lib/simpul/buffer.db`.
    #[serde(default = "defaults::buffer_path")]
    pub path: PathBuf,
    /// How often appended samples are committed (one transaction, one fsync). Default 1s.
    #[serde(default = "defaults::flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Disk quota for the buffer file. Default 256 MiB.
    #[serde(default = "defaults::quota")]
    pub quota: ByteSize,
    /// What to drop when the quota is reached. Default `oldest-first`.
    #[serde(default)]
    pub eviction: Eviction,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            path: defaults::buffer_path(),
            flush_interval: defaults::flush_interval(),
            quota: defaults::quota(),
            eviction: Eviction::default(),
        }
    }
}

/// The buffer's eviction policy when its quota is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Eviction {
    /// Delete the oldest readings first.
    #[default]
    OldestFirst,
    /// Thin out old data: delete every other reading in the oldest part, keeping the
    /// whole time span at a coarser resolution.
    ThinOldest,
}

/// `[clock]`: where time comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// The kernel's boot id. Default `/proc/sys/kernel/random/boot_id`.
    #[serde(default = "defaults::boot_id_path")]
    pub boot_id_path: PathBuf,
    /// How to tell whether the clock is synchronised. Default `kernel`.
    #[serde(default)]
    pub sync: ClockSync,
    /// If set, the clock counts as synchronised exactly when this file exists
    /// (systemd-timesyncd writes `/run/systemd/timesync/synchronized`). Default unset.
    #[serde(default)]
    pub sync_marker: Option<PathBuf>,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig { boot_id_path: defaults::boot_id_path(), sync: ClockSync::default(), sync_marker: None }
    }
}

/// Where the clock-synchronised flag comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClockSync {
    /// The kernel's NTP status (`STA_UNSYNC`), as chrony, ntpd and timesyncd keep it.
    #[default]
    Kernel,
    /// Always synchronised (a test machine, or a box with a real-time clock).
    Always,
    /// Never synchronised (tests of the 1970 case).
    Never,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `simpul_agent=debug`). Default `info`; `RUST_LOG` wins.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: defaults::log_level() }
    }
}

/// `[sensor_retry]`: how an unplugged or failing sensor is retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First delay before reopening a port. Default 500ms.
    #[serde(default = "defaults::retry_min", with = "humantime_serde")]
    pub min_delay: Duration,
    /// Longest delay between attempts (the backoff doubles up to this). Default 30s.
    #[serde(default = "defaults::retry_max", with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { min_delay: defaults::retry_min(), max_delay: defaults::retry_max() }
    }
}

/// `[uplink]`: the MQTT link to the fleet (see docs/design/uplink.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Whether the agent connects to the fleet at all. Default false: a box without a
    /// fleet (the demo, a bench test) keeps everything in its buffer.
    #[serde(default)]
    pub enabled: bool,
    /// The MQTT broker, `host:port`. Default `127.0.0.1:1883`.
    #[serde(default = "defaults::broker")]
    pub broker: String,
    /// MQTT keepalive, whole seconds from 1s to 65535s. Default 30s.
    #[serde(default = "defaults::keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
    /// A connection attempt (TCP, TLS, CONNACK) is given up after this long; also the
    /// longest a write to the broker may block. Whole seconds, at least 1s. Default 30s.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The most readings in one published batch. Default 600.
    #[serde(default = "defaults::batch_max")]
    pub batch_max: usize,
    /// Live readings are published at most once per interval. Default 1s.
    #[serde(default = "defaults::batch_interval", with = "humantime_serde")]
    pub batch_interval: Duration,
    /// The most batches published and not yet PUBACKed. Default 4.
    #[serde(default = "defaults::max_inflight")]
    pub max_inflight: u16,
    /// A batch PUBACKed by the broker but still above the fleet's watermark this long after
    /// makes the uplink send everything above the watermark again, without reconnecting:
    /// the fleet process that took it may have died (docs/design/uplink.md). Default 60s.
    #[serde(default = "defaults::ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// First wait before reconnecting. Default 1s.
    #[serde(default = "defaults::reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// The wait doubles (with jitter) up to this. Default 60s.
    #[serde(default = "defaults::reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Mutual TLS to the broker with the box's identity in `[trust] dir` (enrolment turns
    /// it on). Until the identity is there the uplink waits for it. Default false.
    #[serde(default)]
    pub tls: bool,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            enabled: false,
            broker: defaults::broker(),
            keepalive: defaults::keepalive(),
            connect_timeout: defaults::connect_timeout(),
            batch_max: defaults::batch_max(),
            batch_interval: defaults::batch_interval(),
            max_inflight: defaults::max_inflight(),
            ack_timeout: defaults::ack_timeout(),
            reconnect_min: defaults::reconnect_min(),
            reconnect_max: defaults::reconnect_max(),
            tls: false,
        }
    }
}

impl UplinkConfig {
    /// `broker` split into host and port; `None` when it is not `host:port`.
    pub fn broker_host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.broker.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().ok()?;
        (!host.is_empty() && port != 0).then_some((host, port))
    }
}

pub(crate) mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    use bytesize::ByteSize;

    pub fn buffer_path() -> PathBuf {
        PathBuf::from("/var/lib/simpul/buffer.db")
    }
    pub fn flush_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn quota() -> ByteSize {
        ByteSize::mib(256)
    }
    pub fn boot_id_path() -> PathBuf {
        PathBuf::from("/proc/sys/kernel/random/boot_id")
    }
    pub fn log_level() -> String {
        "info".to_owned()
    }
    pub fn retry_min() -> Duration {
        Duration::from_millis(500)
    }
    pub fn retry_max() -> Duration {
        Duration::from_secs(30)
    }
    pub fn broker() -> String {
        "127.0.0.1:1883".to_owned()
    }
    pub fn keepalive() -> Duration {
        Duration::from_secs(30)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn batch_max() -> usize {
        600
    }
    pub fn batch_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn max_inflight() -> u16 {
        4
    }
    pub fn ack_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn reconnect_min() -> Duration {
        Duration::from_secs(1)
    }
    pub fn reconnect_max() -> Duration {
        Duration::from_secs(60)
    }
}
