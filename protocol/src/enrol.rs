//! Enrolment on the fleet's device listener (`POST /api/v1/enrol`, HTTPS, the fleet CA the
//! only root): a box sends its one-time token and a CSR, and gets its device certificate
//! (docs/design/trust.md, "Enrolment"); and renewal (`POST /api/v1/renew`), where a box
//! proves itself with its current client certificate and gets a fresh one.

use serde::{Deserialize, Serialize};

/// The path of the enrolment endpoint on the device listener.
pub const ENROL_PATH: &str = "/api/v1/enrol";

/// The path of the renewal endpoint on the device listener (mutual TLS: the box's current
/// certificate is its credential).
pub const RENEW_PATH: &str = "/api/v1/renew";

/// What a box sends to renew: a CSR (PEM) whose CN is its device id. The answer is an
/// [`Enrolled`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub csr: String,
}

/// What a box sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// The enrolment token from the bootstrap bundle (`sple_...`).
    pub token: String,
    /// The id the box will have: its certificate's CN and its topics' `{device}`.
    pub device_id: String,
    /// A PKCS#10 certificate signing request, PEM, whose CN is `device_id`.
    pub csr: String,
}

/// What a box gets back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    pub device_id: String,
    /// The device certificate, PEM.
    pub certificate: String,
    /// The fleet CA, PEM: the only root the box trusts from now on.
    pub ca: String,
    /// Its serial number, hex.
    pub serial: String,
    /// When it stops being valid (ms since the epoch); the box renews before then.
    pub not_after_ms: i64,
    /// The group the token put the device in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The body of a refusal: `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolError {
    pub error: String,
}
