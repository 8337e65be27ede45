//! Rollouts in waves (docs/design/updates.md): a release goes to a few canaries, then to
//! growing shares of the devices, a wave at a time, each opening only after the one
//! before ran the new version healthily through a gate; too many failures pause it.
//!
//! The state lives in the fleet database ([`RolloutStore`]); [`engine::step`] is a pure
//! function of it that the store runs in one transaction, and [`task`] runs it for every
//! active rollout on a tick, so any fleet server may drive a rollout and a restart loses
//! nothing.

pub mod config;
pub mod engine;
pub mod plan;
pub mod spec;
pub mod state;
pub mod store;
pub mod task;
pub mod txn;

pub use config::RolloutsConfig;
pub use spec::RolloutSpec;
pub use state::{DeviceState, Observed, Rollout, RolloutDevice, RolloutState, WaveProgress};
pub use store::{Changed, Control, ControlRefused, RolloutStore, StartRefused};
