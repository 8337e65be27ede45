//! Turning an MQTT publish into an [`Inbound`]: decode, never panic, and keep what did
//! not decode as a [`Inbound::Malformed`] so it is counted and recorded.

use rumqttc::Publish;
use simpul_protocol::control::{Event, Heartbeat, ReportedConfig, Status};
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
pub fn decode(publish: &Publish, received_ms: i64) -> Decoded {
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
            Ok(event) => Decoded::Commit(Inbound::Event { device, event }),
            Err(e) => malformed("events", e.to_string()),
        },
        Channel::Status => match Status::from_json(&publish.payload) {
            Ok(s) => Decoded::Commit(Inbound::Status { device, online: s.online, received_ms }),
            Err(e) => malformed("status", e.to_string()),
        },
        Channel::Heartbeat => match Heartbeat::from_json(&publish.payload) {
            Ok(hb) => Decoded::Commit(Inbound::Heartbeat { device, heartbeat: Box::new(hb) }),
            Err(e) => malformed("heartbeat", e.to_string()),
        },
        Channel::ConfigReported => match ReportedConfig::from_json(&publish.payload) {
            Ok(report) => Decoded::Commit(Inbound::ConfigReported { device, report }),
            Err(e) => malformed("config/reported", e.to_string()),
        },
        other => Decoded::Ignore(format!("channel {other:?} is not ingested")),
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::QoS;

    use super::*;

    fn publish(channel: &str, payload: &[u8]) -> Publish {
        Publish::new(format!("simpul/v1/dev/kel-a/{channel}"), QoS::AtMostOnce, payload.to_vec())
    }

    #[test]
    fn a_heartbeat_decodes_and_a_broken_one_is_malformed() {
        let ok = decode(&publish("heartbeat", br#"{"version":"1.0.0","uptime_s":5,"buffer_depth":3}"#), 1);
        assert!(
            matches!(ok, Decoded::Commit(Inbound::Heartbeat { ref heartbeat, .. }) if heartbeat.buffer_depth == Some(3)),
            "{ok:?}"
        );
        let bad = decode(&publish("heartbeat", b"{\"uptime_s\":\"soon\"}"), 1);
        assert!(matches!(bad, Decoded::Commit(Inbound::Malformed { channel: "heartbeat", .. })), "{bad:?}");
    }

    #[test]
    fn events_other_than_clock_synced_are_committed_as_events() {
        let ev = decode(&publish("events", br#"{"event":"sensor_connected","sensor":"river"}"#), 1);
        assert!(matches!(ev, Decoded::Commit(Inbound::Event { event: Event::SensorConnected { .. }, .. })), "{ev:?}");
        let unknown = decode(&publish("events", br#"{"event":"from_the_future","x":1}"#), 1);
        assert!(matches!(unknown, Decoded::Commit(Inbound::Event { event: Event::Unknown, .. })), "{unknown:?}");
    }
}
