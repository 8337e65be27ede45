//! The one contract both sides of Simpul compile against.
//!
//! - [`topic`]: MQTT topic names, versioned (`simpul/v1/dev/{device}/...`).
//! - [`reading`]: a sensor reading and the time it was taken.
//! - [`batch`]: the compact binary encoding of a batch of readings (the hot path).
//! - [`control`]: the control-plane messages (ack watermark, heartbeat, config, events).
//! - [`camera`]: the camera tunnel between an agent and the fleet.
//!
//! Protocol version: [`PROTOCOL_VERSION`] names the topic tree (`v1`); the batch
//! encoding carries its own format byte so that a newer fleet still reads older agents.

pub mod batch;
pub mod camera;
pub mod control;
pub mod enrol;
pub mod reading;
pub mod release;
pub mod topic;

/// The version of the topic tree and message set, as it appears in topic names (`v1`).
pub const PROTOCOL_VERSION: u8 = 1;

pub use batch::{DecodeError, ReadingBatch, SeqRange};
pub use control::{ControlError, ControlMessage};
pub use reading::{BootId, Reading, ReadingTime};
pub use topic::{Channel, DeviceId, DeviceIdError, Topic};
