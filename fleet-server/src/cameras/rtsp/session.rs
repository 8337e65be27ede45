//! One viewer's RTSP connection: OPTIONS, DESCRIBE, SETUP (RTP over the RTSP connection,
//! RFC 2326 §10.12), PLAY, PAUSE, TEARDOWN and keep-alives, parsed with `rtsp-types`.
//! The video comes from the camera's relay, shared with every other viewer.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rtsp_types::headers::{self, RtpLowerTransport, Transport, Transports};
use rtsp_types::{Message, Method, ParseError, Request, Response, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{auth, sdp};
use crate::auth::AuthStore;
use crate::cameras::follow::follow;
use crate::cameras::relay::{Relays, Unit, Viewer};
use crate::cameras::rtp::Packets;
use futures_util::StreamExt;

/// The most unparsed request bytes a viewer may send.
const MAX_REQUEST: usize = 64 * 1024;
/// What the server says it does.
const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// Sent with each session id; over TCP the connection itself is the session.
const SESSION_TIMEOUT_S: u32 = 60;

type Writer = Arc<Mutex<OwnedWriteHalf>>;

/// What one connection holds.
struct Conn {
    relays: Relays,
    auth: Arc<dyn AuthStore>,
    writer: Writer,
    /// Who the credentials on this connection were, once checked.
    who: Option<(String, String)>,
    viewer: Option<Viewer>,
    session: Option<Session>,
    closing: bool,
}

struct Session {
    id: String,
    channel: u8,
    base: String,
    playing: Option<JoinHandle<()>>,
}

/// Serves one viewer until it leaves, the camera's upstream ends, or `shutdown`.
pub async fn serve(tcp: TcpStream, relays: Relays, auth: Arc<dyn AuthStore>, shutdown: CancellationToken) {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = tcp.set_nodelay(true);
    let (mut rd, wr) = tcp.into_split();
    let mut conn =
        Conn { relays, auth, writer: Arc::new(Mutex::new(wr)), who: None, viewer: None, session: None, closing: false };
    let mut buf = BytesMut::with_capacity(4096);
    'conn: loop {
        loop {
            let parsed = Message::<&[u8]>::parse(&buf[..]);
            let (reply, used) = match parsed {
                Ok((Message::Request(req), used)) => (Some(conn.handle(&req).await), used),
                Ok((_, used)) => (None, used),
                Err(ParseError::Incomplete(_)) => break,
                Err(ParseError::Error) => {
                    tracing::info!(%peer, "rtsp: a request that does not parse; closing");
                    break 'conn;
                }
            };
            buf.advance(used);
            if let Some(reply) = reply {
                if conn.writer.lock().await.write_all(&reply).await.is_err() {
                    break 'conn;
                }
            }
            if conn.closing {
                break 'conn;
            }
        }
        if buf.len() > MAX_REQUEST {
            tracing::info!(%peer, "rtsp: a request over 64 KiB; closing");
            break;
        }
        let ended = async {
            match &conn.viewer {
                Some(v) if conn.session.as_ref().is_some_and(|s| s.playing.is_some()) => v.ended().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            e = ended => {
                tracing::info!(%peer, error = %e, "rtsp: the camera's stream ended; closing the viewer");
                break;
            }
            () = shutdown.cancelled() => break,
        }
    }
    conn.stop();
    let _ = conn.writer.lock().await.shutdown().await;
}

/// `/cameras/{device}/{camera}` (and a track below it) from a request URL.
fn camera_of(req: &Request<&[u8]>) -> Option<(String, String)> {
    let url = req.request_uri()?;
    let mut parts = url.path().strip_prefix("/cameras/")?.split('/');
    let (device, camera) = (parts.next()?, parts.next()?);
    let ok = simpul_protocol::DeviceId::new(device.to_owned()).is_ok() && !camera.is_empty() && camera.len() <= 32;
    ok.then(|| (device.to_owned(), camera.to_owned()))
}

/// The URL of the camera itself, ending in `/` (the SDP's content base).
fn base_of(req: &Request<&[u8]>, device: &str, camera: &str) -> String {
    match req.request_uri() {
        Some(u) => {
            let mut base = u.clone();
            base.set_path(&format!("/cameras/{device}/{camera}/"));
            base.set_query(None);
            base.to_string()
        }
        None => format!("rtsp://localhost/cameras/{device}/{camera}/"),
    }
}

fn write(resp: Response<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = resp.write(&mut out);
    out
}

impl Conn {
    async fn handle(&mut self, req: &Request<&[u8]>) -> Vec<u8> {
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().to_owned()).unwrap_or_else(|| "0".to_owned());
        let reply = |status: StatusCode| Response::builder(Version::V1_0, status).header(headers::CSEQ, cseq.clone());
        let with_text = |status: StatusCode, text: String| {
            write(reply(status).header(headers::CONTENT_TYPE, "text/plain").build(text.into_bytes()))
        };
        let method = req.method().clone();
        if matches!(method, Method::Options | Method::GetParameter | Method::SetParameter) {
            return write(reply(StatusCode::Ok).header(headers::PUBLIC, PUBLIC).build(Vec::new()));
        }
        if method == Method::Teardown {
            self.closing = true;
            return write(reply(StatusCode::Ok).build(Vec::new()));
        }
        let Some((device, camera)) = camera_of(req) else {
            return with_text(StatusCode::NotFound, "cameras are at /cameras/{device}/{camera}\n".to_owned());
        };
        let authorization = req.header(&headers::AUTHORIZATION).map(|v| v.as_str().to_owned());
        if !self.authorized(authorization.as_deref()).await {
            return write(
                reply(StatusCode::Unauthorized).header(headers::WWW_AUTHENTICATE, auth::challenge()).build(Vec::new()),
            );
        }
        let switching = self.viewer.as_ref().is_some_and(|v| v.key() != &(device.clone(), camera.clone()));
        if switching {
            return with_text(StatusCode::MethodNotValidInThisState, "one camera per connection\n".to_owned());
        }
        let viewer = self.viewer.get_or_insert_with(|| self.relays.watch(&device, &camera));
        let (description, ssrc) = match viewer.live().await {
            Ok(found) => found,
            Err(e) => {
                self.viewer = None;
                return with_text(StatusCode::from(e.status()), format!("{e}\n"));
            }
        };
        match method {
            Method::Describe => write(
                reply(StatusCode::Ok)
                    .header(headers::CONTENT_TYPE, "application/sdp")
                    .header(headers::CONTENT_BASE, base_of(req, &device, &camera))
                    .build(sdp::describe(&device, &camera, &description)),
            ),
            Method::Setup => {
                let Some(channel) = tcp_channel(req) else {
                    return with_text(
                        StatusCode::UnsupportedTransport,
                        "only RTP over the RTSP connection (RTP/AVP/TCP;interleaved)\n".to_owned(),
                    );
                };
                let session = self.session.get_or_insert_with(|| Session {
                    id: format!("{:016X}", rand::random::<u64>()),
                    channel,
                    base: base_of(req, &device, &camera),
                    playing: None,
                });
                session.channel = channel;
                let transport =
                    format!("RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={ssrc:08X}", channel, channel.wrapping_add(1));
                write(
                    reply(StatusCode::Ok)
                        .header(headers::TRANSPORT, transport)
                        .header(headers::SESSION, format!("{};timeout={SESSION_TIMEOUT_S}", session.id))
                        .build(Vec::new()),
                )
            }
            Method::Play => {
                let Some(session) = self.session.as_mut() else {
                    return with_text(StatusCode::SessionNotFound, "SETUP first\n".to_owned());
                };
                let mut r = reply(StatusCode::Ok)
                    .header(headers::SESSION, session.id.clone())
                    .header(headers::RANGE, "npt=0.000-");
                if session.playing.is_none() {
                    let (gop, rx) = viewer.subscribe();
                    if let Some(first) = gop.first() {
                        let info = format!(
                            "url={}{};seq={};rtptime={}",
                            session.base,
                            sdp::TRACK,
                            first.rtp.first_seq,
                            first.rtp.rtp_timestamp
                        );
                        r = r.header(headers::RTP_INFO, info);
                    }
                    let key = viewer.key().clone();
                    let task = forward(gop, rx, Arc::clone(&self.writer), session.channel, self.relays.clone(), key);
                    session.playing = Some(tokio::spawn(task));
                }
                write(r.build(Vec::new()))
            }
            Method::Pause => {
                if let Some(s) = self.session.as_mut() {
                    if let Some(t) = s.playing.take() {
                        t.abort();
                    }
                }
                write(reply(StatusCode::Ok).build(Vec::new()))
            }
            _ => with_text(StatusCode::MethodNotAllowed, format!("{PUBLIC}\n")),
        }
    }

    async fn authorized(&mut self, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        if self.who.as_ref().is_some_and(|(h, _)| h == header) {
            return true;
        }
        match auth::check(&self.auth, Some(header)).await {
            Some(who) => {
                tracing::info!(viewer = %who, "rtsp: viewer signed in");
                self.who = Some((header.to_owned(), who));
                true
            }
            None => {
                tracing::warn!("rtsp: a viewer's credentials were refused");
                false
            }
        }
    }

    fn stop(&mut self) {
        if let Some(s) = self.session.as_mut() {
            if let Some(t) = s.playing.take() {
                t.abort();
            }
        }
        self.viewer = None;
    }
}

