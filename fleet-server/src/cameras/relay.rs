//! The fan-out: one upstream per camera through its box's tunnel, however many watch
//! (docs/design/cameras.md). The first viewer starts it; it keeps the frames since the
//! last key frame so the next viewer starts at once; after the last viewer leaves it
//! lingers, then lets go of the tunnel stream, and the box stops pulling the camera.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use simpul_protocol::camera::{
    CameraRefusal, MAX_MESSAGE, StreamDescription, TunnelMessage, VideoFrame, decode, keyframe_path, stream_path,
};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::io::StreamReader;

use super::RelayError;
use super::rtp::{Packetizer, Packets};
use super::tunnels::Tunnels;

/// Frames a viewer may fall behind before it skips to the next key frame.
const FAN_OUT: usize = 256;
/// The most frames kept for a starting viewer (a GOP longer than this starts later).
const MAX_GOP: usize = 600;

/// A camera: (device, camera id).
pub type Key = (String, String);

/// What the upstream of a relay is doing.
#[derive(Clone, Debug)]
pub enum Upstream {
    Starting,
    Live(Arc<StreamDescription>, u32),
    Ended(RelayError),
}

/// One access unit as every viewer gets it: the frame (for MP4 viewers), its RTP packets
/// (for RTSP viewers, made once for all of them) and the stream it belongs to.
#[derive(Debug)]
pub struct Unit {
    pub description: Arc<StreamDescription>,
    pub frame: VideoFrame,
    pub rtp: Packets,
}

/// One camera's upstream and its viewers.
#[derive(Debug)]
pub struct Relay {
    key: Key,
    state: watch::Sender<Upstream>,
    viewers: watch::Sender<usize>,
    frames: broadcast::Sender<Arc<Unit>>,
    /// The units since the last key frame, that key frame first.
    gop: Mutex<Vec<Arc<Unit>>>,
}

/// Per camera, since the fleet started: what the relay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CameraCounters {
    /// Upstreams opened through the tunnel (camera sessions on the box).
    pub upstreams: u64,
    /// Bytes received through the tunnel.
    pub tunnel_bytes: u64,
    /// Bytes sent to viewers.
    pub viewer_bytes: u64,
    /// Viewers served.
    pub viewers: u64,
}

#[derive(Debug)]
struct Inner {
    relays: Mutex<HashMap<Key, Arc<Relay>>>,
    counters: Mutex<HashMap<Key, CameraCounters>>,
    tunnels: Tunnels,
    linger: Duration,
    open_timeout: Duration,
    next_id: AtomicU64,
}

/// Every camera's relay.
#[derive(Clone, Debug)]
pub struct Relays(Arc<Inner>);

/// A viewer's hold on a relay: the upstream runs while one exists (plus the linger).
#[derive(Debug)]
pub struct Viewer {
    relay: Arc<Relay>,
    relays: Relays,
}

impl Relays {
    pub fn new(tunnels: Tunnels, linger: Duration, open_timeout: Duration) -> Relays {
        Relays(Arc::new(Inner {
            relays: Mutex::default(),
            counters: Mutex::default(),
            tunnels,
            linger,
            open_timeout,
            next_id: AtomicU64::new(1),
        }))
    }

    pub fn tunnels(&self) -> &Tunnels {
        &self.0.tunnels
    }

    fn count(&self, key: &Key, f: impl FnOnce(&mut CameraCounters)) {
        f(self.0.counters.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default());
    }

    /// Bytes sent to a viewer of `key`.
    pub fn sent(&self, key: &Key, bytes: u64) {
        self.count(key, |c| c.viewer_bytes += bytes);
    }

