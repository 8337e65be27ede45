//! Renewal (docs/design/trust.md, "Renewal"): when the box's certificate has less than
//! `[trust] renew_before` left, it asks the fleet's device listener (`POST
//! {fleet}/api/v1/renew`, mutual TLS with the certificate it has) for a new one and writes
//! it over `device.pem`.
//!
//! The key stays: renewal changes one file, `device.pem`, through a temporary file and a
//! rename, so a power cut leaves the old certificate or the new one, each matching the key.
//! A new key would need two files to change together.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use simpul_protocol::enrol::{EnrolError, Enrolled, RENEW_PATH, RenewRequest};
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::TrustError;
use super::identity::{DEVICE_CERT, Identity, write_file};
use crate::config::{AgentConfig, RetryConfig};
use crate::sensor::retry::Backoff;

/// How often to look again for an identity while the box has none (enrolment pending).
const IDENTITY_POLL: Duration = Duration::from_secs(10);
/// The longest single wait: the clock of a box without a battery-backed clock jumps when
/// it first syncs, so the due time is checked again at least this often.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Never renew more often than this, even when `renew_before` is longer than the fleet's
/// certificates live (every new certificate would then be due at once).
pub const MIN_INTERVAL: Duration = Duration::from_secs(3600);
/// How long one renewal request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the box's certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The CN: the device id.
    pub device: String,
    pub not_after: SystemTime,
}

/// Reads the CN and end of validity of a PEM certificate.
pub fn cert_info(pem: &str) -> Result<CertInfo, TrustError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |e: String| TrustError::Answer(format!("the certificate: {e}"));
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let device = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| bad("it names no device (no CN)".to_owned()))?
        .to_owned();
    let secs = u64::try_from(cert.validity().not_after.timestamp()).map_err(|e| bad(e.to_string()))?;
    Ok(CertInfo { device, not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(secs) })
}

/// When to renew a certificate that ends at `not_after`: `renew_before` ahead of it, but
/// not sooner than [`MIN_INTERVAL`] after the last renewal.
pub fn due(not_after: SystemTime, renew_before: Duration, last_renewed: Option<SystemTime>) -> SystemTime {
    let by_expiry = not_after.checked_sub(renew_before).unwrap_or(SystemTime::UNIX_EPOCH);
    match last_renewed {
        Some(last) => by_expiry.max(last + MIN_INTERVAL),
        None => by_expiry,
    }
}

/// The renewal task's settings.
#[derive(Clone, Debug)]
pub struct Renewal {
    /// `[trust] dir`.
    pub dir: PathBuf,
    /// The fleet's device listener, `https://host:port`.
    pub fleet: String,
    pub renew_before: Duration,
    retry: RetryConfig,
}

impl Renewal {
    /// The renewal for `config`, or `None` when it names no fleet (`[trust] fleet`).
    pub fn from_config(config: &AgentConfig) -> Option<Renewal> {
        let fleet = config.trust.fleet.clone()?;
        Some(Renewal {
            dir: config.trust.dir.clone(),
            fleet,
            renew_before: config.trust.renew_before,
            retry: RetryConfig { min_delay: config.uplink.reconnect_min, max_delay: config.uplink.reconnect_max },
        })
    }

