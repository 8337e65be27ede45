//! Pulling one camera with retina: DESCRIBE (with the camera's credentials), SETUP of its
//! first H.264 or H.265 video stream over RTSP/TCP, PLAY, and its access units in MP4
//! framing with the parameter sets out of band (docs/design/cameras.md). Nothing is
//! decoded or re-encoded.

use std::time::Duration;

use futures_util::StreamExt;
use retina::client::{Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParameters, VideoParametersCodec};
use simpul_protocol::camera::{Codec, StreamDescription, TunnelMessage, VideoFrame};
use simpul_protocol::control::CameraState;

use crate::config::CameraConfig;

/// Why a camera could not be used, with the state it leaves the camera in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraError {
    pub state: CameraState,
    pub message: String,
}

impl CameraError {
    fn new(state: CameraState, message: impl Into<String>) -> CameraError {
        CameraError { state, message: message.into() }
    }

    /// A retina error, sorted by what it means for the camera.
    fn from_retina(e: &retina::Error) -> CameraError {
        let state = match e.status_code() {
            Some(401 | 403) => CameraState::Unauthorized,
            Some(_) => CameraState::Unsupported,
            None => CameraState::Unreachable,
        };
        let message = match state {
            CameraState::Unauthorized => "the camera refused the configured username and password".to_owned(),
            // retina's messages carry connection details over several lines; the first says what.
            _ => e.to_string().lines().next().unwrap_or("camera error").to_owned(),
        };
        CameraError { state, message }
    }
}

impl std::fmt::Display for CameraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.state.as_str(), self.message)
    }
}

/// A described camera: which stream the relay would take.
struct Described {
    session: Session<retina::client::Described>,
    stream: usize,
}

async fn describe(cam: &CameraConfig, timeout: Duration) -> Result<Described, CameraError> {
    let url = url::Url::parse(&cam.url).map_err(|e| CameraError::new(CameraState::Unsupported, e.to_string()))?;
    let creds = cam.username.as_ref().map(|u| Credentials {
        username: u.clone(),
        password: cam.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default(),
    });
    let options =
        SessionOptions::default().creds(creds).user_agent(format!("simpul-agent/{}", crate::version::current()));
    let session = tokio::time::timeout(timeout, Session::describe(url, options))
        .await
        .map_err(|_| CameraError::new(CameraState::Unreachable, format!("no answer within {timeout:?}")))?
        .map_err(|e| CameraError::from_retina(&e))?;
    let stream =
        session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && codec_of(s.encoding_name()).is_some())
            .ok_or_else(|| CameraError::new(CameraState::Unsupported, "the camera offers no H.264 or H.265 video"))?;
    Ok(Described { session, stream })
}

fn codec_of(encoding_name: &str) -> Option<Codec> {
    match encoding_name.to_ascii_lowercase().as_str() {
        "h264" => Some(Codec::H264),
        "h265" => Some(Codec::H265),
        _ => None,
    }
}

/// Checks the camera answers with a stream the relay can pass on (DESCRIBE only: no video
/// crosses the LAN). The answer names the codec and size when the SDP carries them.
pub async fn probe(cam: &CameraConfig, timeout: Duration) -> Result<String, CameraError> {
    let d = describe(cam, timeout).await?;
    let s = &d.session.streams()[d.stream];
    let codec = s.encoding_name().to_ascii_lowercase();
    let described = match (s.parameters(), codec_of(s.encoding_name())) {
        (Some(ParametersRef::Video(v)), Some(c)) => describe_video(c, v),
        _ => None,
    };
    Ok(described.as_ref().map_or(codec, label))
}

/// What the heartbeat says a camera sends: `h264 1920x1080`.
pub fn label(d: &StreamDescription) -> String {
    format!("{} {}x{}", d.codec.encoding_name().to_ascii_lowercase(), d.width, d.height)
}

/// A camera being pulled.
pub struct Source {
    demuxed: Demuxed,
    stream: usize,
    codec: Codec,
    /// The description last sent.
    last: Option<StreamDescription>,
    /// A frame held back while its new description goes first.
    pending: Option<TunnelMessage>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("stream", &self.stream).field("codec", &self.codec).finish_non_exhaustive()
    }
}

/// Starts pulling the camera.
pub async fn open(cam: &CameraConfig, timeout: Duration) -> Result<Source, CameraError> {
    let Described { mut session, stream } = describe(cam, timeout).await?;
    let codec = codec_of(session.streams()[stream].encoding_name())
        .ok_or_else(|| CameraError::new(CameraState::Unsupported, "no H.264 or H.265 video"))?;
    let setup = SetupOptions::default().transport(Transport::Tcp(Default::default())).frame_format(FrameFormat::MP4);
    let start = async {
        session.setup(stream, setup).await?;
        session.play(PlayOptions::default()).await?.demuxed()
    };
    let demuxed = tokio::time::timeout(timeout, start)
        .await
        .map_err(|_| CameraError::new(CameraState::Unreachable, format!("no answer within {timeout:?}")))?
        .map_err(|e| CameraError::from_retina(&e))?;
    Ok(Source { demuxed, stream, codec, last: None, pending: None })
}

impl Source {
    fn description(&self) -> Option<StreamDescription> {
        let Some(ParametersRef::Video(v)) = self.demuxed.streams()[self.stream].parameters() else { return None };
        describe_video(self.codec, v)
    }

    /// The next message for the tunnel: the description first (and again when the camera
    /// changes its parameters), then frames. `None`: the camera ended the stream.
    pub async fn next(&mut self) -> Option<Result<TunnelMessage, CameraError>> {
        if let Some(m) = self.pending.take() {
            return Some(Ok(m));
        }
        loop {
            let item = match self.demuxed.next().await? {
                Ok(item) => item,
                Err(e) => return Some(Err(CameraError::from_retina(&e))),
            };
            let CodecItem::VideoFrame(frame) = item else { continue };
            if frame.stream_id() != self.stream {
                continue;
            }
            let changed = frame.has_new_parameters() || self.last.is_none();
            let message = TunnelMessage::Frame(VideoFrame {
                timestamp: frame.timestamp().elapsed(),
                keyframe: frame.is_random_access_point(),
                data: bytes::Bytes::from(frame.into_data()),
            });
            if changed {
                match self.description() {
                    Some(d) if self.last.as_ref() != Some(&d) => {
                        self.last = Some(d.clone());
                        self.pending = Some(message);
                        return Some(Ok(TunnelMessage::Description(d)));
                    }
                    // No parameters yet: frames before them cannot be decoded anyway.
                    None if self.last.is_none() => continue,
                    _ => {}
                }
            }
            return Some(Ok(message));
        }
    }
}

/// The tunnel's description of a retina video stream.
pub fn describe_video(codec: Codec, v: &VideoParameters) -> Option<StreamDescription> {
    let sets: Vec<&[u8]> = match v.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => vec![sps, pps],
        VideoParametersCodec::H265 { vps, sps, pps } => vec![vps, sps, pps],
        _ => return None,
    };
    let sample_entry = v.mp4_sample_entry().build().ok()?;
    Some(StreamDescription::video(codec, v.rfc6381_codec(), v.pixel_dimensions(), &sets, &sample_entry))
}
