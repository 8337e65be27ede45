//! The fleet server's configuration: one TOML file (`/etc/simpul/fleet.toml`).
//!
//! Types and defaults live here; [`load`] reads a file and names the file and line of any
//! mistake; the commented default is [`DEFAULT_CONFIG`]. Every field and its default is
//! listed in docs/ref/fleet-config.md.

mod error;
mod health;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, Problem};
pub use health::{AlertsConfig, HealthConfig};
pub use load::{load, load_str};

/// The commented default configuration, printed by `simpul-fleet print-default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The whole fleet configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `[broker]`: the embedded broker, used when `[mqtt] broker` is unset.
    #[serde(default)]
    pub broker: crate::broker::BrokerConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub api: ApiConfig,
    /// `[auth]`: operators' sessions (docs/design/auth.md).
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    #[serde(default)]
    pub webhook: WebhookConfig,
    #[serde(default)]
    pub time: TimeConfig,
    /// `[health]`: when a device counts as online.
    #[serde(default)]
    pub health: HealthConfig,
    /// `[alerts]`: the device list's thresholds.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[dashboard]`: the ops dashboard (docs/design/dashboard.md).
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// `[trust]`: the fleet CA and the device listener (docs/design/trust.md).
    #[serde(default)]
    pub trust: crate::trust::config::TrustConfig,
    /// `[releases]`: the release keys publishing accepts (docs/design/updates.md).
    #[serde(default)]
    pub releases: crate::releases::ReleasesConfig,
    /// `[rollouts]`: the rollout engine (docs/design/updates.md).
    #[serde(default)]
    pub rollouts: crate::rollouts::RolloutsConfig,
    /// `[cameras]`: the camera relay's viewer side (docs/design/cameras.md).
    #[serde(default)]
    pub cameras: crate::cameras::CamerasConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// `[dashboard]`: how the ops dashboard shows things.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// The zone times are shown in. Default WIB. The API stays UTC.
    #[serde(default)]
    pub timezone: SiteZone,
}

/// Indonesia's three time zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SiteZone {
    /// Western Indonesia, UTC+7 (Sumatra, Java, West and Central Kalimantan).
    #[default]
    #[serde(rename = "WIB")]
    Wib,
    /// Central Indonesia, UTC+8 (Bali, Nusa Tenggara, Sulawesi, the rest of Kalimantan).
    #[serde(rename = "WITA")]
    Wita,
    /// Eastern Indonesia, UTC+9 (Maluku, Papua).
    #[serde(rename = "WIT")]
    Wit,
}

impl SiteZone {
    /// Its offset from UTC, minutes (none of the three has daylight saving).
    pub fn utc_offset_minutes(self) -> i32 {
        match self {
            SiteZone::Wib => 7 * 60,
            SiteZone::Wita => 8 * 60,
            SiteZone::Wit => 9 * 60,
        }
    }

    /// Its short name: WIB, WITA or WIT.
    pub fn name(self) -> &'static str {
        match self {
            SiteZone::Wib => "WIB",
            SiteZone::Wita => "WITA",
            SiteZone::Wit => "WIT",
        }
    }
}

/// `[mqtt]`: the broker the fleet reads from and acks through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// An external broker, `host:port` (Mosquitto, EMQX, ...). Unset (the default): the
    /// fleet starts its embedded broker (`[broker]`) and reads from that.
    #[serde(default = "defaults::broker")]
    pub broker: Option<String>,
    /// The fleet's MQTT client id. Fixed, so the broker keeps the fleet's session
    /// (clean_session = false) and redelivers what was not acked. Default `simpul-fleet`.
    #[serde(default = "defaults::client_id")]
    pub client_id: String,
    /// The fleet's identity at the broker: the MQTT username its clients send (the
    /// embedded broker's ACL knows the fleet by it). Several fleet processes share it and
    /// differ in `client_id`. Default `simpul-fleet`.
    #[serde(default = "defaults::identity")]
    pub identity: String,
    /// Ingest's session: `false` (persistent) lets the broker keep what arrives while the
    /// one fleet process restarts; `true` (clean) drops a dead process's subscription at
    /// once, so a shared-subscription broker stops handing it messages (several fleet
    /// processes; docs/ops/scale-out.md). Default false.
    #[serde(default)]
    pub clean_session: bool,
    /// Shared-subscription group (`$share/{group}/...`); fleet servers in one group share
    /// the devices' messages. Empty: a plain subscription. Default `simpul-fleet`.
    #[serde(default = "defaults::shared_group")]
    pub shared_group: String,
    /// MQTT keep-alive. Default 30s.
    #[serde(default = "defaults::keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// TLS to the external broker: its certificate checked against `tls_ca_file`, and the
    /// fleet's clients present a certificate of the fleet CA with CN = `identity`, made at
    /// each start (the key never written). Only with `broker` set. Default false.
    #[serde(default)]
    pub tls: bool,
    /// The CA certificate(s), PEM, of the broker's server certificate. Unset (the
    /// default): the fleet CA, which issues it in docs/ops/mosquitto.md.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: defaults::broker(),
            client_id: defaults::client_id(),
            identity: defaults::identity(),
            clean_session: false,
            shared_group: defaults::shared_group(),
            keep_alive: defaults::keep_alive(),
            tls: false,
            tls_ca_file: None,
        }
    }
}

