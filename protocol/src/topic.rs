//! MQTT topic names. Every topic a device uses lives under `simpul/v1/dev/{device}/`,
//! so a broker ACL of "a device may use only `simpul/v1/dev/{its id}/#`" is enough.
//!
//! | topic | direction | QoS, retain | payload |
//! |---|---|---|---|
//! | `simpul/v1/dev/{d}/readings` | agent -> fleet | 1 | [`crate::batch`] binary batch |
//! | `simpul/v1/dev/{d}/ack` | fleet -> agent | 1 | [`crate::control::Ack`] JSON |
//! | `simpul/v1/dev/{d}/heartbeat` | agent -> fleet | 1 | [`crate::control::Heartbeat`] JSON |
//! | `simpul/v1/dev/{d}/status` | agent -> fleet (and last will) | 1, retained | [`crate::control::Status`] JSON |
//! | `simpul/v1/dev/{d}/config/desired` | fleet -> agent | 1, retained | [`crate::control::DesiredConfig`] JSON |
//! | `simpul/v1/dev/{d}/config/reported` | agent -> fleet | 1, retained | [`crate::control::ReportedConfig`] JSON |
//! | `simpul/v1/dev/{d}/events` | agent -> fleet | 1 | [`crate::control::Event`] JSON |

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The prefix of every topic of this protocol version.
pub const PREFIX: &str = "simpul/v1/dev";

/// The longest device id accepted.
pub const DEVICE_ID_MAX_LEN: usize = 64;

/// A device id: 1-64 of `a-z`, `0-9`, `-`, `_`, `.`, starting with a letter or digit.
/// It never holds an MQTT separator or wildcard, so it is safe inside a topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Why a device id was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeviceIdError {
    #[error("a device id may not be empty")]
    Empty,
    #[error("a device id is at most {DEVICE_ID_MAX_LEN} characters, this one has {0}")]
    TooLong(usize),
    #[error(
        "a device id may hold only a-z, 0-9, '-', '_' and '.', and must start with a letter or digit; {0:?} does not"
    )]
    BadCharacter(String),
}

impl DeviceId {
    /// Checks and wraps a device id.
    pub fn new(id: impl Into<String>) -> Result<DeviceId, DeviceIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(DeviceIdError::Empty);
        }
        if id.len() > DEVICE_ID_MAX_LEN {
            return Err(DeviceIdError::TooLong(id.len()));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        let first_ok = id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || !id.chars().all(allowed) {
            return Err(DeviceIdError::BadCharacter(id));
        }
        Ok(DeviceId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceId::new(s)
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a topic under a device carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Readings,
    Ack,
    Heartbeat,
    Status,
    ConfigDesired,
    ConfigReported,
    Events,
    /// Fleet -> device, retained: the release the device should run (docs/design/updates.md).
    Update,
}

impl Channel {
    /// Every channel, for exhaustive tests and ACL tables.
    pub const ALL: [Channel; 8] = [
        Channel::Readings,
        Channel::Ack,
        Channel::Heartbeat,
        Channel::Status,
        Channel::ConfigDesired,
        Channel::ConfigReported,
        Channel::Events,
        Channel::Update,
    ];

    /// The topic suffix after `simpul/v1/dev/{device}/`.
    pub fn suffix(self) -> &'static str {
        match self {
            Channel::Readings => "readings",
            Channel::Ack => "ack",
            Channel::Heartbeat => "heartbeat",
            Channel::Status => "status",
            Channel::ConfigDesired => "config/desired",
            Channel::ConfigReported => "config/reported",
            Channel::Events => "events",
            Channel::Update => "update",
        }
    }

    /// Whether the device publishes on this channel (otherwise the fleet does).
    pub fn device_publishes(self) -> bool {
        !matches!(self, Channel::Ack | Channel::ConfigDesired | Channel::Update)
    }
}

/// A parsed device topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic {
    pub device: DeviceId,
    pub channel: Channel,
}

/// Why a topic name is not one of ours.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("topic {0:?} is not under {PREFIX}/")]
    NotOurs(String),
    #[error("topic {topic:?} names a bad device id: {source}")]
    BadDevice { topic: String, source: DeviceIdError },
    #[error("topic {0:?} names no known channel")]
    UnknownChannel(String),
}

impl Topic {
    /// A device's topic on a channel.
    pub fn new(device: DeviceId, channel: Channel) -> Topic {
        Topic { device, channel }
    }

    /// The full topic name.
    pub fn name(&self) -> String {
        format!("{PREFIX}/{}/{}", self.device, self.channel.suffix())
    }

    /// The wildcard that matches one channel of every device (`simpul/v1/dev/+/readings`).
    pub fn all_devices(channel: Channel) -> String {
        format!("{PREFIX}/+/{}", channel.suffix())
    }

    /// Parses a topic name.
    pub fn parse(name: &str) -> Result<Topic, TopicError> {
        let rest = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::NotOurs(name.to_owned()))?;
        let (device, suffix) = rest.split_once('/').ok_or_else(|| TopicError::UnknownChannel(name.to_owned()))?;
        let device =
            DeviceId::new(device).map_err(|source| TopicError::BadDevice { topic: name.to_owned(), source })?;
        let channel = Channel::ALL
            .into_iter()
            .find(|c| c.suffix() == suffix)
            .ok_or_else(|| TopicError::UnknownChannel(name.to_owned()))?;
        Ok(Topic { device, channel })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_round_trips_through_its_name() {
        let d = DeviceId::new("cilegon-ciwedus").expect("valid id");
        for c in Channel::ALL {
            let t = Topic::new(d.clone(), c);
            assert_eq!(Topic::parse(&t.name()), Ok(t));
        }
    }

    #[test]
    fn device_ids_with_mqtt_separators_or_wildcards_are_refused() {
        for bad in ["", "a/b", "a+b", "a#", "UPPER", "-lead", "sp ace"] {
            assert!(DeviceId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(DeviceId::new("x".repeat(65)).is_err());
        assert!(DeviceId::new("kel-01.cilegon_2").is_ok());
    }

    #[test]
    fn foreign_and_malformed_topics_are_typed_errors() {
        assert!(matches!(Topic::parse("other/x"), Err(TopicError::NotOurs(_))));
        assert!(matches!(Topic::parse("simpul/v1/dev/ok/nope"), Err(TopicError::UnknownChannel(_))));
        assert!(matches!(Topic::parse("simpul/v1/dev/BAD/readings"), Err(TopicError::BadDevice { .. })));
    }
}
