//! Enrolment (docs/design/trust.md, "Enrolment"): a one-time token and a CSR in, a device
//! certificate out. Each way a request can be wrong has its own refusal and message.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use simpul_protocol::DeviceId;

use super::store::{SpendRefused, TrustStore};
use super::{CsrError, FleetCa, Issued, TrustError};
use crate::auth::{password, token};
use crate::store::StoreError;

pub use simpul_protocol::enrol::{EnrolRequest, Enrolled};

/// Why an enrolment was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnrolRefused {
    #[error("that is not an enrolment token (they look like sple_<fleet>_<id>_<secret>)")]
    Malformed,
    #[error("the token is for fleet {token_fleet}, this is fleet {this_fleet}: the bundle was made for another fleet")]
    OtherFleet { token_fleet: String, this_fleet: String },
    #[error("this fleet never issued that token")]
    Unknown,
    #[error("the token expired at {at_ms} (ms since the epoch): make a new one")]
    Expired { at_ms: i64 },
    #[error("the token was already used, by device {device:?} at {at_ms}: a token enrols one box once")]
    Spent { at_ms: i64, device: String },
    #[error("{0}")]
    BadDevice(String),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(
        "device {device:?} already holds a live certificate (serial {serial}, valid until {not_after_ms}): revoke it first"
    )]
    DeviceHasCert { device: String, serial: String, not_after_ms: i64 },
}

impl EnrolRefused {
    /// The HTTP status for it.
    pub fn status(&self) -> u16 {
        match self {
            EnrolRefused::Malformed | EnrolRefused::BadDevice(_) | EnrolRefused::Csr(_) => 400,
            EnrolRefused::Unknown | EnrolRefused::Expired { .. } => 401,
            EnrolRefused::OtherFleet { .. } => 403,
            EnrolRefused::Spent { .. } | EnrolRefused::DeviceHasCert { .. } => 409,
        }
    }
}

/// Failures that are the fleet's, not the request's.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// Turns enrolment requests into device certificates.
#[derive(Debug, Clone)]
pub struct Enroller {
    pub ca: Arc<FleetCa>,
    pub store: Arc<dyn TrustStore>,
    /// How long a device certificate is valid.
    pub validity: Duration,
    /// Names no device may take (the fleet's own MQTT identities).
    pub reserved: Vec<String>,
}

impl Enroller {
    /// Checks the request and, if it holds, issues and records the certificate and spends
    /// the token (blocking: argon2 and SQLite; call it on the blocking pool).
    pub fn enrol(&self, req: &EnrolRequest, now: SystemTime) -> Result<Result<Enrolled, EnrolRefused>, EnrolError> {
        let Some(parts) = token::parse_enrolment(req.token.trim()) else { return Ok(Err(EnrolRefused::Malformed)) };
        if parts.fleet != self.ca.fleet_id() {
            return Ok(Err(EnrolRefused::OtherFleet {
                token_fleet: parts.fleet.to_owned(),
                this_fleet: self.ca.fleet_id().to_owned(),
            }));
        }
        let device = match DeviceId::new(req.device_id.clone()) {
            Ok(d) if self.reserved.iter().any(|r| r == d.as_str()) => {
                return Ok(Err(EnrolRefused::BadDevice(format!(
                    "{:?} is a name the fleet keeps for itself",
                    d.as_str()
                ))));
            }
            Ok(d) => d,
            Err(e) => return Ok(Err(EnrolRefused::BadDevice(e.to_string()))),
        };
        let Some(row) = self.store.enrolment_token(parts.id)? else { return Ok(Err(EnrolRefused::Unknown)) };
        if !password::verify(&parts.secret, &row.secret_hash) {
            return Ok(Err(EnrolRefused::Unknown));
        }
        if let (Some(at_ms), Some(device)) = (row.token.spent_ms, row.token.spent_by.clone()) {
            return Ok(Err(EnrolRefused::Spent { at_ms, device }));
        }
        let now_ms = crate::ingest::ms_since_epoch(now);
        if row.token.expires_ms <= now_ms {
            return Ok(Err(EnrolRefused::Expired { at_ms: row.token.expires_ms }));
        }
        let issued = match self.ca.sign_device(&req.csr, &device, self.validity, now)? {
            Ok(i) => i,
            Err(e) => return Ok(Err(e.into())),
        };
        match self.store.spend_for_certificate(parts.id, &device, now_ms, &issued)? {
            Ok(()) => {}
            Err(SpendRefused::Spent { at_ms, device }) => return Ok(Err(EnrolRefused::Spent { at_ms, device })),
            Err(SpendRefused::DeviceHasCert { serial, not_after_ms }) => {
                return Ok(Err(EnrolRefused::DeviceHasCert { device: device.to_string(), serial, not_after_ms }));
            }
        }
        tracing::info!(device = %device, serial = %issued.serial, token = parts.id, "enrolled");
        Ok(Ok(self.answer(&device, issued, row.token.group)))
    }

    /// What the box gets: its certificate and the fleet CA.
    pub(super) fn answer(&self, device: &DeviceId, issued: Issued, group: Option<String>) -> Enrolled {
        Enrolled {
            device_id: device.to_string(),
            certificate: issued.pem,
            ca: self.ca.cert_pem().to_owned(),
            serial: issued.serial,
            not_after_ms: issued.not_after_ms,
            group,
        }
    }
}
