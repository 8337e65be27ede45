//! What the fleet keeps for trust (docs/design/trust.md): enrolment tokens (their secrets
//! only as hashes) and the device certificates it issued.

use std::sync::Arc;

use simpul_protocol::DeviceId;

use super::Issued;
use crate::broker::{Revocations, SecurityEvent};
use crate::store::StoreError;

/// A new enrolment token's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEnrolmentToken {
    pub id: String,
    /// The group the enrolled device joins, if any.
    pub group: Option<String>,
    /// A site name for people, if any.
    pub site: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub created_by: String,
}

/// An enrolment token as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnrolmentToken {
    pub id: String,
    pub group: Option<String>,
    pub site: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub created_by: String,
    /// When it was spent, and by which device.
    pub spent_ms: Option<i64>,
    pub spent_by: Option<String>,
}

/// A token row with the hash to check a secret against.
#[derive(Clone, Debug)]
pub struct TokenForCheck {
    pub token: EnrolmentToken,
    pub secret_hash: String,
}

/// A certificate the fleet issued to a device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCert {
    pub device: String,
    pub serial: String,
    pub issued_ms: i64,
    pub not_after_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// Why spending a token for a certificate did not go through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpendRefused {
    /// Spent meanwhile (by another enrolment).
    Spent { at_ms: i64, device: String },
    /// The device already holds a live certificate.
    DeviceHasCert { serial: String, not_after_ms: i64 },
}

/// Why a renewal was not recorded: what the presented certificate is to this fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewBlocked {
    /// The fleet has no record of that serial (signed by its CA, never issued by it).
    Unknown,
    /// The serial is another device's.
    OtherDevice { owner: String },
    /// The certificate was revoked (at `at_ms`).
    Revoked { at_ms: i64 },
}

/// The trust tables.
pub trait TrustStore: Send + Sync + std::fmt::Debug {
    fn add_enrolment_token(&self, token: &NewEnrolmentToken, secret_hash: &str) -> Result<(), StoreError>;

    /// Every enrolment token, newest first.
    fn enrolment_tokens(&self) -> Result<Vec<EnrolmentToken>, StoreError>;

    /// The token of id `id` with its secret's hash.
    fn enrolment_token(&self, id: &str) -> Result<Option<TokenForCheck>, StoreError>;

    /// In one transaction: checks the token is unspent and `device` holds no live
    /// certificate (unrevoked, not expired at `now_ms`), then records `issued` as the
    /// device's and spends the token.
    fn spend_for_certificate(
        &self,
        token_id: &str,
        device: &DeviceId,
        now_ms: i64,
        issued: &Issued,
    ) -> Result<Result<(), SpendRefused>, StoreError>;

    /// In one transaction (so a revocation cannot slip between the check and the insert):
    /// checks the certificate of serial `presented` is `device`'s and not revoked, then
    /// records `issued` as the device's.
    fn record_renewal(
        &self,
        presented: &str,
        device: &DeviceId,
        now_ms: i64,
        issued: &Issued,
    ) -> Result<Result<(), RenewBlocked>, StoreError>;

    /// The certificates issued to `device`, newest first.
    fn device_certs(&self, device: &DeviceId) -> Result<Vec<DeviceCert>, StoreError>;

    /// Records what the broker refused a client.
    fn record_security_event(&self, event: &SecurityEvent) -> Result<(), StoreError>;

    /// Security events, newest first; only `identity`'s when given.
    fn security_events(&self, identity: Option<&str>, limit: usize) -> Result<Vec<SecurityEvent>, StoreError>;

    /// Revokes every certificate of `device` not revoked yet; returns their serials.
    fn revoke_device(&self, device: &DeviceId, now_ms: i64) -> Result<Vec<String>, StoreError>;

    /// Whether the certificate of serial `serial` (hex, leading zeros or not) is revoked.
    fn is_revoked(&self, serial: &str) -> Result<bool, StoreError>;
}

