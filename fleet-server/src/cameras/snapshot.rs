//! JPEG snapshots: a camera's latest key frame, decoded once by ffmpeg on the fleet (the
//! box never transcodes), kept for `[cameras] snapshot_max_age` so a grid on several
//! screens costs the uplink one key frame per camera.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use simpul_protocol::camera::{Codec, StreamDescription, VideoFrame, nal_units};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::RelayError;
use super::relay::{Key, Relays};

/// How long ffmpeg may take over one picture.
const DECODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Snapshots, and the ones made lately.
#[derive(Clone, Debug)]
pub struct Snapshots {
    relays: Relays,
    ffmpeg: PathBuf,
    max_age: Duration,
    made: Arc<Mutex<HashMap<Key, (Instant, Bytes)>>>,
}

impl Snapshots {
    pub fn new(relays: Relays, ffmpeg: PathBuf, max_age: Duration) -> Snapshots {
        Snapshots { relays, ffmpeg, max_age, made: Arc::default() }
    }

    /// A JPEG of `device`'s `camera`, at most `max_age` old.
    pub async fn jpeg(&self, device: &str, camera: &str) -> Result<Bytes, RelayError> {
        let key: Key = (device.to_owned(), camera.to_owned());
        if let Some((at, jpeg)) = self.made.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            if at.elapsed() < self.max_age {
                return Ok(jpeg.clone());
            }
        }
        let (description, frame) = self.relays.keyframe(device, camera).await?;
        let jpeg = decode(&self.ffmpeg, &description, &frame).await?;
        self.made.lock().unwrap_or_else(PoisonError::into_inner).insert(key, (Instant::now(), jpeg.clone()));
        Ok(jpeg)
    }
}

/// The key frame as an Annex B elementary stream, its parameter sets first.
pub fn annex_b(description: &StreamDescription, frame: &VideoFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.data.len() + 256);
    let sets = description.parameter_set_bytes();
    for nal in sets.iter().map(Vec::as_slice).chain(nal_units(&frame.data).iter().map(|b| b.as_ref())) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// Decodes one key frame to a JPEG with ffmpeg.
async fn decode(ffmpeg: &PathBuf, description: &StreamDescription, frame: &VideoFrame) -> Result<Bytes, RelayError> {
    let format = match description.codec {
        Codec::H264 => "h264",
        Codec::H265 => "hevc",
    };
    let input = annex_b(description, frame);
    let mut child = tokio::process::Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-f", format, "-i", "pipe:0"])
        .args(["-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "-q:v", "4", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RelayError::Snapshot(format!("cannot run {}: {e}", ffmpeg.display())))?;
    let run = async {
        let mut stdin = child.stdin.take().ok_or_else(|| RelayError::Snapshot("no stdin".to_owned()))?;
        let mut stdout = child.stdout.take().ok_or_else(|| RelayError::Snapshot("no stdout".to_owned()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| RelayError::Snapshot("no stderr".to_owned()))?;
        let feed = async move {
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let (mut jpeg, mut errors) = (Vec::new(), Vec::new());
        let (_, out, err) = tokio::join!(feed, stdout.read_to_end(&mut jpeg), stderr.read_to_end(&mut errors));
        out.and(err).map_err(|e| RelayError::Snapshot(e.to_string()))?;
        let status = child.wait().await.map_err(|e| RelayError::Snapshot(e.to_string()))?;
        if !status.success() || jpeg.is_empty() {
            let text = String::from_utf8_lossy(&errors);
            return Err(RelayError::Snapshot(format!("ffmpeg {status}: {}", text.trim())));
        }
        Ok(Bytes::from(jpeg))
    };
    tokio::time::timeout(DECODE_TIMEOUT, run)
        .await
        .map_err(|_| RelayError::Snapshot("ffmpeg took too long".to_owned()))?
}
