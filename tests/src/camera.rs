//! An IP camera and viewers for the camera tests: GStreamer's RTSP server from Debian's
//! packages (tests/fixtures/rtsp_camera.py) behind a password, and ffprobe as a viewer.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

/// The system Python, which has Debian's python3-gi (a pyenv's may not).
const PYTHON: &str = "/usr/bin/python3";

/// How long a camera may take to start.
const START: Duration = Duration::from_secs(30);

/// A camera on 127.0.0.1 streaming a test pattern at `/stream`.
#[derive(Debug)]
pub struct TestCamera {
    pub port: u16,
    /// Each `play N` / `closed N` line the camera printed.
    events: tokio::sync::watch::Receiver<Vec<String>>,
    _child: ChildGuard,
}

/// How the camera asks for its password.
#[derive(Clone, Copy, Debug)]
pub enum CameraAuth {
    Basic,
    Digest,
}

impl TestCamera {
    /// Starts a camera taking `user` and `password`, encoding `codec` (`h264`, `h265`).
    pub async fn start(user: &str, password: &str, codec: &str, auth: CameraAuth) -> std::io::Result<TestCamera> {
        Self::start_with(user, password, codec, auth, &[]).await
    }

    /// [`TestCamera::start`] with the picture given: `[width, height, kbit/s, pattern]`
    /// (GStreamer's videotestsrc patterns: `ball` compresses to little, `snow` fills the
    /// bit rate).
    pub async fn start_with(
        user: &str,
        password: &str,
        codec: &str,
        auth: CameraAuth,
        picture: &[&str],
    ) -> std::io::Result<TestCamera> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("rtsp_camera.py");
        let method = match auth {
            CameraAuth::Basic => "basic",
            CameraAuth::Digest => "digest",
        };
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .args(["0", user, password, codec, method])
            .args(picture)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (seen, events) = tokio::sync::watch::channel(Vec::new());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("ready ") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(port.trim().parse::<u16>().ok());
                    }
                    continue;
                }
                seen.send_modify(|v| v.push(line));
            }
        });
        let guard = ChildGuard::new(child);
        let port = tokio::time::timeout(START, ready_rx)
            .await
            .map_err(|_| std::io::Error::other("the camera did not start"))?
            .ok()
            .flatten()
            .ok_or_else(|| std::io::Error::other("the camera exited before it listened (GStreamer missing?)"))?;
        Ok(TestCamera { port, events, _child: guard })
    }

    /// The camera's address, without credentials (as the agent's config holds it).
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/stream", self.port)
    }

    fn count(events: &[String], prefix: &str) -> usize {
        events.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// Streams started by the camera's clients (camera sessions).
    pub fn sessions(&self) -> usize {
        Self::count(&self.events.borrow(), "play ")
    }

    /// Camera sessions that ended.
    pub fn sessions_ended(&self) -> usize {
        Self::count(&self.events.borrow(), "closed ")
    }

    /// Waits until `done(sessions, ended)` holds, woken by each line the camera prints.
    pub async fn wait_for(&self, what: &str, patience: Duration, done: impl Fn(usize, usize) -> bool) {
        let mut events = self.events.clone();
        let held = events.wait_for(|v| done(Self::count(v, "play "), Self::count(v, "closed ")));
        let ok = matches!(tokio::time::timeout(patience, held).await, Ok(Ok(_)));
        assert!(ok, "{what}: not within {patience:?} (sessions {}, ended {})", self.sessions(), self.sessions_ended());
    }
}

/// What ffprobe saw of a stream.
#[derive(Debug)]
pub struct Probed {
    pub ok: bool,
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub packets: u64,
    /// ffprobe's messages (the server's refusal, when it was refused).
    pub stderr: String,
}

/// Reads `url` over RTSP/TCP for `seconds` with ffprobe, counting video packets.
pub async fn ffprobe(url: &str, seconds: u32) -> std::io::Result<Probed> {
    probe(&["-rtsp_transport", "tcp"], url, seconds).await
}

/// Reads `url` over HTTP with a bearer `token` for `seconds` with ffprobe (the fleet's
/// live MP4), counting video packets.
pub async fn ffprobe_http(url: &str, token: &str, seconds: u32) -> std::io::Result<Probed> {
    probe(&["-headers", &format!("Authorization: Bearer {token}\r\n")], url, seconds).await
}

async fn probe(input: &[&str], url: &str, seconds: u32) -> std::io::Result<Probed> {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(input)
        .args(["-show_entries", "stream=codec_name,width,height,nb_read_packets", "-of", "json"])
        .args(["-read_intervals", &format!("%+{seconds}"), url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let s = &json["streams"][0];
    let num = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str().and_then(|t| t.parse().ok())).unwrap_or(0);
    Ok(Probed {
        ok: out.status.success(),
        codec: s["codec_name"].as_str().unwrap_or_default().to_owned(),
        width: num(&s["width"]),
        height: num(&s["height"]),
        packets: num(&s["nb_read_packets"]),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