    /// Renews whenever due, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_renewed = None;
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let wait = match self.check(last_renewed).await {
                Check::NoIdentity => IDENTITY_POLL,
                Check::Wait(d) => d.min(MAX_WAIT),
                Check::Renewed(info) => {
                    backoff = Backoff::new(&self.retry);
                    last_renewed = Some(SystemTime::now());
                    tracing::info!(not_after = ?info.not_after, "certificate renewed");
                    continue;
                }
                Check::Failed(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "certificate renewal: the fleet could not be reached; trying again");
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
                Check::Failed(e) => {
                    tracing::error!(error = %e, "certificate renewal refused; trying again in an hour");
                    MAX_WAIT
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Renews if due; otherwise says how long until it is.
    async fn check(&self, last_renewed: Option<SystemTime>) -> Check {
        if !Identity::exists(&self.dir) {
            return Check::NoIdentity;
        }
        let dir = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || Identity::load(&dir)).await;
        let identity = match loaded {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => return Check::Failed(e),
            Err(e) => {
                return Check::Failed(TrustError::Io { path: "identity".to_owned(), source: std::io::Error::other(e) });
            }
        };
        let info = match cert_info(&identity.cert_pem) {
            Ok(i) => i,
            Err(e) => return Check::Failed(e),
        };
        let at = due(info.not_after, self.renew_before, last_renewed);
        if let Ok(left) = at.duration_since(SystemTime::now()) {
            return Check::Wait(left);
        }
        tracing::info!(device = %info.device, not_after = ?info.not_after, "renewing the certificate");
        match self.renew(&identity, &info.device).await {
            Ok(info) => Check::Renewed(info),
            Err(e) => Check::Failed(e),
        }
    }

    /// One renewal: a CSR from the box's key, the request, the new certificate written.
    pub async fn renew(&self, identity: &Identity, device: &str) -> Result<CertInfo, TrustError> {
        let csr = csr(&identity.key_pem, device)?;
        let client = identity.https_client(REQUEST_TIMEOUT)?;
        let url = format!("{}{RENEW_PATH}", self.fleet.trim_end_matches('/'));
        let resp = client
            .post(url)
            .json(&RenewRequest { csr })
            .send()
            .await
            .map_err(|e| TrustError::Request(simpul_base::causes::with_causes(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let message = resp.json::<EnrolError>().await.map(|e| e.error).unwrap_or_else(|_| status.to_string());
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(TrustError::Request(format!("{status}: {message}")));
            }
            return Err(TrustError::Refused { status: status.as_u16(), message });
        }
        let renewed = resp.json::<Enrolled>().await.map_err(|e| TrustError::Answer(e.to_string()))?;
        let info = cert_info(&renewed.certificate)?;
        if info.device != device || renewed.device_id != device {
            return Err(TrustError::Answer(format!("a certificate for {:?}, not {device:?}", info.device)));
        }
        let (path, pem) = (self.dir.join(DEVICE_CERT), renewed.certificate);
        tokio::task::spawn_blocking(move || write_file(&path, &pem, 0o644))
            .await
            .map_err(|e| TrustError::Io { path: DEVICE_CERT.to_owned(), source: std::io::Error::other(e) })??;
        tracing::info!(serial = %renewed.serial, not_after_ms = renewed.not_after_ms, "renewed: device.pem written");
        Ok(info)
    }
}

enum Check {
    NoIdentity,
    Wait(Duration),
    Renewed(CertInfo),
    Failed(TrustError),
}

/// A CSR (PEM) for `device` from the box's existing key.
fn csr(key_pem: &str, device: &str) -> Result<String, TrustError> {
    let key_err = |e: rcgen::Error| TrustError::Key(e.to_string());
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(key_err)?;
    super::enrol::csr_for(&key, device)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_certificate_is_due_renew_before_its_end_and_never_twice_within_the_minimum_interval() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let not_after = t0 + 90 * DAY;
        assert_eq!(due(not_after, 30 * DAY, None), t0 + 60 * DAY);
        // renew_before longer than the certificate lives: due at once, then held off.
        assert_eq!(due(not_after, 100 * DAY, None), not_after - 100 * DAY);
        assert_eq!(due(not_after, 100 * DAY, Some(t0)), t0 + MIN_INTERVAL);
        // An end before the epoch (a clock gone wrong) is due at once, no panic.
        assert!(due(SystemTime::UNIX_EPOCH, 30 * DAY, None) <= SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn the_certificates_device_and_end_are_read_and_garbage_is_an_error() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "kel-a");
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let pem = params.self_signed(&key).unwrap().pem();
        let info = cert_info(&pem).unwrap();
        assert_eq!(info.device, "kel-a");
        let secs = info.not_after.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_893_542_400, "2030-01-02T00:00:00Z");
        assert!(cert_info("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(cert_info("not pem").is_err());
    }
}