/// The interleaved channel of a SETUP asking for RTP over TCP; `None` if it asks only for
/// UDP or multicast.
fn tcp_channel(req: &Request<&[u8]>) -> Option<u8> {
    let transports = req.typed_header::<Transports>().ok()??;
    transports.iter().find_map(|t| match t {
        Transport::Rtp(rtp) if rtp.lower_transport == Some(RtpLowerTransport::Tcp) => {
            Some(rtp.params.interleaved.map_or(0, |(a, _)| a))
        }
        _ => None,
    })
}

/// Sends the stream to one viewer (see [`follow`]) until it or the relay goes.
async fn forward(
    gop: Vec<Arc<Unit>>,
    rx: broadcast::Receiver<Arc<Unit>>,
    writer: Writer,
    channel: u8,
    relays: Relays,
    key: (String, String),
) {
    let mut units = std::pin::pin!(follow(gop, rx, &key.1));
    while let Some(u) = units.next().await {
        if send(&writer, channel, &u.rtp, &relays, &key).await.is_err() {
            return;
        }
    }
}

async fn send(
    writer: &Writer,
    channel: u8,
    p: &Packets,
    relays: &Relays,
    key: &(String, String),
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(p.packets.iter().map(|b| b.len() + 4).sum());
    for pkt in &p.packets {
        out.extend_from_slice(&[b'$', channel]);
        out.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
        out.extend_from_slice(pkt);
    }
    writer.lock().await.write_all(&out).await?;
    relays.sent(key, out.len() as u64);
    Ok(())
}
