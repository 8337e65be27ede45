//! Desired config from the fleet changes sensors one by one: the whole agent, run from a
//! config file, against a real Mosquitto and a fake fleet.

mod remote_config_support;
mod uplink_support;

use std::sync::Arc;
use std::time::Duration;

use remote_config_support::{Agent, Fleet, Site};
use simpul_protocol::control::ConfigState;
use simpul_tests::Mosquitto;
use simpul_tests::mosquitto::{free_port, wait_until_accepting};
use uplink_support::within;

const ADD: &str = "[sensors.added]\nkind = \"simulated\"\ninterval = \"10ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_then_removing_a_sensor_touches_only_that_sensor_and_survives_a_restart() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let site = Site::new(broker.port());
    let mut fleet = Fleet::start(broker.port()).await;
    let agent = Agent::start(&site).await;
    let keep = agent.sensor("keep").expect("the local sensor runs");
    let frames = Agent::frames_pass(&keep, 0).await;

    // Version 1 adds a sensor: only it starts; `keep` keeps its task and counters.
    fleet.desire(1, ADD).await;
    let (report, _) = fleet.report(1).await;
    assert_eq!((report.state, report.error.as_deref()), (ConfigState::Applied, None));
    assert_eq!(agent.sensor_ids(), ["added", "keep"]);
    assert!(agent.sensor("keep").is_some_and(|k| Arc::ptr_eq(&k, &keep)), "keep's counters were replaced");
    let added = agent.sensor("added").expect("the new sensor runs");
    Agent::frames_pass(&added, 0).await;
    Agent::frames_pass(&keep, frames).await;
    let file = Site::read(&site.fleet_file()).expect("90-fleet.toml written");
    assert!(file.starts_with("# simpul-fleet version=1 handled=1 trial=false"), "{file}");
    assert!(file.ends_with(ADD), "{file}");
    assert_eq!(Site::read(&site.prev_file()), None, "there was no fleet drop-in before");
    assert_eq!(agent.observed.remote.as_ref().map(|r| r.borrow().running), Some(Some(1)));

    // A restart runs version 1 again, and the retained desired 1 is not applied again.
    agent.stop().await;
    let agent = Agent::start(&site).await;
    assert_eq!(agent.sensor_ids(), ["added", "keep"]);
    let remote = agent.observed.remote.clone().expect("remote config runs");
    assert_eq!(remote.borrow().running, Some(1));
    within("the link is up", agent.observed.uplink.as_ref().expect("uplink").wait_for(|s| s.connected)).await;
    let keep = agent.sensor("keep").expect("keep runs");
    let added = agent.sensor("added").expect("added runs");
    let frames = Agent::frames_pass(&keep, 0).await;

    // Version 2 drops the fleet's sensor: only it stops.
    fleet.desire(2, "# no fleet sensors\n").await;
    let (report, _) = fleet.report(2).await;
    assert_eq!(report.state, ConfigState::Applied);
    assert_eq!(agent.sensor_ids(), ["keep"]);
    assert!(agent.sensor("keep").is_some_and(|k| Arc::ptr_eq(&k, &keep)), "keep's counters were replaced");
    // The removed sensor's task has ended: while `keep` reads 20 more frames, it reads none.
    let stopped_at = added.snapshot().frames_ok;
    Agent::frames_pass(&keep, frames + 20).await;
    assert_eq!(added.snapshot().frames_ok, stopped_at, "the removed sensor still reads");
    let file = Site::read(&site.fleet_file()).expect("90-fleet.toml");
    assert!(file.starts_with("# simpul-fleet version=2 handled=2 trial=false"), "{file}");
    let prev = Site::read(&site.prev_file()).expect("90-fleet.toml.prev kept");
    assert!(prev.starts_with("# simpul-fleet version=1 ") && prev.ends_with(ADD), "{prev}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_the_fleet_adds_shows_in_the_heartbeat_and_on_the_status_page_without_a_restart() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let page = free_port().expect("port");
    let extra = format!("[health]\nheartbeat_interval = \"1s\"\n[status_page]\nlisten = \"{page}\"\n");
    let site = Site::with(broker.port(), &extra);
    let mut fleet = Fleet::start(broker.port()).await;
    let agent = Agent::start(&site).await;
    wait_until_accepting(page, Duration::from_secs(20)).await.expect("the page listens");
    fleet.heartbeat(|h| h.sensors.contains_key("keep")).await;

    fleet.desire(1, ADD).await;
    let (report, _) = fleet.report(1).await;
    assert_eq!(report.state, ConfigState::Applied);
    let beat = fleet.heartbeat(|h| h.sensors.contains_key("added")).await;
    assert!(beat.sensors.contains_key("keep"), "{:?}", beat.sensors.keys());
    let status = within("the page lists the added sensor", async {
        loop {
            let body =
                reqwest::get(format!("http://{page}/status.json")).await.expect("GET").text().await.expect("body");
            let v: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
            let ids: Vec<String> = v["sensors"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["id"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if ids.iter().any(|i| i == "added") {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(status, ["added", "keep"]);

    // Taking it away again takes it off both.
    fleet.desire(2, "# no fleet sensors\n").await;
    fleet.report(2).await;
    let beat = fleet.heartbeat(|h| !h.sensors.contains_key("added")).await;
    assert!(beat.sensors.contains_key("keep"));
    agent.stop().await;
}