    /// Each camera's counters.
    pub fn counters(&self) -> HashMap<Key, CameraCounters> {
        self.0.counters.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Each camera being relayed now, with its viewer count.
    pub fn live(&self) -> HashMap<Key, usize> {
        let relays = self.0.relays.lock().unwrap_or_else(PoisonError::into_inner);
        relays.iter().map(|(k, r)| (k.clone(), *r.viewers.borrow())).collect()
    }

    /// A new viewer of `device`'s `camera`; starts the upstream if none runs.
    pub fn watch(&self, device: &str, camera: &str) -> Viewer {
        let key: Key = (device.to_owned(), camera.to_owned());
        let mut relays = self.0.relays.lock().unwrap_or_else(PoisonError::into_inner);
        let relay = match relays.get(&key) {
            Some(r) => Arc::clone(r),
            None => {
                let relay = Arc::new(Relay {
                    key: key.clone(),
                    state: watch::Sender::new(Upstream::Starting),
                    viewers: watch::Sender::new(0),
                    frames: broadcast::Sender::new(FAN_OUT),
                    gop: Mutex::default(),
                });
                relays.insert(key.clone(), Arc::clone(&relay));
                tokio::spawn(upstream(Arc::clone(&relay), self.clone()));
                relay
            }
        };
        relay.viewers.send_modify(|n| *n += 1);
        drop(relays);
        self.count(&key, |c| c.viewers += 1);
        Viewer { relay, relays: self.clone() }
    }

    /// Removes `relay` (not a newer one for the same camera). With `only_if_idle`, only
    /// if nobody watches it, checked under the lock new viewers take: `false` if one came.
    fn remove(&self, relay: &Arc<Relay>, only_if_idle: bool) -> bool {
        let mut relays = self.0.relays.lock().unwrap_or_else(PoisonError::into_inner);
        if only_if_idle && *relay.viewers.borrow() > 0 {
            return false;
        }
        if relays.get(&relay.key).is_some_and(|r| Arc::ptr_eq(r, relay)) {
            relays.remove(&relay.key);
        }
        true
    }

    /// The camera's latest key frame: from a running relay, else fetched through the
    /// tunnel on its own (the camera is pulled only until its first key frame).
    pub async fn keyframe(
        &self,
        device: &str,
        camera: &str,
    ) -> Result<(Arc<StreamDescription>, VideoFrame), RelayError> {
        let key: Key = (device.to_owned(), camera.to_owned());
        let running = self.0.relays.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if let Some(relay) = running {
            if let Some(u) = relay.gop.lock().unwrap_or_else(PoisonError::into_inner).first() {
                return Ok((Arc::clone(&u.description), u.frame.clone()));
            }
        }
        let fetch = async {
            let mut messages = self.open(&key, &keyframe_path(camera)).await?;
            let mut description = None;
            while let Some(m) = messages.next().await {
                match m? {
                    TunnelMessage::Description(d) => description = Some(Arc::new(d)),
                    TunnelMessage::Frame(f) if f.keyframe => {
                        if let Some(d) = description {
                            return Ok((d, f));
                        }
                    }
                    TunnelMessage::Frame(_) => {}
                }
            }
            Err(RelayError::Ended)
        };
        tokio::time::timeout(self.0.open_timeout, fetch).await.map_err(|_| RelayError::Timeout(self.0.open_timeout))?
    }

    /// Opens `path` of `key`'s box and reads its messages.
    async fn open(
        &self,
        key: &Key,
        path: &str,
    ) -> Result<impl futures_util::Stream<Item = Result<TunnelMessage, RelayError>> + use<>, RelayError> {
        let resp = self.0.tunnels.get(&key.0, path).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body =
                http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(match serde_json::from_slice::<CameraRefusal>(&body) {
                Ok(r) => RelayError::Camera { camera: key.1.clone(), state: r.state, error: r.error },
                Err(_) => RelayError::Tunnel(format!("{status}: {}", String::from_utf8_lossy(&body))),
            });
        }
        let body = http_body_util::BodyDataStream::new(resp.into_body()).map_err(std::io::Error::other);
        let codec = LengthDelimitedCodec::builder().length_field_length(4).max_frame_length(MAX_MESSAGE).new_codec();
        let relays = self.clone();
        let key = key.clone();
        Ok(FramedRead::new(StreamReader::new(body), codec).filter_map(move |item| {
            let out = match item {
                Ok(bytes) => {
                    relays.count(&key, |c| c.tunnel_bytes += bytes.len() as u64 + 4);
                    match decode(bytes.freeze()) {
                        Ok(m) => Some(Ok(m)),
                        Err(e) => {
                            tracing::warn!(device = %key.0, camera = %key.1, error = %e, "camera tunnel: a message skipped");
                            None
                        }
                    }
                }
                Err(e) => Some(Err(RelayError::Tunnel(e.to_string()))),
            };
            std::future::ready(out)
        }))
    }
}

impl Viewer {
    pub fn key(&self) -> &Key {
        &self.relay.key
    }

    /// Waits until the camera streams (its description and the SSRC of its packets).
    pub async fn live(&self) -> Result<(Arc<StreamDescription>, u32), RelayError> {
        let mut state = self.relay.state.subscribe();
        let timeout = self.relays.0.open_timeout;
        let ready = state.wait_for(|s| !matches!(s, Upstream::Starting));
        let found = tokio::time::timeout(timeout, ready).await.map_err(|_| RelayError::Timeout(timeout))?;
        let found = found.map_err(|_| RelayError::Ended)?.clone();
        match found {
            Upstream::Live(d, ssrc) => Ok((d, ssrc)),
            Upstream::Ended(e) => Err(e),
            Upstream::Starting => Err(RelayError::Ended),
        }
    }

