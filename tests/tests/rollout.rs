//! Rollouts in waves with 20 real agent processes (docs/design/updates.md): a good
//! release reaches every box a wave at a time, each wave opening only after the one
//! before passed its health gate; a release that crashes on start stops at the canaries,
//! which roll back by themselves, and the rollout pauses; releases the boxes refuse
//! (signed by a key they do not pin, served unsigned) pause it the same way.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use simpul_protocol::release::sha256_hex;
use simpul_tests::releases::{CRASHING, ReleaseFleet, ReleaseOps, TARGET, agent_binary, agent_release, run_ok};
use simpul_tests::system::{Agent, AgentSpec, Consumer, Enrolment, Fleet, poll_json, tail};

const BOXES: usize = 20;

/// How long a whole rollout may take here (debug binaries, 2 cores, 20 trials).
const ROLLOUT_PATIENCE: Duration = Duration::from_secs(150);

struct World {
    dir: tempfile::TempDir,
    fleet: Fleet,
    ops: String,
    keys: ReleaseOps,
    agents: Vec<(Agent, PathBuf)>,
    http: reqwest::Client,
}

fn device(i: usize) -> String {
    format!("kel-{i:02}")
}

impl World {
    /// A fleet whose engine ticks fast, and 20 enrolled agents, each on its own copy of
    /// the agent binary, heartbeating every second.
    async fn start() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let tick = "[rollouts]\ntick = \"200ms\"\n";
        let ReleaseFleet { keys, fleet, enrolment, broker, ops } = ReleaseFleet::start(dir.path(), tick).await;
        let agents = (0..BOXES).map(|i| start_agent(dir.path(), &keys, &enrolment, broker, &device(i))).collect();
        let w = World { dir, fleet, ops, keys, agents, http: reqwest::Client::new() };
        w.until("every box online", "/api/v1/devices", |v| v["online"].as_u64() == Some(BOXES as u64)).await;
        w
    }

    fn publish(&self, version: &str, bytes: &[u8], key: &str) {
        self.keys.publish(&self.fleet, &self.ops, TARGET, version, bytes, key);
    }

    /// `simpul-fleet rollouts ARGS` as ops; its stdout.
    fn rollouts(&self, args: &[&str]) -> String {
        let mut all = vec!["rollouts"];
        all.extend_from_slice(args);
        run_ok(self.fleet.cli(&all, Some(&self.ops)), &format!("rollouts {args:?}"))
    }

    /// GETs `path` until `done` holds for its JSON.
    async fn until(&self, what: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let url = format!("http://{}{path}", self.fleet.api);
        poll_json(&self.http, &url, &self.fleet.token, ROLLOUT_PATIENCE, what, done, || self.logs()).await
    }

    /// Waits until rollout 1's state is `state`.
    async fn rollout_reaches(&self, id: u64, state: &str) -> Value {
        self.until(&format!("rollout {id} {state}"), &format!("/api/v1/rollouts/{id}"), |v| v["state"] == state).await
    }

    /// The agents' digests: what each runs from its path.
    fn digests(&self) -> Vec<String> {
        self.agents.iter().map(|(_, bin)| sha256_hex(&std::fs::read(bin).expect("binary"))).collect()
    }

    /// The fleet's log and the tail of each agent's, for a failure.
    fn logs(&self) -> String {
        let fleet = std::fs::read_to_string(self.dir.path().join("fleet").join("fleet.log")).unwrap_or_default();
        let mut out = format!("--- fleet (last 4000 bytes)\n{}\n", tail(&fleet, 4000));
        for (a, _) in &self.agents {
            out.push_str(&format!("--- {} (last 600 bytes)\n{}\n", a.spec.device, tail(&a.log(), 600)));
        }
        out
    }
}

fn start_agent(
    dir: &Path,
    keys: &ReleaseOps,
    enrolment: &Enrolment,
    broker: std::net::SocketAddr,
    d: &str,
) -> (Agent, PathBuf) {
    let bin_dir = dir.join("bin").join(d);
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    let binary = bin_dir.join("simpul-agent");
    std::fs::write(&binary, agent_binary(dir)).expect("copy the agent");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let extra = format!("{}[health]\nheartbeat_interval = \"1s\"\n", keys.agent_section(&dir.join("update").join(d)));
    let spec = AgentSpec {
        enrolment: Some(enrolment.clone()),
        trust_extra: extra,
        binary: Some(binary.clone()),
        ..AgentSpec::new(d, 1, Duration::from_millis(500))
    };
    (Agent::start(dir, broker, spec).expect("agent"), binary)
}

