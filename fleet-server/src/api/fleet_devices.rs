//! `GET /api/v1/devices`: every device with online/offline, its latest health and alerts.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::json::rfc3339_ms;
use super::{ApiError, ApiState};
use crate::health::{Alert, HealthSettings, alerts, is_online};
use crate::ingest::now_ms;
use crate::store::{self, DeviceOverview, HealthSummary};

/// The device list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceListJson {
    /// Devices the fleet heard from, by name.
    pub devices: Vec<DeviceJson>,
    /// How many are online.
    pub online: usize,
}

/// One device in the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceJson {
    pub device: String,
    /// Its last status said online and its last heartbeat is younger than `health.offline_after`.
    pub online: bool,
    /// What its last status said (`false`: its last will fired or it stopped cleanly).
    pub status_online: Option<bool>,
    /// When the fleet last received anything from it, RFC 3339 UTC.
    pub last_seen: Option<String>,
    pub last_seen_ms: Option<i64>,
    /// Its latest heartbeat, summarised.
    pub health: Option<HealthSummary>,
    /// What needs a look (empty: nothing).
    pub alerts: Vec<Alert>,
}

impl DeviceJson {
    /// A device as the list shows it at `now_ms`.
    pub fn of(d: DeviceOverview, now_ms: i64, settings: &HealthSettings) -> DeviceJson {
        let heartbeat_ms = d.health.as_ref().map(|h| h.received_at_ms);
        DeviceJson {
            online: is_online(d.status_online, heartbeat_ms, now_ms, settings.offline_after),
            alerts: alerts(&d.device, d.health.as_ref(), now_ms, &settings.alerts),
            device: d.device,
            status_online: d.status_online,
            last_seen: d.last_seen_ms.map(rfc3339_ms),
            last_seen_ms: d.last_seen_ms,
            health: d.health,
        }
    }
}

/// Every device with online/offline, health summary and alerts.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    responses(
        (status = 200, description = "Every device the fleet heard from", body = DeviceListJson),
        (status = 503, description = "The store is busy; retry"),
    )
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<DeviceListJson>, ApiError> {
    let overview = store::blocking(&state.store, |s| s.devices()).await?;
    let now = now_ms();
    let devices: Vec<DeviceJson> = overview.into_iter().map(|d| DeviceJson::of(d, now, &state.health)).collect();
    let online = devices.iter().filter(|d| d.online).count();
    Ok(Json(DeviceListJson { devices, online }))
}
