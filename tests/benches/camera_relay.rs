//! The camera relay's cost and delay, with the real binaries (bench profile): GStreamer's
//! RTSP server as the camera (720p25 H.264 at 4 Mbit/s of noise, so the encoder fills the
//! rate), an enrolled `simpul-agent` pulling it through its tunnel, `simpul-fleet` fanning
//! it out to three ffmpeg viewers and the delay probe (four viewers in all).
//!
//! Prints, over the viewing window (minus the same window idle before it):
//! - the video rate through the tunnel (Mbit/s, from the fleet's counters);
//! - the agent's and the fleet's CPU (% of one core, from /proc) per Mbit/s of video;
//! - the delay the relay adds: the same frames read at once from the camera directly and
//!   through the fleet (retina on both), matched by their slice data; p50 and p99 of
//!   (through the fleet - direct).
//!
//! `cargo bench -p simpul-tests --bench camera_relay` (30 s), `-- --quick` (10 s). The
//! binaries come from the same profile: `cargo build --profile bench --bins` first
//! (scripts/bench does).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;
use serde_json::{Value, json};
use simpul_tests::camera::{CameraAuth, TestCamera};
use simpul_tests::releases::run_ok;
use simpul_tests::system::{Agent, AgentSpec, Fleet, poll_json};

const CAMERA_PASSWORD: &str = "bench-camera";
const VIEWER_PASSWORD: &str = "bench-viewer";

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; after ')' they are 12th and 13th (0-based 11, 12).
    (ticks(11) + ticks(12)) / 100.0
}

fn pid_of(name: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let own = std::process::id();
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = parent.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if cmd.split('\0').next().is_some_and(|c| c.ends_with(name)) && ppid == Some(own) {
            return Some(pid);
        }
    }
    None
}

fn gate(v: &Value) -> &Value {
    v["cameras"].as_array().and_then(|c| c.first()).unwrap_or(&Value::Null)
}

