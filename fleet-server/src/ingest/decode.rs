//! Turning an MQTT publish into an [`Inbound`]: decode, never panic, and keep what did
//! not decode as a [`Inbound::Malformed`] so it is counted and recorded.

use rumqttc::Publish;
use simpul_protocol::control::{Event, Status};
use simpul_protocol::{Channel, ControlMessage, ReadingBatch, Topic};

use crate::store::Inbound;

/// What a publish is to ingest.
#[derive(Debug)]
pub enum Decoded {
    /// To commit (and ack after the commit).
    Commit(Inbound),
    /// Nothing to store (a topic or event this fleet does not use); acked at once.
    Ignore(String),
}

/// Decodes one publish.
pub fn decode(publish: &Publish) -> Decoded {
    let topic = match Topic::parse(&publish.topic) {
        Ok(t) => t,
        Err(e) => return Decoded::Ignore(format!("not a device topic: {e}")),
    };
    let device = topic.device;
    let malformed = |channel: &'static str, error: String| {
        tracing::warn!(%device, channel, bytes = publish.payload.len(), %error, "malformed payload");
        Decoded::Commit(Inbound::Malformed { device: device.clone(), channel, error, bytes: publish.payload.len() })
    };
    match topic.channel {
        Channel::Readings => match ReadingBatch::decode(&publish.payload) {
            Ok(batch) => Decoded::Commit(Inbound::Readings { device, batch }),
            Err(e) => malformed("readings", e.to_string()),
        },
        Channel::Events => match Event::from_json(&publish.payload) {
            Ok(Event::ClockSynced { boot_id, offset_ms, .. }) => {
                Decoded::Commit(Inbound::ClockSynced { device, boot_id, offset_ms })
            }
            Ok(other) => Decoded::Ignore(format!("event not used by ingest: {other:?}")),
            Err(e) => malformed("events", e.to_string()),
        },
        Channel::Status => match Status::from_json(&publish.payload) {
            Ok(s) => Decoded::Commit(Inbound::Status { device, online: s.online }),
            Err(e) => malformed("status", e.to_string()),
        },
        other => Decoded::Ignore(format!("channel {other:?} is not ingested")),
    }
}
