//! Desired configs the agent refuses: a typo (with its file and line), a change that
//! needs a restart, a payload that is not a desired config. Nothing changes.

mod remote_config_support;
mod uplink_support;

use std::sync::Arc;

use remote_config_support::{Agent, Fleet, Site};
use simpul_protocol::control::ConfigState;
use simpul_tests::Mosquitto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_config_with_a_typo_is_rejected_with_its_file_and_line_and_nothing_changes() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let site = Site::new(broker.port());
    let mut fleet = Fleet::start(broker.port()).await;
    let agent = Agent::start(&site).await;
    let keep = agent.sensor("keep").expect("the local sensor runs");

    fleet.desire(1, "[sensors.bad]\nkind = \"simulated\"\nintervall = \"10ms\"\n").await;
    let (report, _) = fleet.report(1).await;
    assert_eq!(report.state, ConfigState::Rejected);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("90-fleet.toml:3: sensors.bad.intervall: unknown field"), "{error}");
    assert_eq!(agent.sensor_ids(), ["keep"]);
    assert!(agent.sensor("keep").is_some_and(|k| Arc::ptr_eq(&k, &keep)));
    assert_eq!(Site::read(&site.fleet_file()), None, "a rejected config is not written");

    fleet.desire(2, "[buffer]\npath = \"/tmp/elsewhere.db\"\n").await;
    let (report, _) = fleet.report(2).await;
    assert_eq!(report.state, ConfigState::Rejected);
    assert!(report.error.as_deref().is_some_and(|e| e.contains("[buffer] need a restart")), "{report:?}");
    assert_eq!(Site::read(&site.fleet_file()), None);

    fleet.publish_desired(br#"{"version": 3}"#.to_vec()).await;
    let (report, _) = fleet.report(3).await;
    assert_eq!(report.state, ConfigState::Rejected);
    assert!(report.error.as_deref().is_some_and(|e| e.contains("missing field `toml`")), "{report:?}");
    let remote = agent.observed.remote.clone().expect("remote config runs");
    assert_eq!((remote.borrow().malformed, remote.borrow().running), (1, None));
    assert_eq!(agent.sensor_ids(), ["keep"]);
    agent.stop().await;
}
