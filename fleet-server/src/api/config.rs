//! Desired device config (docs/design/fleet-config-distribution.md):
//!
//! - `GET /api/v1/devices/{device}/config`: the latest desired version, the device's group
//!   and override, what the device reported, and whether it runs the latest;
//! - `PUT /api/v1/devices/{device}/config` `{toml, comment}`: the device's own override;
//! - `GET /api/v1/devices/{device}/config/history?limit=`: its versions, newest first;
//! - `PUT /api/v1/devices/{device}/group` `{group, comment}`: its group (`null`: none);
//! - `GET /api/v1/groups`, `PUT /api/v1/groups/{group}` `{defaults, comment}`.
//!
//! Every PUT writes a new version for each device it affects, then has the publisher send
//! each one's latest, retained. A TOML syntax error is a 400 naming the line.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;
use simpul_protocol::control::ConfigState;

use super::json::rfc3339_ms;
use super::{ApiError, ApiState};
use crate::auth::Principal;
use crate::config_merge;
use crate::store::config::state_name;
use crate::store::{self, ConfigChange, ConfigRefused, ConfigVersion};

/// The default number of versions in a history.
const DEFAULT_LIMIT: usize = 100;

/// The longest group name.
const GROUP_MAX_LEN: usize = 64;

/// A device's own config override.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DeviceConfigBody {
    /// Agent-config TOML laid over the group's defaults (may be empty).
    pub toml: String,
    /// Why, for the history.
    #[serde(default)]
    pub comment: String,
}

/// A group's defaults.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupBody {
    /// Agent-config TOML every device of the group starts from.
    pub defaults: String,
    #[serde(default)]
    pub comment: String,
}

/// A device's group.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MembershipBody {
    /// An existing group, or `null` for none.
    pub group: Option<String>,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// At most this many, newest first. Default 100; capped at `api.max_limit`.
    #[serde(default)]
    limit: Option<usize>,
}

/// One desired version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigVersionJson {
    pub version: u64,
    /// The merged config sent to the device.
    pub toml: String,
    pub author: String,
    /// When it was written, RFC 3339 UTC.
    pub at: String,
    pub at_ms: i64,
    pub comment: String,
}

impl From<ConfigVersion> for ConfigVersionJson {
    fn from(v: ConfigVersion) -> Self {
        ConfigVersionJson {
            version: v.version,
            toml: v.toml,
            author: v.author,
            at: rfc3339_ms(v.at_ms),
            at_ms: v.at_ms,
            comment: v.comment,
        }
    }
}

/// What the device last reported.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportedJson {
    pub version: u64,
    /// `applied`, `rejected`, `rolled_back` or `unknown`.
    pub state: String,
    /// Why it was rejected or rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the fleet received it, RFC 3339 UTC.
    pub at: String,
    pub at_ms: i64,
}

/// A device's config.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceConfigJson {
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The device's own override, as written.
    pub override_toml: String,
    /// The latest desired version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<ConfigVersionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedJson>,
    /// The device reported the latest desired version as applied.
    pub running_latest: bool,
}

/// A device's versions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryJson {
    pub device: String,
    pub versions: Vec<ConfigVersionJson>,
}

/// A group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupJson {
    pub name: String,
    pub defaults: String,
    pub updated_ms: i64,
    /// Its devices, by name.
    pub devices: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupsJson {
    pub groups: Vec<GroupJson>,
}

/// A device given a new version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewVersionJson {
    pub device: String,
    pub version: u64,
}

/// What a change wrote: one new version per affected device (published retained).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangedJson {
    pub versions: Vec<NewVersionJson>,
}

fn device_id(device: String) -> Result<DeviceId, ApiError> {
    DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn check_toml(what: &str, text: &str) -> Result<(), ApiError> {
    config_merge::parse(text).map(|_| ()).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// A group name: 1-64 of `a-z`, `0-9`, `-`, `_`, `.`, starting with a letter or digit.
fn check_group(name: &str) -> Result<(), ApiError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    let ok = !name.is_empty()
        && name.len() <= GROUP_MAX_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(ok_char);
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "a group name is 1-{GROUP_MAX_LEN} of a-z, 0-9, '-', '_', '.', starting with a letter or digit; {name:?} is not"
        )))
    }
}

pub(super) fn change(principal: Option<Extension<Principal>>, comment: String) -> ConfigChange {
    ConfigChange { author: author(principal), at_ms: crate::ingest::now_ms(), comment }
}

/// Who made a change: the user of a login session, or the API token's id.
pub(super) fn author(principal: Option<Extension<Principal>>) -> String {
    match principal {
        Some(Extension(p)) => p.user.unwrap_or_else(|| format!("token:{}", p.token_id)),
        None => "api".to_owned(),
    }
}

/// Hands the new versions to the publisher and answers with them.
fn changed(state: &ApiState, versions: Vec<ConfigVersion>) -> Json<ChangedJson> {
    state.desired.changed(versions.iter().map(|v| v.device.clone()));
    let versions =
        versions.into_iter().map(|v| NewVersionJson { device: v.device.to_string(), version: v.version }).collect();
    Json(ChangedJson { versions })
}

