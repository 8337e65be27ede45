//! The agent's side of the tunnel: it answers the fleet's HTTP/2 requests for a camera's
//! stream or next key frame (docs/design/cameras.md). A camera is pulled only while the
//! fleet holds such a request open; when the fleet drops it, the camera session ends.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use simpul_protocol::camera::{CameraRefusal, TunnelMessage, TunnelRequest, encode};
use simpul_protocol::control::CameraState;
use tokio::sync::mpsc;

use super::CameraStates;
use super::source::{self, Source};
use crate::config::CameraConfig;

/// Messages queued towards the fleet before the relay skips to the next key frame: about
/// two seconds of a 25 fps camera. A slow uplink loses whole GOPs, never half of one.
const QUEUE: usize = 50;

/// The body of a tunnel response.
pub type Body = BoxBody<Bytes, Infallible>;

/// The cameras the tunnel serves.
#[derive(Clone, Debug)]
pub struct Cameras {
    pub configs: Arc<BTreeMap<String, CameraConfig>>,
    pub states: CameraStates,
    pub timeout: Duration,
}

fn refusal(status: StatusCode, state: CameraState, error: String) -> Response<Body> {
    let json = serde_json::to_vec(&CameraRefusal { state, error }).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(json)).boxed());
    *resp.status_mut() = status;
    resp
}

/// Answers one request of the fleet.
pub async fn handle(req: Request<Incoming>, cams: Cameras) -> Result<Response<Body>, Infallible> {
    let (id, keyframe_only) = match TunnelRequest::parse(req.uri().path()) {
        Some(TunnelRequest::Stream(id)) => (id.to_owned(), false),
        Some(TunnelRequest::Keyframe(id)) => (id.to_owned(), true),
        None => {
            return Ok(refusal(
                StatusCode::NOT_FOUND,
                CameraState::Unknown,
                format!("no such path {}", req.uri().path()),
            ));
        }
    };
    let Some(cam) = cams.configs.get(&id) else {
        return Ok(refusal(StatusCode::NOT_FOUND, CameraState::Unknown, format!("this box has no camera {id}")));
    };
    let source = match source::open(cam, cams.timeout).await {
        Ok(s) => s,
        Err(e) => {
            cams.states.failed(&id, e.state, e.message.clone());
            return Ok(refusal(StatusCode::BAD_GATEWAY, e.state, e.message));
        }
    };
    tracing::info!(camera = %id, keyframe_only, "camera: relaying to the fleet");
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    tokio::spawn(pump(source, tx, id, cams.states.clone(), keyframe_only));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))))
}

/// Moves the camera's messages into the response until the fleet lets go, the camera
/// ends, or (for a key frame) the first key frame went.
async fn pump(mut source: Source, tx: mpsc::Sender<Bytes>, id: String, states: CameraStates, keyframe_only: bool) {
    states.streaming(&id, 1);
    let (mut skipping, mut skipped) = (false, 0u64);
    loop {
        let next = tokio::select! {
            next = source.next() => next,
            () = tx.closed() => break,
        };
        let message = match next {
            None => {
                tracing::info!(camera = %id, "camera: the camera ended the stream");
                break;
            }
            Some(Err(e)) => {
                states.failed(&id, e.state, e.message);
                break;
            }
            Some(Ok(m)) => m,
        };
        let mut buf = BytesMut::new();
        encode(&message, &mut buf);
        let keyframe = match &message {
            TunnelMessage::Description(d) => {
                states.answered(&id, source::label(d));
                // A description always goes: the frames after it need it.
                if tx.send(buf.freeze()).await.is_err() {
                    break;
                }
                continue;
            }
            TunnelMessage::Frame(f) => f.keyframe,
        };
        if keyframe_only && !keyframe {
            continue;
        }
        if skipping && !keyframe {
            skipped += 1;
            continue;
        }
        match tx.try_send(buf.freeze()) {
            Ok(()) => skipping = false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                skipping = true;
                skipped += 1;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
        if keyframe_only && keyframe {
            break;
        }
    }
    if skipped > 0 {
        tracing::info!(camera = %id, skipped, "camera: frames skipped while the uplink was behind");
    }
    states.streaming(&id, -1);
}