/// The trust store as the fleet server holds it: the trust tables, and the broker's
/// revocation check answered from the same tables. Every `TrustStore + Revocations` is one.
pub trait TrustBackend: TrustStore + Revocations {
    /// This store as its trust tables (an upcast by hand: `rust-version` 1.85 has no trait
    /// upcasting).
    fn trust_store(self: Arc<Self>) -> Arc<dyn TrustStore>;

    /// This store as the broker's revocation check.
    fn revocations(self: Arc<Self>) -> Arc<dyn Revocations>;
}

impl<T: TrustStore + Revocations + 'static> TrustBackend for T {
    fn trust_store(self: Arc<Self>) -> Arc<dyn TrustStore> {
        self
    }

    fn revocations(self: Arc<Self>) -> Arc<dyn Revocations> {
        self
    }
}

/// The queries of the trust transactions ([`spend_in`], [`renew_in`]);
/// each backend answers them in its SQL inside a transaction of its own.
pub trait TrustTx {
    /// When token `id` was spent and by which device, if it was.
    fn spent(&mut self, token_id: &str) -> Result<Option<(i64, String)>, StoreError>;
    /// `device`'s newest certificate neither revoked nor expired at `now_ms`: its serial
    /// and end.
    fn live_cert(&mut self, device: &str, now_ms: i64) -> Result<Option<(String, i64)>, StoreError>;
    /// The device and revocation time of the certificate of `serial` (canonical).
    fn cert(&mut self, serial: &str) -> Result<Option<(String, Option<i64>)>, StoreError>;
    /// Records `issued` as `device`'s.
    fn insert_cert(&mut self, device: &str, now_ms: i64, issued: &Issued) -> Result<(), StoreError>;
    /// Marks token `token_id` spent by `device`.
    fn spend(&mut self, token_id: &str, now_ms: i64, device: &str) -> Result<(), StoreError>;
}

/// [`TrustStore::spend_for_certificate`] inside the backend's transaction `tx`; the
/// backend commits when it returns `Ok(Ok(()))`.
pub fn spend_in(
    tx: &mut impl TrustTx,
    token_id: &str,
    device: &DeviceId,
    now_ms: i64,
    issued: &Issued,
) -> Result<Result<(), SpendRefused>, StoreError> {
    if let Some((at_ms, device)) = tx.spent(token_id)? {
        return Ok(Err(SpendRefused::Spent { at_ms, device }));
    }
    if let Some((serial, not_after_ms)) = tx.live_cert(device.as_str(), now_ms)? {
        return Ok(Err(SpendRefused::DeviceHasCert { serial, not_after_ms }));
    }
    tx.insert_cert(device.as_str(), now_ms, issued)?;
    tx.spend(token_id, now_ms, device.as_str())?;
    Ok(Ok(()))
}

/// [`TrustStore::record_renewal`] inside the backend's transaction `tx`; the backend
/// commits when it returns `Ok(Ok(()))`.
pub fn renew_in(
    tx: &mut impl TrustTx,
    presented: &str,
    device: &DeviceId,
    now_ms: i64,
    issued: &Issued,
) -> Result<Result<(), RenewBlocked>, StoreError> {
    match tx.cert(&canonical_serial(presented))? {
        None => return Ok(Err(RenewBlocked::Unknown)),
        Some((owner, _)) if owner != device.as_str() => return Ok(Err(RenewBlocked::OtherDevice { owner })),
        Some((_, Some(at_ms))) => return Ok(Err(RenewBlocked::Revoked { at_ms })),
        Some((_, None)) => {}
    }
    tx.insert_cert(device.as_str(), now_ms, issued)?;
    Ok(Ok(()))
}

/// A serial as the fleet stores it: 32 lowercase hex digits (16 bytes), whatever the leading
/// zeros and case it came with (rmqtt prints it as a number, without them).
pub fn canonical_serial(serial: &str) -> String {
    let s = serial.trim().to_ascii_lowercase().replace(':', "");
    let s = s.trim_start_matches('0');
    format!("{s:0>32}")
}
