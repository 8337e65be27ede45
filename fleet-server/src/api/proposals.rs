//! `POST /api/v1/devices/{device}/proposals/{event}/accept` `{sensor_id?, comment?}`:
//! takes a sensor a box proposed (its `sensor_proposed` event) into the device's desired
//! config, as a new version published like any other change (crate::proposal).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use simpul_protocol::DeviceId;

use super::config::change;
use super::{ApiError, ApiState};
use crate::auth::Principal;
use crate::proposal::ProposalError;
use crate::store::{self, ProposalRefused};

/// How to accept a proposal.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AcceptBody {
    /// The id the sensor gets in the config; default the one the box proposed.
    #[serde(default)]
    pub sensor_id: Option<String>,
    /// Why, for the config history.
    #[serde(default)]
    pub comment: String,
}

/// The accepted sensor and the version it went into.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptedJson {
    pub device: String,
    pub sensor_id: String,
    pub version: u64,
}

fn refused(e: ProposalRefused) -> ApiError {
    let status = match &e {
        ProposalRefused::NoSuchProposal { .. } => StatusCode::NOT_FOUND,
        ProposalRefused::AlreadyAccepted { .. } | ProposalRefused::Invalid(ProposalError::SensorExists(_)) => {
            StatusCode::CONFLICT
        }
        ProposalRefused::Invalid(ProposalError::BadId(_)) => StatusCode::BAD_REQUEST,
        ProposalRefused::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError(status, e.to_string())
}

/// Accepts a device's sensor proposal into its desired config.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{device}/proposals/{event}/accept",
    tag = "config",
    params(
        ("device" = String, Path, description = "The device id"),
        ("event" = i64, Path, description = "The proposal's event id (from the device's events)"),
    ),
    request_body(content = AcceptBody, description = "Optional: another sensor id, a comment"),
    responses(
        (status = 200, description = "The new version, published", body = AcceptedJson),
        (status = 400, description = "Not a device id, or not a sensor id"),
        (status = 404, description = "The device has no such sensor proposal"),
        (status = 409, description = "Already accepted, or the config has a sensor of that id"),
        (status = 422, description = "The proposal cannot be made a sensor entry of this device's config"),
    )
)]
pub async fn accept(
    State(state): State<ApiState>,
    Path((device, event)): Path<(String, i64)>,
    principal: Option<Extension<Principal>>,
    body: Option<Json<AcceptBody>>,
) -> Result<Json<AcceptedJson>, ApiError> {
    let device = DeviceId::new(device).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let comment = if body.comment.is_empty() { format!("accepted sensor proposal {event}") } else { body.comment };
    let change = change(principal, comment);
    let wanted = body.sensor_id;
    let d = device.clone();
    let accepted = store::blocking(&state.store, move |s| s.accept_proposal(&d, event, wanted.as_deref(), &change))
        .await?
        .map_err(refused)?;
    state.desired.changed([device.clone()]);
    Ok(Json(AcceptedJson {
        device: device.to_string(),
        sensor_id: accepted.sensor_id,
        version: accepted.version.version,
    }))
}
