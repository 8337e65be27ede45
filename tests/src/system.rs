//! The whole system as child processes: a fleet server and agents, wired through a real
//! broker (and, for agents, a link the test can cut), read by a consumer of the cursor API
//! that checks every reading arrives exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::mosquitto::{Mosquitto, free_port, wait_until_accepting};
use crate::process::{ChildGuard, workspace_bin};

/// How long any one wait in a system test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A `simpul-fleet` process reading from `broker`, with its API on a free port.
#[derive(Debug)]
pub struct Fleet {
    pub api: SocketAddr,
    /// A `viewer` API token, as the central platform has (made with `tokens create --offline`).
    pub token: String,
    config: PathBuf,
    child: ChildGuard,
}

impl Fleet {
    /// Writes a config in `dir` and starts the fleet reading from an external `broker`.
    pub async fn start(dir: &Path, broker: SocketAddr) -> std::io::Result<Fleet> {
        Self::start_with(dir, &format!("[mqtt]\nbroker = \"{broker}\"\n")).await
    }

    /// Starts the fleet with its embedded broker: devices on `broker` with mutual TLS (a
    /// client certificate from the fleet CA), the fleet's own clients on a plain loopback
    /// listener, and the HTTPS device listener where agents enrol.
    pub async fn start_embedded(dir: &Path, broker: SocketAddr) -> std::io::Result<(Fleet, Enrolment)> {
        Self::start_embedded_with(dir, broker, "").await
    }

