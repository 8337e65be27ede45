//! Test peers for the remote config tests (`tests/remote_config_*.rs`): the whole agent
//! run from a config file in a temp dir against a real Mosquitto, and a fake fleet that
//! publishes the desired config and collects what the agent reports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use simpul_agent::buffer::WriterSummary;
use simpul_agent::run::{Observed, RunError, RunOptions};
use simpul_agent::sensor::SensorStats;
use simpul_protocol::control::{DesiredConfig, Event as ControlEvent, Heartbeat, ReportedConfig};
use simpul_protocol::{Channel, ControlMessage, DeviceId, Topic};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::uplink_support::{device, synced_clock, within};

/// What the fleet saw from the agent.
#[derive(Debug)]
pub enum Seen {
    Reported(ReportedConfig, bool),
    Event(ControlEvent),
    Heartbeat(Box<Heartbeat>),
}

/// A fake fleet: publishes desired configs retained, collects reports and events.
#[derive(Debug)]
pub struct Fleet {
    client: AsyncClient,
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

impl Fleet {
    pub async fn start(port: u16) -> Fleet {
        let mut o = MqttOptions::new("fake-fleet", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(o, 16);
        let (tx, seen) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let reported = topic(Channel::ConfigReported);
        let events = topic(Channel::Events);
        let heartbeats = topic(Channel::Heartbeat);
        let sub = client.clone();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.subscribe(reported.clone(), QoS::AtLeastOnce).await;
                        let _ = sub.subscribe(events.clone(), QoS::AtLeastOnce).await;
                        let _ = sub.subscribe(heartbeats.clone(), QoS::AtMostOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = subscribed_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let seen = if p.topic == reported {
                            ReportedConfig::from_json(&p.payload).ok().map(|r| Seen::Reported(r, p.retain))
                        } else if p.topic == heartbeats {
                            Heartbeat::from_json(&p.payload).ok().map(|h| Seen::Heartbeat(Box::new(h)))
                        } else {
                            ControlEvent::from_json(&p.payload).ok().map(Seen::Event)
                        };
                        if let Some(s) = seen {
                            if tx.send(s).is_err() {
                                break;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        within("the fleet subscribed", subscribed).await.expect("subscribed");
        Fleet { client, seen }
    }

    /// Publishes a desired config retained at QoS 1, as the fleet does.
    pub async fn desire(&self, version: u64, toml: &str) {
        let json = DesiredConfig { version, toml: toml.to_owned() }.to_json().expect("json");
        self.publish_desired(json).await;
    }

    /// Publishes any payload on the desired-config topic.
    pub async fn publish_desired(&self, payload: Vec<u8>) {
        self.client.publish(topic(Channel::ConfigDesired), QoS::AtLeastOnce, true, payload).await.expect("publish");
    }

    /// The next report about `version` (earlier ones, retained ones of a previous run
    /// included, are skipped).
    pub async fn report(&mut self, version: u64) -> (ReportedConfig, bool) {
        within("a reported config", async {
            loop {
                if let Some(Seen::Reported(r, retain)) = self.seen.recv().await {
                    if r.version == version {
                        return (r, retain);
                    }
                }
            }
        })
        .await
    }

    /// The next heartbeat for which `ok` holds.
    pub async fn heartbeat(&mut self, ok: impl Fn(&Heartbeat) -> bool) -> Heartbeat {
        within("a heartbeat", async {
            loop {
                if let Some(Seen::Heartbeat(h)) = self.seen.recv().await {
                    if ok(&h) {
                        return *h;
                    }
                }
            }
        })
        .await
    }

    /// The next event of the config kind.
    pub async fn rolled_back_event(&mut self) -> ControlEvent {
        within("a config_rolled_back event", async {
            loop {
                if let Some(Seen::Event(e @ ControlEvent::ConfigRolledBack { .. })) = self.seen.recv().await {
                    return e;
                }
            }
        })
        .await
    }
}

fn topic(channel: Channel) -> String {
    Topic::new(device(), channel).name()
}

/// The agent's config folder: `agent.toml` and `agent.d/`.
#[derive(Debug)]
pub struct Site {
    pub dir: tempfile::TempDir,
    pub main: PathBuf,
}

impl Site {
    /// `agent.toml` for a broker on `port`, one simulated sensor `keep`, rollback after 2s.
    pub fn new(port: u16) -> Site {
        Site::with(port, "")
    }

    /// [`Site::new`] with `extra` TOML (whole tables) appended.
    pub fn with(port: u16, extra: &str) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let main = dir.path().join("agent.toml");
        let text = format!(
            "[device]\nid = \"{}\"\n[buffer]\npath = {:?}\nflush_interval = \"50ms\"\n\
             [uplink]\nenabled = true\nbroker = \"127.0.0.1:{port}\"\nkeepalive = \"5s\"\nbatch_interval = \"50ms\"\n\
             reconnect_min = \"50ms\"\nreconnect_max = \"500ms\"\n\
             [remote_config]\nrollback_after = \"2s\"\n\
             [sensors.keep]\nkind = \"simulated\"\ninterval = \"10ms\"\n{extra}",
            device(),
            dir.path().join("buffer.db").display().to_string(),
        );
        std::fs::write(&main, text).expect("write agent.toml");
        std::fs::create_dir_all(dir.path().join("agent.d")).expect("mkdir agent.d");
        Site { dir, main }
    }

    pub fn fleet_file(&self) -> PathBuf {
        self.dir.path().join("agent.d/90-fleet.toml")
    }

    pub fn prev_file(&self) -> PathBuf {
        self.dir.path().join("agent.d/90-fleet.toml.prev")
    }

    /// The text of `path`, `None` when it does not exist.
    pub fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    pub observed: Observed,
    pub shutdown: CancellationToken,
    task: JoinHandle<Result<WriterSummary, RunError>>,
}

impl Agent {
    /// Loads the site's config as the binary does and runs the agent.
    pub async fn start(site: &Site) -> Agent {
        let (config, _) = simpul_agent::config::load(&site.main).expect("config");
        let (tx, rx) = oneshot::channel();
        let opts =
            RunOptions { config_file: Some(site.main.clone()), started: Some(tx), ..RunOptions::new(synced_clock()) };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(simpul_agent::run::run_with(config, opts, shutdown.clone()));
        let observed = within("the agent started", rx).await.expect("started");
        Agent { observed, shutdown, task }
    }

    pub fn device() -> DeviceId {
        device()
    }

    /// The running sensors now.
    pub fn sensor(&self, id: &str) -> Option<Arc<SensorStats>> {
        self.observed.sensors.stats().get(id).cloned()
    }

    pub fn sensor_ids(&self) -> Vec<String> {
        self.observed.sensors.ids()
    }

    /// Waits until `stats` counts more than `frames` good frames.
    pub async fn frames_pass(stats: &SensorStats, frames: u64) -> u64 {
        within("the sensor reads on", async {
            loop {
                let now = stats.snapshot().frames_ok;
                if now > frames {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        within("the agent stops", self.task).await.expect("join").expect("run");
    }
}