/// Reads `url` with retina until `until`, recording when each frame arrived, keyed by a
/// hash of its last NAL unit (the slice: the relay passes it unchanged).
async fn arrivals(url: String, user: &str, password: &str, until: Instant) -> HashMap<u64, Instant> {
    let mut seen = HashMap::new();
    let creds = Some(Credentials { username: user.to_owned(), password: password.to_owned() });
    let Ok(parsed) = url::Url::parse(&url) else { return seen };
    let Ok(mut session) = Session::describe(parsed, SessionOptions::default().creds(creds)).await else { return seen };
    let setup = SetupOptions::default().transport(Transport::Tcp(Default::default()));
    if session.setup(0, setup).await.is_err() {
        return seen;
    }
    let Ok(playing) = session.play(PlayOptions::default()).await else { return seen };
    let Ok(mut demuxed) = playing.demuxed() else { return seen };
    while Instant::now() < until {
        let next = tokio::time::timeout(Duration::from_secs(5), demuxed.next()).await;
        let Ok(Some(Ok(CodecItem::VideoFrame(f)))) = next else {
            if matches!(next, Ok(Some(Ok(_)))) {
                continue;
            }
            break;
        };
        let now = Instant::now();
        let data = f.data();
        let mut last = &data[..0];
        let mut at = 0usize;
        while at + 4 <= data.len() {
            let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            if at + 4 + len > data.len() {
                break;
            }
            last = &data[at + 4..at + 4 + len];
            at += 4 + len;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        last.hash(&mut h);
        seen.entry(h.finish()).or_insert(now);
    }
    seen
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let window = Duration::from_secs(if quick { 10 } else { 30 });
    let camera =
        TestCamera::start_with("cam", CAMERA_PASSWORD, "h264", CameraAuth::Digest, &["1280", "720", "4000", "snow"])
            .await?;
    let dir = tempfile::tempdir()?;
    let fleet_dir = dir.path().join("fleet");
    std::fs::create_dir_all(&fleet_dir)?;
    let cameras = "[cameras]\nrtsp_listen = \"127.0.0.1:0\"\nlinger = \"2s\"\n";
    let (fleet, enrolment, broker) = Fleet::start_embedded_fresh(&fleet_dir, cameras).await?;
    // A heartbeat a second: the camera's state reaches the fleet in a heartbeat, and with
    // the default minute the first one may go out before the probe has an answer, leaving
    // the wait below racing the next one.
    let extra = format!(
        "[log]\nlevel = \"warn\"\n[health]\nheartbeat_interval = \"1s\"\n[camera_relay]\nprobe_interval = \"1h\"\nreconnect_max = \"1s\"\n\
         [cameras.gate]\nurl = \"{}\"\nusername = \"cam\"\npassword = \"{CAMERA_PASSWORD}\"\n",
        camera.url()
    );
    let spec = AgentSpec {
        enrolment: Some(enrolment),
        trust_extra: extra,
        ..AgentSpec::new("kel-01", 0, Duration::from_secs(1))
    };
    let _agent = Agent::start(dir.path(), broker, spec)?;
    let http = reqwest::Client::new();
    let api = format!("http://{}/api/v1/cameras", fleet.api);
    let ready = poll_json(
        &http,
        &api,
        &fleet.token,
        Duration::from_secs(60),
        "camera ready",
        |v| gate(v)["state"] == "ok" && gate(v)["tunnel"] == true,
        String::new,
    )
    .await;
    let rtsp_port = ready["rtsp_port"].as_u64().unwrap_or(0);
    let ops = run_ok(fleet.cli(&["tokens", "create", "--offline", "--name", "ops", "--role", "ops"], None), "ops");
    http.post(format!("http://{}/api/v1/users", fleet.api))
        .bearer_auth(ops.trim())
        .json(&json!({ "name": "olga", "role": "viewer", "password": VIEWER_PASSWORD }))
        .send()
        .await?
        .error_for_status()?;
    let (agent_pid, fleet_pid) = (pid_of("simpul-agent"), pid_of("simpul-fleet"));
    let (Some(agent_pid), Some(fleet_pid)) = (agent_pid, fleet_pid) else {
        return Err("cannot find the agent's and the fleet's processes".into());
    };

    // Idle: the same window with nobody watching, for the baseline.
    let (a0, f0) = (cpu_seconds(agent_pid), cpu_seconds(fleet_pid));
    tokio::time::sleep(window).await;
    let (idle_agent, idle_fleet) = (cpu_seconds(agent_pid) - a0, cpu_seconds(fleet_pid) - f0);

    let url = format!("rtsp://olga:{VIEWER_PASSWORD}@127.0.0.1:{rtsp_port}/cameras/kel-01/gate");
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(
            tokio::process::Command::new("ffmpeg")
                .args(["-loglevel", "error", "-rtsp_transport", "tcp", "-i", &url, "-c", "copy", "-f", "null", "-"])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    poll_json(
        &http,
        &api,
        &fleet.token,
        Duration::from_secs(30),
        "three viewers",
        |v| gate(v)["viewers"] == 3,
        String::new,
    )
    .await;
    let before = poll_json(&http, &api, &fleet.token, Duration::from_secs(5), "counters", |_| true, String::new).await;
    let (a1, f1, t1) = (cpu_seconds(agent_pid), cpu_seconds(fleet_pid), Instant::now());
    let until = Instant::now() + window;
    let relayed = format!("rtsp://127.0.0.1:{rtsp_port}/cameras/kel-01/gate");
    let (direct, through) = tokio::join!(
        arrivals(camera.url(), "cam", CAMERA_PASSWORD, until),
        arrivals(relayed, "olga", VIEWER_PASSWORD, until),
    );
    let elapsed = t1.elapsed().as_secs_f64();
    let (agent_cpu, fleet_cpu) = (cpu_seconds(agent_pid) - a1, cpu_seconds(fleet_pid) - f1);
    let after = poll_json(&http, &api, &fleet.token, Duration::from_secs(5), "counters", |_| true, String::new).await;
    drop(viewers);

    let bytes = |v: &Value, k: &str| gate(v)["counters"][k].as_u64().unwrap_or(0) as f64;
    let tunnel_mbps = (bytes(&after, "tunnel_bytes") - bytes(&before, "tunnel_bytes")) * 8.0 / elapsed / 1e6;
    let viewer_mbps = (bytes(&after, "viewer_bytes") - bytes(&before, "viewer_bytes")) * 8.0 / elapsed / 1e6;
    let scale = elapsed / window.as_secs_f64();
    let pct = |busy: f64, idle: f64| ((busy - idle * scale) / elapsed * 100.0).max(0.0);
    let (agent_pct, fleet_pct) = (pct(agent_cpu, idle_agent), pct(fleet_cpu, idle_fleet));
    let mut delays: Vec<f64> = through
        .iter()
        .filter_map(|(k, t)| direct.get(k).map(|d| t.saturating_duration_since(*d).as_secs_f64() * 1000.0))
        .collect();
    delays.sort_by(f64::total_cmp);

    println!(
        "camera: 1280x720 25 fps H.264; through the fleet: 3 ffmpeg viewers and the delay probe, {:.0} s",
        elapsed
    );
    println!(
        "tunnel: {tunnel_mbps:.2} Mbit/s in; viewers: {viewer_mbps:.2} Mbit/s out ({:.2} x the tunnel)",
        viewer_mbps / tunnel_mbps
    );
    println!(
        "agent CPU: {agent_pct:.2}% of a core = {:.2}% per Mbit/s of video (idle baseline {:.2}%)",
        agent_pct / tunnel_mbps,
        idle_agent / window.as_secs_f64() * 100.0
    );
    println!(
        "fleet CPU: {fleet_pct:.2}% of a core = {:.2}% per Mbit/s in ({:.2}% per Mbit/s out) (idle baseline {:.2}%)",
        fleet_pct / tunnel_mbps,
        fleet_pct / viewer_mbps,
        idle_fleet / window.as_secs_f64() * 100.0
    );
    println!(
        "delay the relay adds: p50 {:.1} ms, p99 {:.1} ms, over {} frames matched ({} direct, {} relayed)",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.len(),
        direct.len(),
        through.len()
    );
    Ok(())
}
