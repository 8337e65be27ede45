//! The embedded broker keeps retained messages in memory only: a fleet that restarts
//! publishes every device's latest desired config again (docs/design/fleet-config-distribution.md).

#![allow(clippy::unwrap_used)]

mod common;
mod config_peer;

use std::net::SocketAddr;

use common::{Fleet, fleet_config};
use config_peer::{ConfigPeer, put_device_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fleet_restart_with_the_embedded_broker_the_retained_desired_config_is_published_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fleet_config(0, dir.path());
    config.mqtt.broker = None;
    // The fleet's identity at the embedded broker's ACL (`broker.acl.fleet_identities`).
    config.mqtt.client_id = simpul_fleet::broker::acl::FLEET_IDENTITY.to_owned();
    config.broker.listen = SocketAddr::from(([127, 0, 0, 1], 0));

    let fleet = Fleet::start(config.clone()).await;
    assert_eq!(put_device_config(&fleet, "kel-r", "[log]\nlevel = \"debug\"\n", "one").await, 1);
    assert_eq!(put_device_config(&fleet, "kel-r", "[log]\nlevel = \"warn\"\n", "two").await, 2);
    fleet.stop().await;

    let fleet = Fleet::start(config).await;
    let broker = fleet.running.as_ref().unwrap().broker_addr.expect("the embedded broker runs");
    // A device that connects to the new broker hears the retained latest version.
    let mut device = ConfigPeer::connect(broker, "kel-r").await;
    let heard = device.next().await;
    assert_eq!(heard.desired.version, 2);
    assert!(heard.desired.toml.contains("warn"), "{}", heard.desired.toml);
    fleet.stop().await;
}
