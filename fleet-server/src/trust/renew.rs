//! Renewal (docs/design/trust.md, "Renewal"): a box presents its current client
//! certificate on the device listener (checked against the fleet CA by the TLS handshake)
//! and a CSR, and gets a new certificate for the same device id. A revoked certificate, one
//! the fleet never issued, or a CSR naming another device gets nothing.

use std::time::SystemTime;

use simpul_protocol::DeviceId;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CsrError;
use super::enrol::{EnrolError, Enrolled, Enroller};
use super::store::RenewBlocked;
use crate::auth::token::hex;

/// Why a renewal was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenewRefused {
    #[error("renewal needs the box's client certificate (mutual TLS); none was presented")]
    NoCertificate,
    #[error("the client certificate cannot be read or names no device: {0}")]
    BadCertificate(String),
    #[error("this fleet has no record of certificate {serial}: it renews only certificates it issued")]
    Unknown { serial: String },
    #[error("certificate {serial} is device {owner:?}'s, not {device:?}'s")]
    OtherDevice { serial: String, device: String, owner: String },
    #[error("certificate {serial} was revoked at {at_ms} (ms since the epoch): this box must be enrolled again")]
    Revoked { serial: String, at_ms: i64 },
    #[error(transparent)]
    Csr(#[from] CsrError),
}

impl RenewRefused {
    /// The HTTP status for it.
    pub fn status(&self) -> u16 {
        match self {
            RenewRefused::NoCertificate | RenewRefused::BadCertificate(_) => 401,
            RenewRefused::Unknown { .. } | RenewRefused::OtherDevice { .. } | RenewRefused::Revoked { .. } => 403,
            RenewRefused::Csr(_) => 400,
        }
    }
}

/// The device id (CN) and serial (canonical hex) of a DER client certificate.
pub fn identify(der: &[u8]) -> Result<(DeviceId, String), RenewRefused> {
    let bad = |e: String| RenewRefused::BadCertificate(e);
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| bad("no common name".to_owned()))?;
    let device = DeviceId::new(cn.to_owned()).map_err(|e| bad(e.to_string()))?;
    Ok((device, super::store::canonical_serial(&hex(cert.raw_serial()))))
}

impl Enroller {
    /// Renews the certificate `presented` (DER, already checked against the fleet CA by the
    /// handshake) for the CSR `csr_pem` (blocking: SQLite; call it on the blocking pool).
    pub fn renew(
        &self,
        presented: Option<&[u8]>,
        csr_pem: &str,
        now: SystemTime,
    ) -> Result<Result<Enrolled, RenewRefused>, EnrolError> {
        let Some(der) = presented else { return Ok(Err(RenewRefused::NoCertificate)) };
        let (device, serial) = match identify(der) {
            Ok(found) => found,
            Err(refused) => return Ok(Err(refused)),
        };
        let issued = match self.ca.sign_device(csr_pem, &device, self.validity, now)? {
            Ok(i) => i,
            Err(e) => return Ok(Err(e.into())),
        };
        let now_ms = crate::ingest::ms_since_epoch(now);
        match self.store.record_renewal(&serial, &device, now_ms, &issued)? {
            Ok(()) => {}
            Err(RenewBlocked::Unknown) => return Ok(Err(RenewRefused::Unknown { serial })),
            Err(RenewBlocked::OtherDevice { owner }) => {
                return Ok(Err(RenewRefused::OtherDevice { serial, device: device.to_string(), owner }));
            }
            Err(RenewBlocked::Revoked { at_ms }) => return Ok(Err(RenewRefused::Revoked { serial, at_ms })),
        }
        tracing::info!(%device, old = %serial, new = %issued.serial, "renewed a device certificate");
        Ok(Ok(self.answer(&device, issued, None)))
    }
}