    /// [`Fleet::start_embedded_with`] on ports it picks itself, picking again (up to three
    /// times) when another process took one of them between the pick and the fleet's bind
    /// (ports come from `127.0.0.1:0`, which other tests' outgoing connections share);
    /// also returns where devices reach the broker.
    pub async fn start_embedded_fresh(
        dir: &Path,
        trust_extra: &str,
    ) -> std::io::Result<(Fleet, Enrolment, SocketAddr)> {
        let mut attempt = 0;
        loop {
            let broker = free_port()?;
            match Self::start_embedded_with(dir, broker, trust_extra).await {
                Ok((fleet, enrolment)) => return Ok((fleet, enrolment, broker)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 2 => {
                    eprintln!("a port was taken before the fleet bound it; new ports: {e}");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Fleet::start_embedded`] with more `[trust]` lines (`device_cert_validity = "1h"`).
    pub async fn start_embedded_with(
        dir: &Path,
        broker: SocketAddr,
        trust_extra: &str,
    ) -> std::io::Result<(Fleet, Enrolment)> {
        let (plain, device_listener) = (free_port()?, free_port()?);
        let trust = dir.join("trust");
        let section = format!(
            "[broker]\nlisten = \"{plain}\"\ntls_listen = \"{broker}\"\n[trust]\ndir = \"{}\"\nlisten = \"{device_listener}\"\n{trust_extra}",
            trust.display()
        );
        let mut fleet = Self::start_with(dir, &section).await?;
        let log = dir.join("fleet.log");
        listening(&mut fleet.child, broker, &log).await?;
        listening(&mut fleet.child, device_listener, &log).await?;
        let enrolment = Enrolment {
            fleet_url: format!("https://{device_listener}"),
            ca: std::fs::read_to_string(trust.join("ca.pem"))?,
            fleet_config: fleet.config.clone(),
        };
        Ok((fleet, enrolment))
    }

    /// One of several fleet servers sharing an external `broker` (a shared subscription,
    /// MQTT client id `client_id`) and the PostgreSQL database at `url`; `store_extra`:
    /// more `[store]` lines (`commit_interval = "2s"`).
    pub async fn start_postgres(
        dir: &Path,
        broker: SocketAddr,
        url: &str,
        client_id: &str,
        store_extra: &str,
    ) -> std::io::Result<Fleet> {
        let store = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{store_extra}");
        Self::start_with_store(
            dir,
            &format!("[mqtt]\nbroker = \"{broker}\"\nclient_id = \"{client_id}\"\nclean_session = true\n"),
            &store,
        )
        .await
    }

    async fn start_with(dir: &Path, broker_section: &str) -> std::io::Result<Fleet> {
        let store = format!("[store]\npath = \"{}\"\n", dir.join("fleet.db").display());
        Self::start_with_store(dir, broker_section, &store).await
    }

    async fn start_with_store(dir: &Path, broker_section: &str, store_section: &str) -> std::io::Result<Fleet> {
        std::fs::create_dir_all(dir)?;
        let api = free_port()?;
        let config = dir.join("fleet.toml");
        let text = format!("{broker_section}{store_section}[api]\nlisten = \"{api}\"\n[log]\nlevel = \"info\"\n");
        std::fs::write(&config, text)?;
        let token = platform_token(&config)?;
        let mut child = spawn("simpul-fleet", &config, &dir.join("fleet.log"))?;
        listening(&mut child, api, &dir.join("fleet.log")).await?;
        Ok(Fleet { api, token, config, child })
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Runs `simpul-fleet --config <this fleet's config> ARGS`, with `SIMPUL_API` set to
    /// this fleet and `SIMPUL_TOKEN` to `token` when given.
    pub fn cli(&self, args: &[&str], token: Option<&str>) -> std::io::Result<std::process::Output> {
        let mut cmd = Command::new(workspace_bin("simpul-fleet"));
        cmd.arg("--config").arg(&self.config).args(args).env("SIMPUL_API", format!("http://{}", self.api));
        if let Some(t) = token {
            cmd.env("SIMPUL_TOKEN", t);
        }
        cmd.stdin(Stdio::null()).output()
    }

    /// The value of metric `name` (`simpul_fleet_readings_stored_total`) on `GET /metrics`;
    /// `None` while the fleet does not answer or has no such line.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.api)).await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The fleet's database file.
    pub fn db(&self) -> PathBuf {
        self.config.with_file_name("fleet.db")
    }

    /// Starts the same fleet (same database, same API port) again.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.child.kill();
        let dir = self.config.parent().unwrap_or(Path::new("."));
        self.child = spawn("simpul-fleet", &self.config, &dir.join("fleet.log"))?;
        wait_until_accepting(self.api, PATIENCE).await
    }
}

/// Waits until `addr` accepts, failing at once, with the end of the log, if `child`
/// exits first (`AddrInUse` when it could not bind a port).
async fn listening(child: &mut ChildGuard, addr: SocketAddr, log: &Path) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.child().and_then(|c| c.try_wait().ok().flatten()) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = text.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
            let kind = if text.contains("in use") { std::io::ErrorKind::AddrInUse } else { std::io::ErrorKind::Other };
            return Err(std::io::Error::new(
                kind,
                format!("the process exited ({status}) before {addr} accepted:\n{tail}"),
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return wait_until_accepting(addr, Duration::ZERO).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A viewer token for the platform, written into the fleet's database before it starts.
fn platform_token(config: &Path) -> std::io::Result<String> {
    let out = Command::new(workspace_bin("simpul-fleet"))
        .arg("--config")
        .arg(config)
        .args(["tokens", "create", "--offline", "--name", "platform", "--role", "viewer"])
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!("tokens create: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What an agent needs to enrol with a fleet: where to, the CA to trust, and the fleet's
/// config (to make one-time tokens with its CLI).
#[derive(Clone, Debug)]
pub struct Enrolment {
    /// The device listener, `https://127.0.0.1:port`.
    pub fleet_url: String,
    /// The fleet CA, PEM.
    pub ca: String,
    fleet_config: PathBuf,
}

impl Enrolment {
    /// A new one-time enrolment token (`simpul-fleet tokens create --offline`).
    pub fn token(&self) -> std::io::Result<String> {
        let out = Command::new(workspace_bin("simpul-fleet"))
            .arg("--config")
            .arg(&self.fleet_config)
            .args(["tokens", "create", "--offline", "--expires", "1h"])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!("tokens create: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Writes a bootstrap bundle (as `simpul-provision` does) with a new token for
    /// `device` at `path`, its broker `broker`.
    pub fn write_bundle(&self, path: &Path, device: &str, broker: SocketAddr) -> std::io::Result<()> {
        let text = format!(
            "fleet = \"{}\"\nbroker = \"{broker}\"\ntoken = \"{}\"\ndevice_id = \"{device}\"\nca = '''\n{}'''\n",
            self.fleet_url,
            self.token()?,
            self.ca
        );
        std::fs::write(path, text)
    }

    /// The agent's `[trust]` section for an agent whose files are in `dir`: its identity in
    /// `dir/trust`, and, until it has one, a bundle to enrol with written at `dir/bundle.toml`.
    pub fn agent_section(&self, dir: &Path, device: &str, broker: SocketAddr) -> std::io::Result<String> {
        let (trust, bundle) = (dir.join("trust"), dir.join("bundle.toml"));
        if !trust.join("device.pem").exists() && !bundle.exists() {
            self.write_bundle(&bundle, device, broker)?;
        }
        Ok(format!("[trust]\ndir = \"{}\"\nbundle = \"{}\"\n", trust.display(), bundle.display()))
    }
}

/// Which broker carries the readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    /// Mosquitto from Debian, as an external broker.
    Mosquitto,
    /// The fleet's own, which lives and dies with the fleet process.
    Embedded,
}

/// A fleet and the broker it reads from.
#[derive(Debug)]
pub struct Stack {
    /// Set when the broker is Mosquitto (so a test can restart it).
    pub mosquitto: Option<Mosquitto>,
    /// Where devices connect.
    pub broker: SocketAddr,
    pub fleet: Fleet,
    /// How agents enrol, when devices must use mutual TLS (the embedded broker).
    pub enrolment: Option<Enrolment>,
}

impl Stack {
    /// Starts a broker of `kind` and a fleet on it, with its files in `dir`.
    pub async fn start(dir: &Path, kind: BrokerKind) -> std::io::Result<Stack> {
        match kind {
            BrokerKind::Mosquitto => {
                let m = Mosquitto::start().await?;
                let fleet = Fleet::start(dir, m.addr()).await?;
                Ok(Stack { broker: m.addr(), mosquitto: Some(m), fleet, enrolment: None })
            }
            BrokerKind::Embedded => {
                let broker = free_port()?;
                let (fleet, enrolment) = Fleet::start_embedded(dir, broker).await?;
                Ok(Stack { mosquitto: None, broker, fleet, enrolment: Some(enrolment) })
            }
        }
    }
}

/// How an agent under test is set up.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub device: String,
    /// Simulated sensors, each sending one reading per `interval`.
    pub sensors: usize,
    pub interval: Duration,
    pub quota: Option<String>,
    /// Enrol with this fleet and use mutual TLS; `None`: plain MQTT.
    pub enrolment: Option<Enrolment>,
    /// More lines for the agent's `[trust]` section (`renew_before = "2h"`), and any
    /// sections after it.
    pub trust_extra: String,
    /// Run this binary instead of the workspace's `simpul-agent` (a copy an update may
    /// replace).
    pub binary: Option<PathBuf>,
    /// More environment for the agent process (`NOTIFY_SOCKET`, as systemd sets it).
    pub env: Vec<(String, String)>,
    /// More lines for the agent's `[uplink]` section (`ack_timeout = "2s"`).
    pub uplink_extra: String,
}

impl AgentSpec {
    /// `sensors` fast simulated sensors on device `device`, plain MQTT.
    pub fn new(device: &str, sensors: usize, interval: Duration) -> AgentSpec {
        AgentSpec {
            device: device.to_owned(),
            sensors,
            interval,
            quota: None,
            enrolment: None,
            trust_extra: String::new(),
            binary: None,
            env: Vec::new(),
            uplink_extra: String::new(),
        }
    }

    /// The same, enrolling with `stack`'s fleet when its devices use mutual TLS.
    pub fn on(stack: &Stack, device: &str, sensors: usize, interval: Duration) -> AgentSpec {
        AgentSpec { enrolment: stack.enrolment.clone(), ..AgentSpec::new(device, sensors, interval) }
    }
}

/// A `simpul-agent` process with its buffer in its own folder.
#[derive(Debug)]
pub struct Agent {
    pub spec: AgentSpec,
    dir: PathBuf,
    child: ChildGuard,
}

impl Agent {
    /// Starts an agent whose uplink goes to `broker` (a broker, or a [`crate::LinkProxy`]).
    pub fn start(dir: &Path, broker: SocketAddr, spec: AgentSpec) -> std::io::Result<Agent> {
        let dir = Self::dir_for(dir, &spec.device);
        std::fs::create_dir_all(&dir)?;
        write_agent_config(&dir, broker, &spec, true)?;
        let child = spawn_agent(&spec, &dir)?;
        Ok(Agent { spec, dir, child })
    }

    /// The folder holding the agent's config and buffer (`buffer.db`), made before start.
    pub fn dir_for(dir: &Path, device: &str) -> PathBuf {
        dir.join(device)
    }

    /// Starts an agent with only its uplink: no sensors (it drains a buffer made earlier).
    pub fn start_draining(dir: &Path, broker: SocketAddr, spec: AgentSpec) -> std::io::Result<Agent> {
        let dir = Self::dir_for(dir, &spec.device);
        std::fs::create_dir_all(&dir)?;
        write_agent_config(&dir, broker, &spec, false)?;
        let child = spawn_agent(&spec, &dir)?;
        Ok(Agent { spec, dir, child })
    }

    /// SIGKILL: what the buffer had not flushed is lost and never got a seq.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// SIGTERM: sensors stop, the buffer flushes; returns the exit code.
    pub fn terminate(&mut self) -> std::io::Result<Option<i32>> {
        self.child.terminate()
    }

    /// Starts the agent again on the same buffer; `sensors: false` runs only the uplink,
    /// to drain what is left.
    pub fn restart(&mut self, broker: SocketAddr, sensors: bool) -> std::io::Result<()> {
        self.child.kill();
        write_agent_config(&self.dir, broker, &self.spec, sensors)?;
        self.child = spawn_agent(&self.spec, &self.dir)?;
        Ok(())
    }

    /// Every seq this agent ever gave: 1..=last (read from its buffer, agent stopped or not).
    pub fn last_seq(&self) -> std::io::Result<u64> {
        let out = Command::new(workspace_bin("simpul-agent"))
            .args(["buffer", "stats", "--json", "--path"])
            .arg(self.dir.join("buffer.db"))
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(std::io::Error::other)?;
        let next = json["next_seq"].as_u64().ok_or_else(|| std::io::Error::other("no next_seq in buffer stats"))?;
        Ok(next.saturating_sub(1))
    }

    /// Readings still held in the buffer (not yet acknowledged).
    pub fn held(&self) -> std::io::Result<u64> {
        let out = Command::new(workspace_bin("simpul-agent"))
            .args(["buffer", "stats", "--json", "--path"])
            .arg(self.dir.join("buffer.db"))
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(std::io::Error::other)?;
        json["readings"].as_u64().ok_or_else(|| std::io::Error::other("no readings in buffer stats"))
    }

    /// The agent's device certificate (PEM), once it enrolled.
    pub fn certificate(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("trust").join("device.pem")).ok()
    }

    /// Whether the agent holds a device certificate (it enrolled).
    pub fn enrolled(&self) -> bool {
        self.dir.join("trust").join("device.pem").is_file()
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

/// The agent's config: `agent.toml` for what is its own, and the uplink in the drop-in
/// `agent.d/50-test.toml`, which wins over what enrolment writes (`10-enrolment.toml`):
/// the test decides the broker address (a proxy), enrolment only the identity.
fn write_agent_config(dir: &Path, broker: SocketAddr, spec: &AgentSpec, sensors: bool) -> std::io::Result<()> {
    let mut t = format!(
        "[device]\nid = \"{}\"\n[buffer]\npath = \"{}\"\nflush_interval = \"100ms\"\n",
        spec.device,
        dir.join("buffer.db").display()
    );
    if let Some(q) = &spec.quota {
        t.push_str(&format!("quota = \"{q}\"\n"));
    }
    t.push_str("[clock]\nsync = \"always\"\n");
    if let Some(e) = &spec.enrolment {
        t.push_str(&e.agent_section(dir, &spec.device, broker)?);
        t.push_str(&spec.trust_extra);
    }
    if sensors {
        for i in 0..spec.sensors {
            t.push_str(&format!(
                "[sensors.s{i}]\nkind = \"simulated\"\ninterval = \"{}ms\"\nseed = {i}\n",
                spec.interval.as_millis()
            ));
        }
    }
    std::fs::write(dir.join("agent.toml"), t)?;
    let uplink = format!(
        "[uplink]\nenabled = true\nbroker = \"{broker}\"\ntls = {}\nbatch_interval = \"100ms\"\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\nkeepalive = \"5s\"\n{}",
        spec.enrolment.is_some(),
        spec.uplink_extra
    );
    std::fs::create_dir_all(dir.join("agent.d"))?;
    std::fs::write(dir.join("agent.d").join("50-test.toml"), uplink)
}

fn spawn_agent(spec: &AgentSpec, dir: &Path) -> std::io::Result<ChildGuard> {
    let bin = spec.binary.clone().unwrap_or_else(|| workspace_bin("simpul-agent"));
    spawn_path(&bin, &dir.join("agent.toml"), &dir.join("agent.log"), &spec.env)
}

fn spawn(bin: &str, config: &Path, log: &Path) -> std::io::Result<ChildGuard> {
    spawn_path(&workspace_bin(bin), config, log, &[])
}

fn spawn_path(bin: &Path, config: &Path, log: &Path, env: &[(String, String)]) -> std::io::Result<ChildGuard> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("run")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(ChildGuard::new(child))
}

/// A central platform reading the cursor API, keeping every (device, seq) it was given
/// and how many times.
#[derive(Debug)]
pub struct Consumer {
    /// The fleets' APIs with their tokens; pages alternate between them (the cursor is
    /// the database's, so any fleet on it continues where another left off).
    apis: Vec<(SocketAddr, String)>,
    turn: usize,
    http: reqwest::Client,
    cursor: Option<String>,
    seen: BTreeMap<(String, u64), u32>,
    last: BTreeMap<(String, u64), serde_json::Value>,
}

impl Consumer {
    /// A consumer of `fleet`'s API with its platform token.
    pub fn new(fleet: &Fleet) -> Consumer {
        Self::rotating(&[fleet])
    }

    /// A consumer of several fleet servers on one database, asking each in turn; a fleet
    /// that does not answer is skipped until its turn comes again.
    pub fn rotating(fleets: &[&Fleet]) -> Consumer {
        Consumer {
            apis: fleets.iter().map(|f| (f.api, f.token.clone())).collect(),
            turn: 0,
            http: reqwest::Client::new(),
            cursor: None,
            seen: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// One page; how many readings it held. A fleet that is down is zero, not an error.
    pub async fn poll(&mut self) -> usize {
        let Some((api, token)) = self.apis.get(self.turn % self.apis.len().max(1)).cloned() else { return 0 };
        self.turn = self.turn.wrapping_add(1);
        let mut url = format!("http://{api}/api/v1/readings?limit=5000");
        if let Some(c) = &self.cursor {
            url.push_str(&format!("&after={c}"));
        }
        let Ok(resp) = self.http.get(&url).bearer_auth(&token).send().await else { return 0 };
        let Ok(page) = resp.json::<serde_json::Value>().await else { return 0 };
        let readings = page["readings"].as_array().cloned().unwrap_or_default();
        for r in &readings {
            if let (Some(d), Some(s)) = (r["device"].as_str(), r["seq"].as_u64()) {
                *self.seen.entry((d.to_owned(), s)).or_default() += 1;
                self.last.insert((d.to_owned(), s), r.clone());
            }
        }
        if let Some(next) = page["next"].as_str() {
            self.cursor = Some(next.to_owned());
        } else if let Some(n) = page["next"].as_u64() {
            self.cursor = Some(n.to_string());
        }
        readings.len()
    }

    /// Every reading of `device` as last delivered, by seq.
    pub fn readings(&self, device: &str) -> Vec<&serde_json::Value> {
        self.last.iter().filter(|((d, _), _)| d == device).map(|(_, v)| v).collect()
    }

    /// A device's record from `GET /api/v1/devices/{d}`.
    pub async fn device(&self, device: &str) -> Option<serde_json::Value> {
        let (api, token) = self.apis.first()?;
        let url = format!("http://{api}/api/v1/devices/{device}");
        self.http.get(&url).bearer_auth(token).send().await.ok()?.json().await.ok()
    }

    /// Distinct readings of `device` seen so far.
    pub fn count(&self, device: &str) -> usize {
        self.seen.keys().filter(|(d, _)| d == device).count()
    }

    /// Polls until `device` has at least `n` distinct readings (fails after [`PATIENCE`]).
    pub async fn wait_for(&mut self, device: &str, n: usize) {
        self.poll_until(
            |c| c.count(device) >= n,
            |c| format!("only {} of {n} readings of {device} arrived", c.count(device)),
        )
        .await;
    }

    /// Polls until `done` holds; after [`PATIENCE`], fails with `why`.
    async fn poll_until(&mut self, done: impl Fn(&Self) -> bool, why: impl Fn(&Self) -> String) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done(self) {
            assert!(tokio::time::Instant::now() < deadline, "{}", why(self));
            if self.poll().await == 0 {
                // Nothing new yet: the next page is what we wait for.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The highest `n` such that every seq `1..=n` of `device` was delivered.
    pub fn contiguous(&self, device: &str) -> u64 {
        let mut n = 0;
        for (d, seq) in self.seen.keys() {
            if d == device {
                if *seq != n + 1 {
                    break;
                }
                n = *seq;
            }
        }
        n
    }

    /// Polls until every seq `1..=n` of `device` was delivered, with no gap (fails after
    /// [`PATIENCE`]).
    pub async fn wait_for_contiguous(&mut self, device: &str, n: u64) {
        self.poll_until(
            |c| c.contiguous(device) >= n,
            |c| {
                let (got, distinct) = (c.contiguous(device), c.count(device));
                format!("{device}: seqs up to {got} arrived without a gap, not up to {n} ({distinct} distinct)")
            },
        )
        .await;
    }

    /// Asserts that `device`'s readings are exactly `expected`, each delivered once.
    pub fn assert_exactly_once(&self, device: &str, expected: &BTreeSet<u64>) {
        let twice: Vec<u64> =
            self.seen.iter().filter(|((d, _), n)| d == device && **n > 1).map(|((_, s), _)| *s).collect();
        assert!(
            twice.is_empty(),
            "{device}: {} readings delivered more than once, first {:?}",
            twice.len(),
            &twice[..twice.len().min(10)]
        );
        let got: BTreeSet<u64> = self.seen.keys().filter(|(d, _)| d == device).map(|(_, s)| *s).collect();
        let missing: Vec<u64> = expected.difference(&got).copied().collect();
        let extra: Vec<u64> = got.difference(expected).copied().collect();
        assert!(
            missing.is_empty(),
            "{device}: {} readings never delivered, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(
            extra.is_empty(),
            "{device}: {} readings delivered that were never produced: {:?}",
            extra.len(),
            &extra[..extra.len().min(10)]
        );
    }
}

/// The last `n` bytes of `s` (from a char boundary), for failure messages.
pub fn tail(s: &str, n: usize) -> &str {
    let mut from = s.len().saturating_sub(n);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}

/// GETs `url` with the bearer `token` until `done` holds for its JSON and returns that
/// JSON; after `patience`, fails with the last answer and `logs()`.
pub async fn poll_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    patience: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
    logs: impl Fn() -> String,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + patience;
    let mut last = serde_json::Value::Null;
    loop {
        if let Ok(resp) = http.get(url).bearer_auth(token).send().await {
            if let Ok(v) = resp.json::<serde_json::Value>().await {
                if done(&v) {
                    return v;
                }
                last = v;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not yet\n{last:#}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
