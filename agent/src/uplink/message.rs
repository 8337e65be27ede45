//! QoS 1 messages handed to the uplink by other tasks (the remote config's reports and
//! events): kept until the broker PUBACKs them, published again on the next connection
//! if it never did, so a report made while the link is down goes out once it is back.

use simpul_protocol::{Channel, ControlError, ControlMessage};

/// A control message published QoS 1 on the device's `channel`, retained or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// Retained on the broker (the reported config), or not (an event).
    pub retain: bool,
}

impl Message {
    /// `message` as JSON on its own channel.
    pub fn of<M: ControlMessage>(message: &M, retain: bool) -> Result<Message, ControlError> {
        Ok(Message { channel: M::CHANNEL, payload: message.to_json()?, retain })
    }
}
