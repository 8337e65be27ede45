//! simpul-fleet: the fleet server.
//!
//! - [`broker`]: the embedded MQTT broker and its per-device topic rule (docs/design/broker.md).
//! - [`ingest`]: subscribe (shared subscription), decode, commit in batches, ack after commit.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation.
//! - [`watermark`]: the per-device contiguous-seq watermark (pure logic).
//! - [`api`]: the platform HTTP API (cursor reads, device summaries).
//! - [`auth`]: operators' users, API tokens, sessions and roles (docs/design/auth.md).
//! - [`webhook`]: push delivery to the central platform.
//! - [`health`]: online/offline and alerts (docs/design/fleet-health.md); [`metrics`]: `GET /metrics`.
//! - [`config_merge`], [`config_publisher`]: desired device config, merged and sent retained
//!   (docs/design/fleet-config-distribution.md).
//! - [`cameras`]: the camera relay: tunnels from the boxes, fan-out, RTSP for viewers,
//!   snapshots (docs/design/cameras.md).
//! - [`config`], [`cli`], [`run`]: `run(config, shutdown)` and the thin binary around it.
//!
//! The design is in docs/design/fleet-ingest.md.

pub mod api;
pub mod auth;
pub mod broker;
pub mod cameras;
pub mod cli;
pub mod config;
pub mod config_merge;
pub mod config_publisher;
pub mod dashboard;
pub mod exit;
pub mod health;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod proposal;
pub mod releases;
pub mod rollouts;
pub mod run;
pub mod store;
pub mod trust;
pub mod watermark;
pub mod webhook;

pub use run::{Running, run, start, start_with_store};
pub use simpul_protocol as protocol;

/// The topic filter the fleet subscribes to for every device's readings.
pub fn readings_filter() -> String {
    protocol::Topic::all_devices(protocol::topic::Channel::Readings)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fleet_listens_to_every_devices_readings() {
        assert_eq!(super::readings_filter(), "simpul/v1/dev/+/readings");
    }
}