    /// The units since the last key frame, and every unit after them.
    pub fn subscribe(&self) -> (Vec<Arc<Unit>>, broadcast::Receiver<Arc<Unit>>) {
        let gop = self.relay.gop.lock().unwrap_or_else(PoisonError::into_inner);
        (gop.clone(), self.relay.frames.subscribe())
    }

    /// Resolves when the upstream ended (the future holds no borrow of the viewer).
    pub fn ended(&self) -> impl Future<Output = RelayError> + Send + 'static {
        let mut state = self.relay.state.subscribe();
        async move {
            match state.wait_for(|s| matches!(s, Upstream::Ended(_))).await {
                Ok(s) => match &*s {
                    Upstream::Ended(e) => e.clone(),
                    _ => RelayError::Ended,
                },
                Err(_) => RelayError::Ended,
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.relay.viewers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Runs a relay's upstream until it lingered out or failed.
async fn upstream(relay: Arc<Relay>, relays: Relays) {
    let id = relays.0.next_id.fetch_add(1, Ordering::Relaxed);
    let (device, camera) = relay.key.clone();
    tracing::info!(%device, %camera, upstream = id, "camera relay: opening the camera through the tunnel");
    relays.count(&relay.key, |c| c.upstreams += 1);
    let ended = match pull(&relay, &relays).await {
        Ok(()) => {
            tracing::info!(%device, %camera, upstream = id, "camera relay: nobody watched for the linger; closed");
            RelayError::Ended
        }
        Err(e) => {
            tracing::warn!(%device, %camera, upstream = id, error = %e, "camera relay: upstream ended");
            relays.remove(&relay, false);
            e
        }
    };
    relay.state.send_replace(Upstream::Ended(ended));
}

async fn pull(relay: &Arc<Relay>, relays: &Relays) -> Result<(), RelayError> {
    let mut messages = std::pin::pin!(relays.open(&relay.key, &stream_path(&relay.key.1)).await?);
    let mut viewers = relay.viewers.subscribe();
    let linger = relays.0.linger;
    let mut idle_since = (*viewers.borrow_and_update() == 0).then(Instant::now);
    let mut packetizer: Option<Packetizer> = None;
    let mut sets: Vec<Bytes> = Vec::new();
    let mut description: Option<Arc<StreamDescription>> = None;
    loop {
        let lingered = async {
            match idle_since {
                Some(t) => tokio::time::sleep_until(t + linger).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = messages.next() => match m {
                None => return Err(RelayError::Ended),
                Some(Err(e)) => return Err(e),
                Some(Ok(TunnelMessage::Description(d))) => {
                    sets = d.parameter_set_bytes().into_iter().map(Bytes::from).collect();
                    if packetizer.as_ref().is_none_or(|p| p.codec() != d.codec) {
                        packetizer = Some(Packetizer::new(d.codec));
                    }
                    let d = Arc::new(d);
                    description = Some(Arc::clone(&d));
                    let ssrc = packetizer.as_ref().map_or(0, Packetizer::ssrc);
                    relay.state.send_replace(Upstream::Live(d, ssrc));
                }
                Some(Ok(TunnelMessage::Frame(f))) => {
                    let (Some(p), Some(d)) = (packetizer.as_mut(), description.as_ref()) else { continue };
                    let unit = Arc::new(Unit { description: Arc::clone(d), rtp: p.packetize(&f, &sets), frame: f });
                    let mut gop = relay.gop.lock().unwrap_or_else(PoisonError::into_inner);
                    if unit.frame.keyframe {
                        gop.clear();
                    }
                    if (unit.frame.keyframe || !gop.is_empty()) && gop.len() < MAX_GOP {
                        gop.push(Arc::clone(&unit));
                    }
                    // Sent under the GOP's lock: a viewer subscribing now gets each unit once.
                    let _ = relay.frames.send(unit);
                }
            },
            changed = viewers.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now_watching = *viewers.borrow_and_update();
                idle_since = if now_watching == 0 { Some(idle_since.unwrap_or_else(Instant::now)) } else { None };
            }
            () = lingered => {
                if relays.remove(relay, true) {
                    return Ok(());
                }
                idle_since = None;
            }
        }
    }
}
