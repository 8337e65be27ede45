//! The camera tunnel's contract (docs/design/cameras.md).
//!
//! The agent dials the fleet's device listener with its client certificate and asks at
//! [`TUNNEL_PATH`] to upgrade the connection to [`TUNNEL_PROTOCOL`]. After the `101`, the
//! roles turn round: the fleet speaks HTTP/2 as the client, the agent serves, so the fleet
//! opens a stream per camera it needs through a box behind CGNAT.
//!
//! Inside the tunnel, the agent serves:
//! - `GET /cameras/{camera}/stream`: the camera's video, for as long as the fleet keeps
//!   the HTTP/2 stream open. The body is a sequence of [`TunnelMessage`]s, each framed as
//!   a 4-byte big-endian length and that many bytes ([`encode`] / [`decode`]): a
//!   [`StreamDescription`] first, then [`VideoFrame`]s, and a new description whenever the
//!   camera's parameters change.
//! - `GET /cameras/{camera}/keyframe`: the same, ending after the first key frame (the
//!   fleet makes a snapshot of it).
//!
//! A camera the agent cannot serve answers with an HTTP status and a JSON
//! [`CameraRefusal`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Where the agent asks for the tunnel on the fleet's device listener.
pub const TUNNEL_PATH: &str = "/api/v1/cameras/tunnel";
/// The `Upgrade` protocol name of the tunnel.
pub const TUNNEL_PROTOCOL: &str = "simpul-camera-tunnel/1";
/// The largest message either side accepts (a key frame of a 4K camera fits).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The path of a camera's live stream inside the tunnel.
pub fn stream_path(camera: &str) -> String {
    format!("/cameras/{camera}/stream")
}

/// The path of a camera's next key frame inside the tunnel.
pub fn keyframe_path(camera: &str) -> String {
    format!("/cameras/{camera}/keyframe")
}

/// What a path inside the tunnel asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelRequest<'a> {
    Stream(&'a str),
    Keyframe(&'a str),
}

impl<'a> TunnelRequest<'a> {
    /// Reads a path made by [`stream_path`] or [`keyframe_path`].
    pub fn parse(path: &'a str) -> Option<TunnelRequest<'a>> {
        let rest = path.strip_prefix("/cameras/")?;
        let (camera, what) = rest.split_once('/')?;
        if camera.is_empty() || camera.contains('/') {
            return None;
        }
        match what {
            "stream" => Some(TunnelRequest::Stream(camera)),
            "keyframe" => Some(TunnelRequest::Keyframe(camera)),
            _ => None,
        }
    }
}

/// A video codec the relay passes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// The RTP encoding name (RFC 6184, RFC 7798).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::H265 => "H265",
        }
    }
}

/// What a camera's stream is: enough for an RTSP viewer's SDP and an MP4 init segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDescription {
    pub codec: Codec,
    /// The RFC 6381 codec string (`avc1.64001F`), for browsers.
    pub rfc6381: String,
    pub width: u32,
    pub height: u32,
    /// The RTP clock of the timestamps (90 kHz for video).
    pub clock_rate: u32,
    /// The parameter sets, in order (H.264: SPS, PPS; H.265: VPS, SPS, PPS), hex.
    pub parameter_sets: Vec<String>,
    /// The ISO BMFF sample entry (`avc1` / `hvc1` box), hex.
    pub sample_entry: String,
}

impl StreamDescription {
    /// A 90 kHz video stream with these parameter sets and sample entry.
    pub fn video(
        codec: Codec,
        rfc6381: &str,
        (width, height): (u32, u32),
        sets: &[&[u8]],
        sample_entry: &[u8],
    ) -> Self {
        StreamDescription {
            codec,
            rfc6381: rfc6381.to_owned(),
            width,
            height,
            clock_rate: 90_000,
            parameter_sets: sets.iter().map(hex::encode).collect(),
            sample_entry: hex::encode(sample_entry),
        }
    }

    /// The parameter sets as bytes (entries that are not hex are left out).
    pub fn parameter_set_bytes(&self) -> Vec<Vec<u8>> {
        self.parameter_sets.iter().filter_map(|p| hex::decode(p).ok()).collect()
    }
}

/// One access unit: NAL units each behind a 4-byte big-endian length (the MP4 framing),
/// parameter sets out of band (in the [`StreamDescription`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// In [`StreamDescription::clock_rate`] ticks since the stream began.
    pub timestamp: i64,
    /// A random access point (IDR / IRAP).
    pub keyframe: bool,
    pub data: Bytes,
}

/// One message of a stream's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelMessage {
    Description(StreamDescription),
    Frame(VideoFrame),
}

/// Why a camera could not be served, as the agent answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraRefusal {
    pub state: crate::control::CameraState,
    pub error: String,
}

/// A tunnel message that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CameraWireError {
    #[error("an empty tunnel message")]
    Empty,
    #[error("tunnel message kind {0} is not known")]
    UnknownKind(u8),
    #[error("a frame message of {0} bytes is shorter than its header")]
    ShortFrame(usize),
    #[error("a stream description that is not JSON: {0}")]
    Description(String),
}

const KIND_DESCRIPTION: u8 = 1;
const KIND_FRAME: u8 = 2;
const FLAG_KEYFRAME: u8 = 1;
/// Kind, timestamp, flags.
const FRAME_HEADER: usize = 1 + 8 + 1;

/// Writes `message`, its length first, onto `out`.
pub fn encode(message: &TunnelMessage, out: &mut BytesMut) {
    match message {
        TunnelMessage::Description(d) => {
            let json = serde_json::to_vec(d).unwrap_or_default();
            out.put_u32((1 + json.len()) as u32);
            out.put_u8(KIND_DESCRIPTION);
            out.put_slice(&json);
        }
        TunnelMessage::Frame(f) => {
            out.put_u32((FRAME_HEADER + f.data.len()) as u32);
            out.put_u8(KIND_FRAME);
            out.put_i64(f.timestamp);
            out.put_u8(if f.keyframe { FLAG_KEYFRAME } else { 0 });
            out.put_slice(&f.data);
        }
    }
}

/// Reads one message's bytes (after its length, as a length-delimited codec yields them).
pub fn decode(mut body: Bytes) -> Result<TunnelMessage, CameraWireError> {
    let Some(&kind) = body.first() else { return Err(CameraWireError::Empty) };
    match kind {
        KIND_DESCRIPTION => serde_json::from_slice(&body[1..])
            .map(TunnelMessage::Description)
            .map_err(|e| CameraWireError::Description(e.to_string())),
        KIND_FRAME => {
            if body.len() < FRAME_HEADER {
                return Err(CameraWireError::ShortFrame(body.len()));
            }
            body.advance(1);
            let timestamp = body.get_i64();
            let keyframe = body.get_u8() & FLAG_KEYFRAME != 0;
            Ok(TunnelMessage::Frame(VideoFrame { timestamp, keyframe, data: body }))
        }
        other => Err(CameraWireError::UnknownKind(other)),
    }
}

/// The NAL units of a frame's data (4-byte big-endian lengths); a length running past the
/// end ends the list.
pub fn nal_units(data: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 4 <= data.len() {
        let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        at += 4;
        if len == 0 || at + len > data.len() {
            break;
        }
        out.push(data.slice(at..at + len));
        at += len;
    }
    out
}
