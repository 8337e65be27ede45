//! Cameras through the tunnel with real peers (docs/design/cameras.md): GStreamer's RTSP
//! server as the office camera behind a password, a real agent that dials the fleet, the
//! fleet's RTSP server, and ffprobe as the viewers.

use std::time::Duration;

use serde_json::{Value, json};
use simpul_tests::browser::Browser;
use simpul_tests::camera::{CameraAuth, TestCamera, ffprobe, ffprobe_http};
use simpul_tests::releases::run_ok;
use simpul_tests::system::{Agent, AgentSpec, Fleet, poll_json, tail};

/// The camera's password in the agent's config: it must never reach the fleet.
const CAMERA_PASSWORD: &str = "kamera-rahasia-7321";
const VIEWER_PASSWORD: &str = "lihat-saja-2026";
/// How long a camera keeps streaming after its last viewer.
const LINGER_S: u64 = 2;
const PATIENCE: Duration = Duration::from_secs(60);

struct World {
    dir: tempfile::TempDir,
    fleet: Fleet,
    agent: Agent,
    rtsp_port: u16,
    http: reqwest::Client,
}

impl World {
    /// A fleet relaying cameras and one enrolled agent `device` with camera `gate` at
    /// `camera`, configured with `password`.
    async fn start(device: &str, camera: &TestCamera, password: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let fleet_dir = dir.path().join("fleet");
        std::fs::create_dir_all(&fleet_dir).expect("mkdir");
        let cameras = format!("[cameras]\nrtsp_listen = \"127.0.0.1:0\"\nlinger = \"{LINGER_S}s\"\n");
        let (fleet, enrolment, broker) = Fleet::start_embedded_fresh(&fleet_dir, &cameras).await.expect("fleet");
        let extra = format!(
            "[health]\nheartbeat_interval = \"1s\"\n[camera_relay]\nprobe_interval = \"1h\"\nreconnect_max = \"1s\"\n\
             [cameras.gate]\nurl = \"{}\"\nusername = \"cam\"\npassword = \"{password}\"\n",
            camera.url()
        );
        let spec = AgentSpec {
            enrolment: Some(enrolment),
            trust_extra: extra,
            ..AgentSpec::new(device, 1, Duration::from_millis(500))
        };
        let agent = Agent::start(dir.path(), broker, spec).expect("agent");
        let mut w = World { dir, fleet, agent, rtsp_port: 0, http: reqwest::Client::new() };
        let cams = w.until("the RTSP port", |v| v["rtsp_port"].as_u64().is_some()).await;
        w.rtsp_port = cams["rtsp_port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
        w
    }

    /// GETs /api/v1/cameras until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let url = format!("http://{}/api/v1/cameras", self.fleet.api);
        poll_json(&self.http, &url, &self.fleet.token, PATIENCE, what, done, || self.logs()).await
    }

    /// Waits until `device`'s camera answers and its tunnel is open; that answer.
    async fn until_streamable(&self, device: &str) -> Value {
        self.until("the camera answers and the tunnel is open", |v| {
            let g = World::gate(v, device);
            g["state"] == "ok" && g["tunnel"] == true
        })
        .await
    }

