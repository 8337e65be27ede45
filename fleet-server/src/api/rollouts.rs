//! Rollouts in waves (docs/design/updates.md): `POST /api/v1/rollouts` starts one,
//! `GET /api/v1/rollouts[/{id}]` shows their progress, and `POST
//! /api/v1/rollouts/{id}/pause|resume|abort` are ops' hands on them.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use super::{ApiError, ApiState};
use crate::auth::Principal;
use crate::rollouts::{
    Changed, Control, ControlRefused, Rollout, RolloutDevice, RolloutSpec, StartRefused, WaveProgress,
};

/// A rollout and its progress per wave (wave 0: the canaries).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutJson {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub progress: Vec<WaveProgress>,
    /// Its devices, in rollout order (on `GET /api/v1/rollouts/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<RolloutDevice>>,
}

/// The rollout list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutsJson {
    pub rollouts: Vec<RolloutJson>,
}

/// Every rollout, newest first, with its progress.
#[utoipa::path(get, path = "/api/v1/rollouts", tag = "releases",
    responses((status = 200, description = "The rollouts", body = RolloutsJson)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<RolloutsJson>, ApiError> {
    let all = crate::store::blocking(&state.rollouts, |s| s.rollouts()).await?;
    let rollouts =
        all.into_iter().map(|(rollout, progress)| RolloutJson { rollout, progress, devices: None }).collect();
    Ok(Json(RolloutsJson { rollouts }))
}

/// One rollout, its progress and where each of its devices is.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "releases",
    params(("id" = u64, Path, description = "The rollout")),
    responses(
        (status = 200, description = "The rollout", body = RolloutJson),
        (status = 404, description = "No such rollout", body = super::openapi::ErrorBody),
    ))]
pub async fn show(State(state): State<ApiState>, Path(id): Path<u64>) -> Result<Json<RolloutJson>, ApiError> {
    let Some((rollout, devices)) = crate::store::blocking(&state.rollouts, move |s| s.rollout(id)).await? else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no rollout {id}")));
    };
    let progress = WaveProgress::of(&devices);
    Ok(Json(RolloutJson { rollout, progress, devices: Some(devices) }))
}

/// Starts a rollout of a published release: the canaries are ordered at once, each later
/// wave once the one before passed its health gate.
#[utoipa::path(post, path = "/api/v1/rollouts", tag = "releases",
    request_body = RolloutSpec,
    responses(
        (status = 201, description = "Started; the canaries are ordered", body = RolloutJson),
        (status = 400, description = "A malformed spec", body = super::openapi::ErrorBody),
        (status = 404, description = "No such release or group", body = super::openapi::ErrorBody),
        (status = 409, description = "Another rollout is active, or there are no devices", body = super::openapi::ErrorBody),
    ))]
pub async fn start(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<RolloutSpec>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<RolloutJson>), ApiError> {
    let Json(spec) = body.map_err(|e| ApiError::bad_request(format!("not a rollout: {e}")))?;
    if let Some(problem) = spec.problem() {
        return Err(ApiError::bad_request(problem));
    }
    let by = super::config::author(principal);
    let started =
        crate::store::blocking(&state.rollouts, move |s| s.start(&spec, crate::ingest::now_ms(), &by)).await?;
    let changed = started.map_err(|refused| {
        let status = match refused {
            StartRefused::NoRelease(_) | StartRefused::NoGroup(_) => StatusCode::NOT_FOUND,
            StartRefused::NoDevices | StartRefused::Active(_) => StatusCode::CONFLICT,
        };
        ApiError(status, refused.to_string())
    })?;
    tracing::info!(rollout = changed.rollout.id, version = %changed.rollout.spec.version, canaries = changed.devices.len(), "rollout started");
    Ok((StatusCode::CREATED, Json(published(&state, changed))))
}

/// Publishes the orders a change made and answers with the rollout.
fn published(state: &ApiState, changed: Changed) -> RolloutJson {
    state.desired.changed(changed.devices);
    RolloutJson { rollout: changed.rollout, progress: changed.progress, devices: None }
}

async fn control(
    state: ApiState,
    id: u64,
    control: Control,
    principal: Option<Extension<Principal>>,
) -> Result<Json<RolloutJson>, ApiError> {
    let by = super::config::author(principal);
    let done =
        crate::store::blocking(&state.rollouts, move |s| s.control(id, control, crate::ingest::now_ms(), &by)).await?;
    let changed = done.map_err(|refused| {
        let status = match refused {
            ControlRefused::NotFound(_) => StatusCode::NOT_FOUND,
            ControlRefused::Wrong { .. } => StatusCode::CONFLICT,
        };
        ApiError(status, refused.to_string())
    })?;
    Ok(Json(published(&state, changed)))
}

/// Pauses a running rollout: no new wave opens; devices ordered keep their order.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/pause", tag = "releases",
    params(("id" = u64, Path, description = "The rollout")),
    responses(
        (status = 200, description = "Paused", body = RolloutJson),
        (status = 404, description = "No such rollout", body = super::openapi::ErrorBody),
        (status = 409, description = "Not running", body = super::openapi::ErrorBody),
    ))]
pub async fn pause(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<RolloutJson>, ApiError> {
    control(state, id, Control::Pause, principal).await
}

/// Resumes a paused rollout; the failures of its open wave so far are accepted.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/resume", tag = "releases",
    params(("id" = u64, Path, description = "The rollout")),
    responses(
        (status = 200, description = "Running again", body = RolloutJson),
        (status = 404, description = "No such rollout", body = super::openapi::ErrorBody),
        (status = 409, description = "Not paused", body = super::openapi::ErrorBody),
    ))]
pub async fn resume(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<RolloutJson>, ApiError> {
    control(state, id, Control::Resume, principal).await
}

/// Aborts a running or paused rollout: devices ordered but not yet updated have their
/// order taken back; devices already on the new version stay on it.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/abort", tag = "releases",
    params(("id" = u64, Path, description = "The rollout")),
    responses(
        (status = 200, description = "Aborted", body = RolloutJson),
        (status = 404, description = "No such rollout", body = super::openapi::ErrorBody),
        (status = 409, description = "Already aborted or done", body = super::openapi::ErrorBody),
    ))]
pub async fn abort(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<RolloutJson>, ApiError> {
    control(state, id, Control::Abort, principal).await
}
