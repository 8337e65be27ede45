//! `GET /api/v1/cameras`: every camera the boxes report, its state, and what the relay
//! does with it; `GET /api/v1/cameras/{device}/{camera}/snapshot.jpg`: a JPEG of it;
//! and `GET /api/v1/cameras/{device}/{camera}/live.mp4`: the camera live as fragmented MP4
//! for the dashboard's player (docs/design/cameras.md).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;

use super::{ApiError, ApiState};
use crate::cameras::relay::CameraCounters;
use crate::cameras::{RelayError, Relays, Snapshots};
use crate::store;

/// What the camera routes use.
#[derive(Clone, Debug)]
pub struct CamerasApi {
    pub relays: Relays,
    pub snapshots: Snapshots,
    /// Where viewers connect over RTSP, when they can.
    pub rtsp: Option<std::net::SocketAddr>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CamerasParams {
    /// Only this device's cameras.
    #[serde(default)]
    device: Option<String>,
}

/// One camera.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CameraJson {
    pub device: String,
    pub camera: String,
    /// `ok`, `unauthorized`, `unreachable`, `unsupported` or `unknown`, as the box last saw it.
    pub state: String,
    /// Codec and size (`h264 1920x1080`), once known.
    pub video: Option<String>,
    pub error: Option<String>,
    /// When the heartbeat that said so arrived, ms since the epoch.
    pub reported_ms: i64,
    /// The box's camera tunnel is open now.
    pub tunnel: bool,
    /// The fleet relays it now.
    pub live: bool,
    /// Viewers watching now.
    pub viewers: usize,
    /// Since the fleet started.
    pub counters: CameraCounters,
    /// The RTSP path viewers open (after `rtsp://host:port`).
    pub rtsp_path: String,
}

/// The cameras and their relay.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CamerasJson {
    pub cameras: Vec<CameraJson>,
    /// The RTSP port viewers use, when RTSP is on.
    pub rtsp_port: Option<u16>,
}

/// Every camera the boxes report in their latest heartbeat.
#[utoipa::path(
    get,
    path = "/api/v1/cameras",
    tag = "cameras",
    params(CamerasParams),
    responses((status = 200, description = "Cameras by device", body = CamerasJson))
)]
pub async fn list(
    State(state): State<ApiState>,
    Query(p): Query<CamerasParams>,
) -> Result<Json<CamerasJson>, ApiError> {
    let only = match p.device {
        Some(d) => Some(device_id(d)?),
        None => None,
    };
    let latest = store::blocking(&state.store, move |s| {
        let devices = match only {
            Some(d) => vec![d],
            None => s.devices()?.into_iter().filter_map(|o| DeviceId::new(o.device).ok()).collect(),
        };
        let mut out = Vec::new();
        for d in devices {
            if let Some(point) = s.device_health(&d, i64::MIN, 1)?.into_iter().next() {
                out.push((d, point));
            }
        }
        Ok(out)
    })
    .await?;
    let cams = &state.cameras;
    let tunnels: std::collections::HashSet<String> = cams.relays.tunnels().devices().into_iter().collect();
    let (live, counters) = (cams.relays.live(), cams.relays.counters());
    let mut cameras = Vec::new();
    for (device, point) in latest {
        for (camera, h) in point.heartbeat.cameras {
            let key = (device.to_string(), camera.clone());
            cameras.push(CameraJson {
                rtsp_path: format!("/cameras/{device}/{camera}"),
                device: device.to_string(),
                state: h.state.as_str().to_owned(),
                video: h.video,
                error: h.error,
                reported_ms: point.at_ms,
                tunnel: tunnels.contains(device.as_str()),
                live: live.contains_key(&key),
                viewers: live.get(&key).copied().unwrap_or(0),
                counters: counters.get(&key).copied().unwrap_or_default(),
                camera,
            });
        }
    }
    Ok(Json(CamerasJson { cameras, rtsp_port: cams.rtsp.map(|a| a.port()) }))
}

/// A JPEG of the camera's latest key frame.
#[utoipa::path(
    get,
    path = "/api/v1/cameras/{device}/{camera}/snapshot.jpg",
    tag = "cameras",
    params(("device" = String, Path, description = "The device id"), ("camera" = String, Path, description = "The camera id")),
    responses(
        (status = 200, description = "image/jpeg"),
        (status = 404, description = "The box has no tunnel open, or no such camera"),
        (status = 502, description = "The camera refused or failed (the error says how)"),
        (status = 504, description = "The camera sent no key frame in time"),
    )
)]
pub async fn snapshot(
    State(state): State<ApiState>,
    Path((device, camera)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let device = device_id(device)?;
    let found = state.cameras.snapshots.jpeg(device.as_str(), &camera).await;
    media(found.map(|jpeg| (HeaderValue::from_static("image/jpeg"), Body::from(jpeg))))
}

/// The camera live as fragmented MP4, for the dashboard's player (Media Source Extensions).
#[utoipa::path(
    get,
    path = "/api/v1/cameras/{device}/{camera}/live.mp4",
    tag = "cameras",
    params(("device" = String, Path, description = "The device id"), ("camera" = String, Path, description = "The camera id")),
    responses(
        (status = 200, description = "video/mp4 with the codec string in Content-Type; an init segment, then one fragment per frame, from the last key frame on, until the stream ends"),
        (status = 404, description = "The box has no tunnel open, or no such camera"),
        (status = 502, description = "The camera refused or failed, or its stream cannot go in MP4 (the error says how)"),
        (status = 504, description = "The camera did not start in time"),
    )
)]
pub async fn live(
    State(state): State<ApiState>,
    Path((device, camera)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let device = device_id(device)?;
    let found = crate::cameras::live_mp4::open(&state.cameras.relays, device.as_str(), &camera).await;
    media(found.map(|live| {
        let content_type =
            HeaderValue::from_str(&live.content_type).unwrap_or_else(|_| HeaderValue::from_static("video/mp4"));
        (content_type, Body::from_stream(live.body.map(Ok::<_, std::convert::Infallible>)))
    }))
}

fn device_id(device: String) -> Result<DeviceId, ApiError> {
    DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A camera's picture or stream, never cached, or the relay's refusal with its status.
fn media(found: Result<(HeaderValue, Body), RelayError>) -> Result<Response, ApiError> {
    match found {
        Ok((content_type, body)) => Ok((
            [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            body,
        )
            .into_response()),
        Err(e) => Err(ApiError(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY), e.to_string())),
    }
}