    /// The camera `gate` of `device` in a /api/v1/cameras answer.
    fn gate<'a>(v: &'a Value, device: &str) -> &'a Value {
        v["cameras"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["device"] == device && c["camera"] == "gate"))
            .unwrap_or(&Value::Null)
    }

    fn url(&self, device: &str, credentials: &str) -> String {
        format!("rtsp://{credentials}127.0.0.1:{}/cameras/{device}/gate", self.rtsp_port)
    }

    /// Adds a viewer `olga` through the API with an ops token.
    async fn add_viewer(&self) {
        let ops = run_ok(
            self.fleet.cli(&["tokens", "create", "--offline", "--name", "ops", "--role", "ops"], None),
            "ops token",
        );
        let resp = self
            .http
            .post(format!("http://{}/api/v1/users", self.fleet.api))
            .bearer_auth(ops.trim())
            .json(&json!({ "name": "olga", "role": "viewer", "password": VIEWER_PASSWORD }))
            .send()
            .await
            .expect("POST /api/v1/users");
        assert!(resp.status().is_success(), "adding a viewer: {}", resp.status());
    }

    /// `device`'s camera as a JPEG snapshot, with the platform's viewer token.
    async fn snapshot(&self, device: &str) -> Vec<u8> {
        let url = format!("http://{}/api/v1/cameras/{device}/gate/snapshot.jpg", self.fleet.api);
        let snap = self.http.get(url).bearer_auth(&self.fleet.token).send().await.expect("GET snapshot");
        assert_eq!(snap.status(), 200, "{}", self.logs());
        assert_eq!(snap.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/jpeg"));
        let jpeg = snap.bytes().await.expect("body").to_vec();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
        jpeg
    }

    /// `device`'s camera as the dashboard's live MP4, read by ffprobe for `seconds`.
    async fn probe_live_mp4(&self, device: &str, seconds: u32) -> simpul_tests::camera::Probed {
        let url = format!("http://{}/api/v1/cameras/{device}/gate/live.mp4", self.fleet.api);
        ffprobe_http(&url, &self.fleet.token, seconds).await.expect("ffprobe runs")
    }

    fn logs(&self) -> String {
        let fleet = std::fs::read_to_string(self.dir.path().join("fleet").join("fleet.log")).unwrap_or_default();
        format!("--- fleet\n{}\n--- agent\n{}", tail(&fleet, 4000), tail(&self.agent.log(), 3000))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_share_one_camera_session_which_ends_after_the_linger_and_the_password_stays_on_the_box() {
    let camera = TestCamera::start("cam", CAMERA_PASSWORD, "h264", CameraAuth::Digest).await.expect("camera");
    let w = World::start("kel-01", &camera, CAMERA_PASSWORD).await;
    w.add_viewer().await;
    let ready = w.until_streamable("kel-01").await;
    assert_eq!(World::gate(&ready, "kel-01")["video"], "h264 640x360", "{ready:#}");
    assert_eq!(camera.sessions(), 0, "the probe only DESCRIBEs: nobody watches, nothing streams");

    let olga = format!("olga:{VIEWER_PASSWORD}@");
    let vms = format!("vms:{}@", w.fleet.token);
    let (as_olga, as_vms) = (w.url("kel-01", &olga), w.url("kel-01", &vms));
    let (a, b, c) = tokio::join!(ffprobe(&as_olga, 5), ffprobe(&as_olga, 5), ffprobe(&as_vms, 5));
    for p in [a, b, c] {
        let p = p.expect("ffprobe runs");
        assert!(p.ok, "a viewer failed: {}\n{}", p.stderr, w.logs());
        assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", 640, 360), "{p:?}");
        assert!(p.packets >= 50, "5 s of a 25 fps camera, got {} packets", p.packets);
    }
    assert_eq!(camera.sessions(), 1, "three viewers, one camera session\n{}", w.logs());

    let after = w.until("the counters", |v| World::gate(v, "kel-01")["counters"]["viewers"] == 3).await;
    let counters = &World::gate(&after, "kel-01")["counters"];
    let (tunnel, viewers) =
        (counters["tunnel_bytes"].as_u64().unwrap_or(0), counters["viewer_bytes"].as_u64().unwrap_or(0));
    assert_eq!(counters["upstreams"], 1, "{after:#}");
    assert!(tunnel > 20_000, "the tunnel carried the stream: {tunnel} bytes");
    assert!(
        tunnel * 2 < viewers,
        "the tunnel carries the stream once, the viewers get it three times: tunnel {tunnel}, viewers {viewers}"
    );
    eprintln!(
        "tunnel {tunnel} bytes for viewers' {viewers} bytes ({:.2} of a stream each)",
        tunnel as f64 * 3.0 / viewers as f64
    );

    camera.wait_for("the camera session ends after the linger", PATIENCE, |_, ended| ended == 1).await;
    let idle = w.until("the relay lets go", |v| World::gate(v, "kel-01")["live"] == false).await;
    assert_eq!(World::gate(&idle, "kel-01")["counters"]["upstreams"], 1);

    let jpeg = w.snapshot("kel-01").await;
    assert!(jpeg.len() > 1000, "a JPEG of {} bytes", jpeg.len());
    camera
        .wait_for("a snapshot pulls the camera only for a key frame", PATIENCE, |s, ended| s == 2 && ended == 2)
        .await;

    let fleet_dir = w.dir.path().join("fleet");
    for entry in std::fs::read_dir(&fleet_dir).expect("the fleet's folder").flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        let found = bytes.windows(CAMERA_PASSWORD.len()).any(|win| win == CAMERA_PASSWORD.as_bytes());
        assert!(!found, "the camera password is in the fleet's {}", entry.path().display());
    }
    assert!(!w.agent.log().contains(CAMERA_PASSWORD), "the agent logged the camera password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_camera_password_shows_as_unauthorized_and_viewers_without_fleet_credentials_are_refused() {
    let camera = TestCamera::start("cam", CAMERA_PASSWORD, "h264", CameraAuth::Basic).await.expect("camera");
    let w = World::start("kel-02", &camera, "not-the-password").await;
    w.add_viewer().await;
    let seen = w.until("the camera's state", |v| World::gate(v, "kel-02")["state"] == "unauthorized").await;
    let error = World::gate(&seen, "kel-02")["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("username and password"), "a clear error: {error}");
    w.until("the tunnel", |v| World::gate(v, "kel-02")["tunnel"] == true).await;

    let refused = ffprobe(&w.url("kel-02", ""), 2).await.expect("ffprobe runs");
    assert!(!refused.ok && refused.stderr.contains("401"), "no credentials: {}", refused.stderr);
    let wrong = ffprobe(&w.url("kel-02", "olga:salah@"), 2).await.expect("ffprobe runs");
    assert!(!wrong.ok && wrong.stderr.contains("401"), "a wrong password: {}", wrong.stderr);
    let camera_refused = ffprobe(&w.url("kel-02", &format!("olga:{VIEWER_PASSWORD}@")), 2).await.expect("ffprobe");
    assert!(!camera_refused.ok && camera_refused.stderr.contains("502"), "{}", camera_refused.stderr);
    let unknown = ffprobe(&w.url("kel-99", &format!("olga:{VIEWER_PASSWORD}@")), 2).await.expect("ffprobe");
    assert!(!unknown.ok && unknown.stderr.contains("404"), "a box with no tunnel: {}", unknown.stderr);
    assert_eq!(camera.sessions(), 0, "nothing streamed from a camera that refused the box");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_passes_through_to_viewers_and_snapshots_without_transcoding_on_the_box() {
    let camera = TestCamera::start("cam", CAMERA_PASSWORD, "h265", CameraAuth::Digest).await.expect("camera");
    let w = World::start("kel-03", &camera, CAMERA_PASSWORD).await;
    w.add_viewer().await;
    let ready = w.until_streamable("kel-03").await;
    assert_eq!(World::gate(&ready, "kel-03")["video"], "h265 640x360", "{ready:#}");
    let p = ffprobe(&w.url("kel-03", &format!("olga:{VIEWER_PASSWORD}@")), 3).await.expect("ffprobe runs");
    assert!(p.ok, "the viewer failed: {}\n{}", p.stderr, w.logs());
    assert_eq!((p.codec.as_str(), p.width, p.height), ("hevc", 640, 360), "{p:?}");
    assert!(p.packets >= 25, "3 s of a 25 fps camera, got {} packets", p.packets);
    w.snapshot("kel-03").await;
    // The browser's live MP4 carries H.265 as it came (browsers that cannot decode it get
    // told so by the page; a player that can reads it).
    let mp4 = w.probe_live_mp4("kel-03", 3).await;
    assert!(mp4.ok, "the live MP4: {}\n{}", mp4.stderr, w.logs());
    assert_eq!((mp4.codec.as_str(), mp4.width, mp4.height), ("hevc", 640, 360), "{mp4:?}");
    assert!(mp4.packets >= 25, "3 s of a 25 fps camera, got {} packets", mp4.packets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_sites_cameras_as_snapshots_and_watches_one_live_in_the_browser_without_transcoding() {
    let camera = TestCamera::start("cam", CAMERA_PASSWORD, "h264", CameraAuth::Digest).await.expect("camera");
    let w = World::start("kel-04", &camera, CAMERA_PASSWORD).await;
    w.add_viewer().await;
    w.until_streamable("kel-04").await;
    let Some(b) = Browser::start().await else { return };
    let base = format!("http://{}", w.fleet.api);
    b.log_in(&base, "olga", VIEWER_PASSWORD).await;

    // The cameras page: the box's section, its camera's tile with a snapshot of the
    // camera's size (the browser decoded the JPEG).
    b.click("#nav-cameras").await;
    b.wait_for("section.site[data-device=\"kel-04\"]").await;
    b.wait_for("a.tile[data-camera=\"kel-04/gate\"][data-state=\"ok\"][data-snapshot=\"640x360\"]").await;
    b.screenshot("cameras").await;
    camera.wait_for("the snapshot's key frame fetch ends", PATIENCE, |s, ended| s == 1 && ended == 1).await;

    // One click: the camera live, decoded by the browser from the fleet's MP4.
    b.click("a.tile[data-camera=\"kel-04/gate\"]").await;
    b.wait_for("video#live[data-state=\"playing\"]").await;
    let script = "const v = document.getElementById('live'); \
                  return v ? [v.videoWidth, v.videoHeight, v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames] : null;";
    let played = b.until_script("three seconds of live video", script, |v| v[2].as_f64().unwrap_or(0.0) >= 3.0).await;
    assert_eq!((played[0].as_u64(), played[1].as_u64()), (Some(640), Some(360)), "{played}");
    let frames = played[3].as_u64().unwrap_or(0);
    assert!(frames >= 50, "3 s of a 25 fps camera decoded, got {frames} frames");
    let rtsp = b.wait_for("#live-rtsp code").await.text().await.unwrap_or_default();
    assert!(rtsp.ends_with("/cameras/kel-04/gate"), "the page names the RTSP address for VLC: {rtsp}");
    b.screenshot("camera-live").await;
    let live = w.until("the relay counts the browser", |v| World::gate(v, "kel-04")["viewers"] == 1).await;
    assert_eq!(World::gate(&live, "kel-04")["counters"]["upstreams"], 1, "{live:#}");
    assert_eq!(camera.sessions(), 2, "the snapshot's session, then the live one");

    // Leaving the page lets go of the stream: the camera session ends after the linger.
    b.click("#nav-rollouts").await;
    camera.wait_for("the live session ends after the linger", PATIENCE, |s, ended| s == 2 && ended == 2).await;
    w.until("the relay lets go", |v| World::gate(v, "kel-04")["live"] == false).await;
    b.close().await;
}
