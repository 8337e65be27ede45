//! A desired config that cuts the agent off from the fleet is rolled back by the agent on
//! its own, and the fleet hears about it once the link is back.

mod remote_config_support;
mod uplink_support;

use remote_config_support::{Agent, Fleet, Site};
use simpul_protocol::control::{ConfigState, Event};
use simpul_tests::Mosquitto;
use uplink_support::within;

const ADD: &str = "[sensors.added]\nkind = \"simulated\"\ninterval = \"10ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_config_that_cuts_the_link_is_rolled_back_and_reported_once_connected_again() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let site = Site::new(broker.port());
    let mut fleet = Fleet::start(broker.port()).await;
    let agent = Agent::start(&site).await;
    fleet.desire(1, ADD).await;
    assert_eq!(fleet.report(1).await.0.state, ConfigState::Applied);

    // Version 2 points the uplink at a dead port: no CONNACK within 2s, so back to 1.
    let dead = "[uplink]\nbroker = \"127.0.0.1:1\"\n";
    fleet.desire(2, dead).await;
    let (report, _) = fleet.report(2).await;
    assert_eq!(report.state, ConfigState::RolledBack);
    assert!(report.error.as_deref().is_some_and(|e| e.contains("no broker connection within 2s")), "{report:?}");
    match fleet.rolled_back_event().await {
        Event::ConfigRolledBack { version, running, reason } => {
            assert_eq!((version, running), (2, Some(1)));
            assert!(reason.contains("2s"), "{reason}");
        }
        other => panic!("not a rollback event: {other:?}"),
    }
    let uplink = agent.observed.uplink.clone().expect("uplink");
    within("the link is back", uplink.wait_for(|s| s.connected)).await;
    let remote = agent.observed.remote.clone().expect("remote config runs");
    assert_eq!((remote.borrow().running, remote.borrow().handled), (Some(1), Some(2)));
    assert_eq!(agent.sensor_ids(), ["added", "keep"]);
    let file = Site::read(&site.fleet_file()).expect("90-fleet.toml");
    assert!(file.starts_with("# simpul-fleet version=1 handled=2 trial=false") && file.ends_with(ADD), "{file}");
    let prev = Site::read(&site.prev_file()).expect("90-fleet.toml.prev");
    assert!(prev.ends_with(ADD), "{prev}");

    // The retained desired 2 is not applied again, after a restart either.
    agent.stop().await;
    let agent = Agent::start(&site).await;
    let uplink = agent.observed.uplink.clone().expect("uplink");
    within("the link is up", uplink.wait_for(|s| s.connected)).await;
    let remote = agent.observed.remote.clone().expect("remote config runs");
    assert_eq!((remote.borrow().running, remote.borrow().trial), (Some(1), None));
    assert_eq!(agent.sensor_ids(), ["added", "keep"]);
    agent.stop().await;
}