/// The rollout's devices in `state`.
fn devices_in(rollout: &Value, state: &str) -> Vec<Value> {
    rollout["devices"].as_array().into_iter().flatten().filter(|d| d["state"] == state).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_release_rolls_out_wave_by_wave_to_all_twenty_boxes() {
    let w = World::start().await;
    let release = agent_release(w.dir.path(), "9.0.0");
    w.publish("9.0.0", &release, "release.key");

    let started = w.rollouts(&["start", "9.0.0", "--canary", "2", "--waves", "25,50,100", "--gate", "1s"]);
    assert!(started.contains("rollout 1 of 9.0.0: running, wave 0"), "{started}");
    let done = w.rollout_reaches(1, "done").await;

    // 2 canaries, then up to 25 %, 50 %, all: waves of 2, 3, 5 and 10, every box succeeded.
    let sizes: Vec<u64> =
        done["progress"].as_array().into_iter().flatten().filter_map(|p| p["devices"].as_u64()).collect();
    assert_eq!(sizes, vec![2, 3, 5, 10], "{done:#}");
    assert_eq!(devices_in(&done, "succeeded").len(), BOXES, "{done:#}");
    assert_eq!(done["reason"], "20 succeeded");
    // Each wave was ordered only after every box of the one before passed its gate.
    let devices = done["devices"].as_array().cloned().unwrap_or_default();
    for wave in 1..4u64 {
        let in_wave = |k: u64| devices.iter().filter(move |d| d["wave"].as_u64() == Some(k));
        let opened = in_wave(wave).filter_map(|d| d["ordered_ms"].as_i64()).min().unwrap_or(0);
        let passed = in_wave(wave - 1).filter_map(|d| d["since_ms"].as_i64()).max().unwrap_or(i64::MAX);
        assert!(opened >= passed, "wave {wave} opened at {opened}, before wave {} passed at {passed}", wave - 1);
    }
    // Every box runs the release from its own path, and readings keep coming from each.
    assert!(w.digests().iter().all(|d| *d == sha256_hex(&release)), "{}", w.logs());
    let mut consumer = Consumer::new(&w.fleet);
    consumer.poll().await;
    let before: Vec<usize> = (0..BOXES).map(|i| consumer.count(&device(i))).collect();
    for (i, n) in before.iter().enumerate() {
        consumer.wait_for(&device(i), n + 2).await;
    }
    let list = w.rollouts(&["list"]);
    assert!(list.contains("done") && list.contains("9.0.0"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_crashes_on_start_stops_at_the_canaries_which_roll_back_by_themselves_and_the_rollout_pauses() {
    let w = World::start().await;
    let originals = w.digests();
    w.publish("9.1.0", CRASHING, "release.key");
    w.rollouts(&["start", "9.1.0", "--canary", "2", "--gate", "1s"]);

    let paused = w.rollout_reaches(1, "paused").await;
    assert!(paused["reason"].as_str().unwrap_or_default().contains("failed or rolled back"), "{paused:#}");
    // Both canaries try it and go back to the old binary by themselves.
    let both =
        w.until("both canaries rolled back", "/api/v1/rollouts/1", |v| devices_in(v, "rolled_back").len() == 2).await;
    for d in devices_in(&both, "rolled_back") {
        assert_eq!(d["wave"], 0, "{d}");
        assert!(d["detail"].as_str().unwrap_or_default().contains("exited 3 times"), "{d}");
    }
    assert_eq!(devices_in(&both, "pending").len(), BOXES - 2, "nobody past the canaries was ordered");
    assert_eq!(w.digests(), originals, "every box runs the binary it had");
    let db = rusqlite::Connection::open(w.fleet.db()).expect("fleet db");
    let ordered: i64 = db.query_row("SELECT COUNT(*) FROM device_releases", [], |r| r.get(0)).expect("count");
    assert_eq!(ordered, 2, "only the canaries were ever told to update");

    // The canaries carry on with the old version: readings still arrive.
    let mut consumer = Consumer::new(&w.fleet);
    consumer.poll().await;
    for d in devices_in(&both, "rolled_back") {
        let name = d["device"].as_str().unwrap_or_default().to_owned();
        let n = consumer.count(&name);
        consumer.wait_for(&name, n + 2).await;
    }

    // Ops abort it; it opens nothing more, and a new rollout may start.
    let aborted = w.rollouts(&["abort", "1"]);
    assert!(aborted.contains("aborted"), "{aborted}");
    let again = w.fleet.cli(&["rollouts", "resume", "1"], Some(&w.ops)).expect("cli");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("aborted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_the_boxes_refuse_signed_by_another_key_or_served_unsigned_pause_the_rollout_at_the_canaries() {
    let w = World::start().await;
    let originals = w.digests();

    // The fleet accepts both keys; the boxes pin only release.key.
    w.publish("9.2.0", &agent_release(w.dir.path(), "9.2.0"), "other.key");
    w.rollouts(&["start", "9.2.0", "--canary", "2"]);
    let paused = w.until("both canaries refused", "/api/v1/rollouts/1", |v| devices_in(v, "failed").len() == 2).await;
    assert_eq!(paused["state"], "paused", "{paused:#}");
    for d in devices_in(&paused, "failed") {
        assert!(d["detail"].as_str().unwrap_or_default().contains("does not trust"), "{d}");
    }
    w.rollouts(&["abort", "1"]);

    // An unsigned binary is refused by the fleet itself...
    let unsigned = w.dir.path().join("ops").join("unsigned-agent");
    std::fs::write(&unsigned, agent_release(w.dir.path(), "9.3.0")).expect("write");
    let out = w.fleet.cli(&["releases", "publish", &unsigned.to_string_lossy()], Some(&w.ops)).expect("cli");
    assert!(!out.status.success(), "an unsigned release must not be published");
    // ...and one a tampered fleet database serves unsigned, by every box.
    w.publish("9.3.0", &agent_release(w.dir.path(), "9.3.0"), "release.key");
    let db = rusqlite::Connection::open(w.fleet.db()).expect("fleet db");
    db.execute("UPDATE releases SET signature = '' WHERE version = '9.3.0'", []).expect("tamper");
    w.rollouts(&["start", "9.3.0", "--canary", "2"]);
    let paused = w.until("both canaries refused", "/api/v1/rollouts/2", |v| devices_in(v, "failed").len() == 2).await;
    assert_eq!(paused["state"], "paused", "{paused:#}");
    for d in devices_in(&paused, "failed") {
        assert!(d["detail"].as_str().unwrap_or_default().contains("not signed"), "{d}");
    }
    assert_eq!(devices_in(&paused, "pending").len(), BOXES - 2);
    assert_eq!(w.digests(), originals, "nothing ran");
}