/// Which database holds the fleet's tables (docs/design/scale-out.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file beside the one fleet process.
    #[default]
    Sqlite,
    /// A PostgreSQL database several fleet processes share.
    Postgres,
}

/// `[store]`: where readings live and how often ingest commits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Which database holds the fleet's tables. Default `sqlite`.
    #[serde(default)]
    pub backend: StoreBackend,
    /// The SQLite file (backend `sqlite`). Default `/var/lib/simpul-fleet/fleet.db`.
    #[serde(default = "defaults::store_path")]
    pub path: PathBuf,
    /// The PostgreSQL connection string (backend `postgres`), in libpq's key=value or URL
    /// form. Default empty.
    #[serde(default)]
    pub url: String,
    /// The CA certificate(s) (PEM) that issued the PostgreSQL server's certificate. Set:
    /// every connection is TLS, the server's certificate checked against these and against
    /// the host in `url` (libpq's `sslmode=verify-full`). Unset (the default): plain, and a
    /// `url` with `sslmode=require` is refused at start.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Longest time a received message waits for its commit. Default 50ms.
    #[serde(default = "defaults::commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Most messages in one commit. Default 500.
    #[serde(default = "defaults::commit_max_messages")]
    pub commit_max_messages: usize,
    /// How long heartbeat history is kept (the latest heartbeat of each device is kept
    /// always). Default 30d.
    #[serde(default = "defaults::health_retention", with = "humantime_serde")]
    pub health_retention: Duration,
    /// Heartbeat history keeps one heartbeat per device per this long, plus each one whose
    /// failing sensors or throttling changed; `0s` keeps every heartbeat. Default 5m.
    #[serde(default = "defaults::health_history_every", with = "humantime_serde")]
    pub health_history_every: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::default(),
            path: defaults::store_path(),
            url: String::new(),
            tls_ca_file: None,
            commit_interval: defaults::commit_interval(),
            commit_max_messages: defaults::commit_max_messages(),
            health_retention: defaults::health_retention(),
            health_history_every: defaults::health_history_every(),
        }
    }
}

/// `[api]`: the platform HTTP API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "defaults::api_listen")]
    pub listen: SocketAddr,
    /// The largest `limit` a reader may ask for. Default 10000.
    #[serde(default = "defaults::max_limit")]
    pub max_limit: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { listen: defaults::api_listen(), max_limit: defaults::max_limit() }
    }
}

/// `[webhook]`: push deliverable readings to the central platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST batches; unset: no webhook. Default unset.
    #[serde(default)]
    pub url: Option<String>,
    /// Readings per POST. Default 500.
    #[serde(default = "defaults::webhook_batch")]
    pub batch_size: usize,
    /// Time limit of one POST. Default 10s.
    #[serde(default = "defaults::webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// First retry delay (it doubles, with jitter). Default 1s.
    #[serde(default = "defaults::backoff_min", with = "humantime_serde")]
    pub min_backoff: Duration,
    /// Longest retry delay. Default 5m.
    #[serde(default = "defaults::backoff_max", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How often to look for new readings when none arrived by notification. Default 1s.
    #[serde(default = "defaults::webhook_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            batch_size: defaults::webhook_batch(),
            timeout: defaults::webhook_timeout(),
            min_backoff: defaults::backoff_min(),
            max_backoff: defaults::backoff_max(),
            poll_interval: defaults::webhook_poll(),
        }
    }
}

/// `[time]`: readings taken before the box's clock synchronised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// How long an unsynced reading is held back waiting for its boot's clock offset;
    /// then it is delivered uncorrected. Default 24h.
    #[serde(default = "defaults::hold_unsynced", with = "humantime_serde")]
    pub hold_unsynced: Duration,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig { hold_unsynced: defaults::hold_unsynced() }
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `simpul_fleet=debug`). Default `info`; `RUST_LOG` wins.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: defaults::log_level() }
    }
}

mod defaults {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn broker() -> Option<String> {
        None
    }
    pub fn client_id() -> String {
        "simpul-fleet".to_owned()
    }
    pub fn identity() -> String {
        "simpul-fleet".to_owned()
    }
    pub fn shared_group() -> String {
        "simpul-fleet".to_owned()
    }
    pub fn keep_alive() -> Duration {
        Duration::from_secs(30)
    }
    pub fn store_path() -> PathBuf {
        PathBuf::from("/var/lib/simpul-fleet/fleet.db")
    }
    pub fn commit_interval() -> Duration {
        Duration::from_millis(50)
    }
    pub fn commit_max_messages() -> usize {
        500
    }
    pub fn health_retention() -> Duration {
        Duration::from_secs(30 * 24 * 3600)
    }
    pub fn health_history_every() -> Duration {
        Duration::from_secs(5 * 60)
    }
    pub fn api_listen() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))
    }
    pub fn max_limit() -> usize {
        10_000
    }
    pub fn webhook_batch() -> usize {
        500
    }
    pub fn webhook_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn backoff_min() -> Duration {
        Duration::from_secs(1)
    }
    pub fn backoff_max() -> Duration {
        Duration::from_secs(300)
    }
    pub fn webhook_poll() -> Duration {
        Duration::from_secs(1)
    }
    pub fn hold_unsynced() -> Duration {
        Duration::from_secs(24 * 3600)
    }
    pub fn log_level() -> String {
        "info".to_owned()
    }
}
