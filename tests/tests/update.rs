//! Signed self-update with the real binaries (docs/design/updates.md): a box told to run a
//! release downloads it over mutual TLS, checks it against the key it pins, runs it on
//! trial under the old binary and keeps it once healthy; a release that crashes on start
//! is rolled back by the box itself; a release signed by a key the box does not pin, or
//! served unsigned, never runs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use simpul_protocol::release::sha256_hex;
use simpul_tests::releases::{CRASHING, ReleaseFleet, ReleaseOps, TARGET, agent_binary, run_ok};
use simpul_tests::system::{Agent, AgentSpec, Consumer, Fleet, PATIENCE};

const DEVICE: &str = "kel-update";

struct World {
    dir: tempfile::TempDir,
    fleet: Fleet,
    ops: String,
    keys: ReleaseOps,
    broker: std::net::SocketAddr,
    enrolment: simpul_tests::system::Enrolment,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let ReleaseFleet { keys, fleet, enrolment, broker, ops } = ReleaseFleet::start(dir.path(), "").await;
        World { dir, fleet, ops, keys, broker, enrolment }
    }

    /// Signs `bytes` as `version` with `key` (`release.key` or `other.key`) and publishes it.
    fn publish(&self, version: &str, bytes: &[u8], key: &str) {
        self.publish_for(TARGET, version, bytes, key);
    }

    /// [`World::publish`] for another target.
    fn publish_for(&self, target: &str, version: &str, bytes: &[u8], key: &str) {
        self.keys.publish(&self.fleet, &self.ops, target, version, bytes, key);
    }

    fn order(&self, version: &str) {
        run_ok(self.fleet.cli(&["devices", "update", DEVICE, version], Some(&self.ops)), "devices update");
    }

    /// An agent running from its own copy of the binary, pinning the release key.
    fn agent(&self) -> (Agent, PathBuf) {
        self.agent_with(Vec::new(), "1s")
    }

    /// [`World::agent`] with more environment (systemd's, for one test) and this
    /// heartbeat interval (a trial is healthy at its first heartbeat once connected).
    fn agent_with(&self, env: Vec<(String, String)>, heartbeat: &str) -> (Agent, PathBuf) {
        let bin_dir = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin_dir).expect("mkdir");
        let binary = bin_dir.join("simpul-agent");
        std::fs::write(&binary, agent_binary(self.dir.path())).expect("copy the agent");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let extra = format!(
            "{}[health]\nheartbeat_interval = \"{heartbeat}\"\n",
            self.keys.agent_section(&self.dir.path().join("update"))
        );
        let spec = AgentSpec {
            enrolment: Some(self.enrolment.clone()),
            trust_extra: extra,
            binary: Some(binary.clone()),
            env,
            ..AgentSpec::new(DEVICE, 1, Duration::from_millis(50))
        };
        (Agent::start(self.dir.path(), self.broker, spec).expect("agent"), binary)
    }

    /// Waits for the device's event of `kind` and returns it.
    async fn event(&self, kind: &str, agent: &Agent) -> serde_json::Value {
        let url = format!("http://{}/api/v1/devices/{DEVICE}/events", self.fleet.api);
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(resp) = http.get(&url).bearer_auth(&self.fleet.token).send().await {
                if let Ok(body) = resp.json::<serde_json::Value>().await {
                    let found = body["events"].as_array().into_iter().flatten().find(|e| e["kind"] == kind);
                    if let Some(e) = found {
                        return e.clone();
                    }
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no {kind} event\n{}", agent.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Waits until the agent's log holds what `holds` looks for (fails after [`PATIENCE`]).
async fn log_says(agent: &Agent, what: &str, holds: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = agent.log();
        if holds(&log) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {what} in the agent's log\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SHA-256 of the file at `path` (hex).
fn digest(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).expect("read"))
}

/// The agent binary stamped with `version`.
fn agent_release(w: &World, version: &str) -> Vec<u8> {
    simpul_tests::releases::agent_release(w.dir.path(), version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_release_is_tried_under_the_old_binary_then_kept_and_readings_keep_coming() {
    let w = World::start().await;
    let (agent, binary) = w.agent();
    let mut consumer = Consumer::new(&w.fleet);
    consumer.wait_for(DEVICE, 5).await;

    let release = agent_release(&w, "9.0.0");
    w.publish("9.0.0", &release, "release.key");
    w.order("9.0.0");

    let applied = w.event("update_applied", &agent).await;
    assert_eq!(applied["detail"]["to"], "9.0.0", "{applied}");
    assert_eq!(digest(&binary), sha256_hex(&release), "the new release is at the agent's path\n{}", agent.log());
    assert!(w.dir.path().join("update").join("agent.prev").is_file(), "the old binary is kept");
    assert!(agent.log().contains("passed its trial"), "committed by the supervisor:\n{}", agent.log());
    let before = consumer.count(DEVICE);
    consumer.wait_for(DEVICE, before + 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_crashes_on_start_is_rolled_back_by_the_box_itself() {
    let w = World::start().await;
    let (agent, binary) = w.agent();
    let original = std::fs::read(&binary).expect("binary");
    let mut consumer = Consumer::new(&w.fleet);
    consumer.wait_for(DEVICE, 5).await;

    w.publish("9.1.0", CRASHING, "release.key");
    w.order("9.1.0");

    let rolled = w.event("update_rolled_back", &agent).await;
    let reason = rolled["detail"]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("exited 3 times"), "{rolled}");
    assert_eq!(digest(&binary), sha256_hex(&original), "the old binary stayed at its path");
    let before = consumer.count(DEVICE);
    consumer.wait_for(DEVICE, before + 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_signed_by_a_key_the_box_does_not_pin_or_served_unsigned_never_runs() {
    let w = World::start().await;
    let (agent, binary) = w.agent();
    let original = std::fs::read(&binary).expect("binary");
    let mut consumer = Consumer::new(&w.fleet);
    consumer.wait_for(DEVICE, 5).await;

    // The fleet accepts both keys; the box pins only one.
    w.publish("9.2.0", &agent_release(&w, "9.2.0"), "other.key");
    w.order("9.2.0");
    let refused = w.event("update_refused", &agent).await;
    assert!(refused["detail"]["reason"].as_str().unwrap_or_default().contains("does not trust"), "{refused}");

    // A fleet whose database was tampered with serves a release with no signature.
    w.publish("9.3.0", &agent_release(&w, "9.3.0"), "release.key");
    let db = rusqlite::Connection::open(w.fleet.db()).expect("fleet db");
    db.execute("UPDATE releases SET signature = '' WHERE version = '9.3.0'", []).expect("tamper");
    w.order("9.3.0");
    log_says(&agent, "a refusal of the unsigned release", |log| log.contains("9.3.0") && log.contains("not signed"))
        .await;
    assert_eq!(digest(&binary), sha256_hex(&original), "neither ran");
    assert!(!w.dir.path().join("update").join("agent.new").exists(), "nothing staged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_waiting_for_a_release_it_cannot_fetch_takes_the_next_order_at_once() {
    let w = World::start().await;
    let (agent, binary) = w.agent();
    let mut consumer = Consumer::new(&w.fleet);
    consumer.wait_for(DEVICE, 5).await;

    // Published for the Pi only: this box (x86_64) gets a 404 and keeps trying.
    w.publish_for("aarch64-unknown-linux-gnu", "9.4.0", &agent_release(&w, "9.4.0"), "release.key");
    w.order("9.4.0");
    log_says(&agent, "a retry", |log| log.contains("cannot fetch the release yet")).await;

    // A newer order is taken without waiting out the retry.
    let release = agent_release(&w, "9.5.0");
    w.publish("9.5.0", &release, "release.key");
    w.order("9.5.0");
    let applied = w.event("update_applied", &agent).await;
    assert_eq!(applied["detail"]["to"], "9.5.0", "{applied}");
    assert_eq!(digest(&binary), sha256_hex(&release));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_the_trial_ends_the_box_cleanly_and_its_next_start_goes_back_to_the_old_release() {
    let w = World::start().await;
    // A trial lasts at least one heartbeat interval after it connects (4 s): time to stop
    // it midway, as `systemctl stop` would (SIGTERM to the main process).
    let (mut agent, binary) = w.agent_with(Vec::new(), "4s");
    let before = digest(&binary);
    let mut consumer = Consumer::new(&w.fleet);
    consumer.wait_for(DEVICE, 3).await;

    w.publish("9.0.0", &agent_release(&w, "9.0.0"), "release.key");
    w.order("9.0.0");
    log_says(&agent, "the trial's start", |l| l.contains("trial of the new release")).await;
    let code = agent.terminate().expect("SIGTERM");
    assert_eq!(code, Some(0), "a clean stop, not a restart into either binary\n{}", agent.log());
    assert!(agent.log().contains("stopped during the trial"), "{}", agent.log());
    assert_eq!(digest(&binary), before, "the old binary stays at its path");

    agent.restart(w.broker, true).expect("start the box again");
    let rolled = w.event("update_rolled_back", &agent).await;
    assert_eq!(rolled["detail"]["reason"], "the box restarted during the trial", "{rolled}");
    let held = consumer.count(DEVICE);
    consumer.wait_for(DEVICE, held + 3).await;
}

/// What a `Type=notify` unit's systemd hears: each datagram on the notify socket, with
/// when it came, handed over as it arrives.
struct NotifySocket {
    path: PathBuf,
    arrivals: tokio::sync::mpsc::UnboundedReceiver<(std::time::Instant, String)>,
    heard: Vec<(std::time::Instant, String)>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
        let (tx, arrivals) = tokio::sync::mpsc::unbounded_channel();
        // Ends with the test process, or when the test stops listening.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((std::time::Instant::now(), msg)).is_err() {
                    return;
                }
            }
        });
        NotifySocket { path, arrivals, heard: Vec::new() }
    }

    /// Everything heard up to and including the `n`th message holding `line`; `None` if it
    /// does not come within [`PATIENCE`].
    async fn until_nth(&mut self, n: usize, line: &str) -> Option<Vec<(std::time::Instant, String)>> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.heard.iter().filter(|(_, m)| m.lines().any(|l| l == line)).count() < n {
            let next = tokio::time::timeout_at(deadline, self.arrivals.recv()).await.ok().flatten()?;
            self.heard.push(next);
        }
        Some(self.heard.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_trial_keeps_systemds_watchdog_fed_and_only_the_main_process_speaks_to_systemd() {
    // As systemd starts the unit: WatchdogSec=2s, NotifyAccess=main.
    const WATCHDOG: Duration = Duration::from_secs(2);
    let w = World::start().await;
    let mut systemd = NotifySocket::bind(w.dir.path());
    let env = vec![
        ("NOTIFY_SOCKET".to_owned(), systemd.path.display().to_string()),
        ("WATCHDOG_USEC".to_owned(), WATCHDOG.as_micros().to_string()),
    ];
    // A trial is healthy at the first heartbeat after it connects: one heartbeat interval
    // (4 s) at least, longer than WatchdogSec, so a supervisor that did not ping would
    // leave systemd's watchdog hungry.
    let (agent, _binary) = w.agent_with(env, "4s");
    let mut consumer = Consumer::new(&w.fleet);
    consumer.wait_for(DEVICE, 3).await;

    let release = agent_release(&w, "9.0.0");
    w.publish("9.0.0", &release, "release.key");
    w.order("9.0.0");
    w.event("update_applied", &agent).await;
    // The committed release, exec'd under the same PID, says READY=1 once it serves.
    let Some(heard) = systemd.until_nth(2, "READY=1").await else {
        panic!("no second READY=1\n{:?}\n{}", systemd.heard, agent.log());
    };

    let readies: Vec<usize> =
        heard.iter().enumerate().filter(|(_, (_, m))| m.lines().any(|l| l == "READY=1")).map(|(i, _)| i).collect();
    assert_eq!(
        readies.len(),
        2,
        "READY=1 from the old binary and from the committed one, none from the trial child: {heard:?}"
    );
    // From the old binary's READY to the new one's: the runtime stopped, the trial ran
    // under the supervising loop, and systemd's watchdog never went hungry.
    let span = &heard[readies[0]..=readies[1]];
    let longest = span.windows(2).map(|p| p[1].0.duration_since(p[0].0)).max().unwrap_or_default();
    let pings = span.iter().filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1")).count();
    let trial = span[span.len() - 1].0.duration_since(span[0].0);
    println!("{pings} watchdog pings over {trial:?} up to the committed release's READY; longest silence {longest:?}");
    assert!(
        longest < WATCHDOG,
        "systemd heard nothing for {longest:?}, longer than WatchdogSec {WATCHDOG:?}: {heard:?}"
    );
    assert!(agent.log().contains("passed its trial"), "{}", agent.log());
}