/// A device's desired config, reported state, and whether it runs the latest.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{device}/config",
    tag = "config",
    params(("device" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "The device's config", body = DeviceConfigJson),
        (status = 400, description = "Not a device id"),
        (status = 404, description = "No config and no report for this device"),
    )
)]
pub async fn show(
    State(state): State<ApiState>,
    Path(device): Path<String>,
) -> Result<Json<DeviceConfigJson>, ApiError> {
    let device = device_id(device)?;
    let d = device.clone();
    let found = store::blocking(&state.store, move |s| s.device_config(&d))
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("device {:?} has no config", device.as_str())))?;
    let running_latest = match (&found.desired, &found.reported) {
        (Some(d), Some(r)) => r.version == d.version && r.state == ConfigState::Applied,
        _ => false,
    };
    let reported = found.reported.map(|r| ReportedJson {
        version: r.version,
        state: state_name(r.state).to_owned(),
        error: r.error,
        at: rfc3339_ms(r.at_ms),
        at_ms: r.at_ms,
    });
    Ok(Json(DeviceConfigJson {
        device: device.to_string(),
        group: found.group,
        override_toml: found.override_toml,
        desired: found.desired.map(Into::into),
        reported,
        running_latest,
    }))
}

/// Sets a device's own override; writes and publishes its next version.
#[utoipa::path(
    put,
    path = "/api/v1/devices/{device}/config",
    tag = "config",
    params(("device" = String, Path, description = "The device id")),
    request_body = DeviceConfigBody,
    responses(
        (status = 200, description = "The new version", body = ChangedJson),
        (status = 400, description = "Not a device id, or a TOML syntax error (with its line)"),
    )
)]
pub async fn set(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    principal: Option<Extension<Principal>>,
    Json(body): Json<DeviceConfigBody>,
) -> Result<Json<ChangedJson>, ApiError> {
    let device = device_id(device)?;
    check_toml("config TOML", &body.toml)?;
    let change = change(principal, body.comment);
    let v = store::blocking(&state.store, move |s| s.set_device_config(&device, &body.toml, &change)).await?;
    Ok(changed(&state, vec![v]))
}

/// A device's desired versions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{device}/config/history",
    tag = "config",
    params(("device" = String, Path, description = "The device id"), HistoryParams),
    responses(
        (status = 200, description = "Versions, newest first", body = HistoryJson),
        (status = 400, description = "Not a device id"),
    )
)]
pub async fn history(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    Query(p): Query<HistoryParams>,
) -> Result<Json<HistoryJson>, ApiError> {
    let device = device_id(device)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, state.max_limit);
    let d = device.clone();
    let versions = store::blocking(&state.store, move |s| s.config_history(&d, limit)).await?;
    Ok(Json(HistoryJson { device: device.to_string(), versions: versions.into_iter().map(Into::into).collect() }))
}

/// Puts a device in a group (or in none); writes and publishes its next version.
#[utoipa::path(
    put,
    path = "/api/v1/devices/{device}/group",
    tag = "config",
    params(("device" = String, Path, description = "The device id")),
    request_body = MembershipBody,
    responses(
        (status = 200, description = "The new version", body = ChangedJson),
        (status = 400, description = "Not a device id or a group name"),
        (status = 404, description = "No such group"),
    )
)]
pub async fn set_group(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    principal: Option<Extension<Principal>>,
    Json(body): Json<MembershipBody>,
) -> Result<Json<ChangedJson>, ApiError> {
    let device = device_id(device)?;
    if let Some(g) = &body.group {
        check_group(g)?;
    }
    let change = change(principal, body.comment);
    let group = body.group;
    let v = store::blocking(&state.store, move |s| s.set_device_group(&device, group.as_deref(), &change))
        .await?
        .map_err(|e @ ConfigRefused::NoSuchGroup(_)| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(changed(&state, vec![v]))
}

/// Every group, its defaults and its devices.
#[utoipa::path(
    get,
    path = "/api/v1/groups",
    tag = "config",
    responses((status = 200, description = "Groups by name", body = GroupsJson))
)]
pub async fn groups(State(state): State<ApiState>) -> Result<Json<GroupsJson>, ApiError> {
    let groups = store::blocking(&state.store, |s| s.config_groups()).await?;
    let groups = groups
        .into_iter()
        .map(|g| GroupJson { name: g.name, defaults: g.defaults, updated_ms: g.updated_ms, devices: g.devices })
        .collect();
    Ok(Json(GroupsJson { groups }))
}

/// Creates or replaces a group's defaults; writes and publishes the next version of each
/// of its devices.
#[utoipa::path(
    put,
    path = "/api/v1/groups/{group}",
    tag = "config",
    params(("group" = String, Path, description = "The group name")),
    request_body = GroupBody,
    responses(
        (status = 200, description = "The new versions, one per device of the group", body = ChangedJson),
        (status = 400, description = "Not a group name, or a TOML syntax error (with its line)"),
    )
)]
pub async fn set_group_defaults(
    State(state): State<ApiState>,
    Path(group): Path<String>,
    principal: Option<Extension<Principal>>,
    Json(body): Json<GroupBody>,
) -> Result<Json<ChangedJson>, ApiError> {
    check_group(&group)?;
    check_toml("group defaults TOML", &body.defaults)?;
    let change = change(principal, body.comment);
    let versions =
        store::blocking(&state.store, move |s| s.set_group_defaults(&group, &body.defaults, &change)).await?;
    Ok(changed(&state, versions))
}
