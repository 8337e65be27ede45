//! First-boot enrolment. At start, [`prepare`] looks for the bootstrap bundle
//! (`[trust] bundle`): if it holds a token and the box has no identity yet, the run uses
//! the bundle's broker with mutual TLS and device id, and [`Pending::run`] enrols in the
//! background while sensors fill the buffer. The uplink waits for the identity and connects
//! as soon as it is written.
//!
//! Enrolling: make a P-256 key on the box, send a CSR (CN = device id) and the token to
//! `POST {fleet}/api/v1/enrol` over HTTPS with the bundle's CA as the only root, retrying
//! with backoff while the fleet is unreachable; a refusal (spent, expired or foreign token)
//! is final. On success: `agent.d/10-enrolment.toml` is written (device id, site, uplink
//! broker and TLS, the fleet's address for renewal, so later boots need no bundle), then the identity (`device.key` 0600),
//! then the token is removed from the bundle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use simpul_protocol::DeviceId;
use simpul_protocol::enrol::{ENROL_PATH, EnrolError, EnrolRequest, Enrolled};
use simpul_provision::Bundle;
use tokio_util::sync::CancellationToken;

use super::TrustError;
use super::identity::{Identity, write_file};
use crate::config::{AgentConfig, RetryConfig, drop_in_dir};
use crate::sensor::retry::Backoff;

/// The drop-in enrolment writes: early in `agent.d/`, so ops' and the fleet's files win.
pub const DROP_IN: &str = "10-enrolment.toml";

/// How long one enrolment request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An enrolment to do.
#[derive(Debug)]
pub struct Pending {
    pub bundle_path: PathBuf,
    pub bundle: Bundle,
    pub device: DeviceId,
    /// `[trust] dir`.
    pub dir: PathBuf,
    /// Where the enrolment drop-in goes (`agent.d/` beside the main config file), if any.
    pub drop_in: Option<PathBuf>,
    retry: RetryConfig,
}

/// Looks for a pending enrolment; when there is one, points this run's `config` at the
/// bundle's fleet (device id, site, broker, mutual TLS) and returns it.
pub fn prepare(config: &mut AgentConfig, config_file: Option<&Path>) -> Result<Option<Pending>, TrustError> {
    let trust = config.trust.clone();
    if Identity::exists(&trust.dir) || !trust.bundle.exists() {
        return Ok(None);
    }
    let bundle = Bundle::read(&trust.bundle)?;
    if bundle.token.is_none() {
        tracing::warn!(
            bundle = %trust.bundle.display(),
            dir = %trust.dir.display(),
            "the bundle's token was spent but this box holds no identity: write a new token with simpul-provision"
        );
        return Ok(None);
    }
    let device = match &bundle.device_id {
        Some(id) => DeviceId::new(id.clone()).map_err(|e| TrustError::Answer(format!("bundle device_id: {e}")))?,
        None => crate::run::device_id(config),
    };
    config.device.id = Some(device.clone());
    if config.device.site.is_none() {
        config.device.site.clone_from(&bundle.site);
    }
    config.uplink.enabled = true;
    config.uplink.broker.clone_from(&bundle.broker);
    config.uplink.tls = true;
    if config.trust.fleet.is_none() {
        config.trust.fleet = Some(bundle.fleet.clone());
    }
    let retry = RetryConfig { min_delay: config.uplink.reconnect_min, max_delay: config.uplink.reconnect_max };
    Ok(Some(Pending {
        bundle_path: trust.bundle,
        bundle,
        device,
        dir: trust.dir,
        drop_in: config_file.map(|f| drop_in_dir(f).join(DROP_IN)),
        retry,
    }))
}

impl Pending {
    /// Enrols, retrying while the fleet cannot be reached, until it succeeds, is refused,
    /// or `shutdown`. Returns what the fleet issued.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Option<Enrolled>, TrustError> {
        let (key_pem, csr_pem) = key_and_csr(&self.device)?;
        let token = self.bundle.token.clone().unwrap_or_default();
        let request = EnrolRequest { token, device_id: self.device.to_string(), csr: csr_pem };
        let client = http_client(&self.bundle.ca)?;
        let url = format!("{}{ENROL_PATH}", self.bundle.fleet.trim_end_matches('/'));
        let mut backoff = Backoff::new(&self.retry);
        tracing::info!(fleet = %self.bundle.fleet, device = %self.device, "enrolling");
        let enrolled = loop {
            match post(&client, &url, &request).await {
                Ok(e) => break e,
                Err(e) if e.is_retryable() => {
                    if e.to_string().contains("invalid peer certificate") {
                        tracing::error!(error = %e, "enrolment: the fleet's certificate does not check against the bundle's CA (a wrong CA in the bundle, or someone in between); trying again");
                    } else {
                        tracing::warn!(error = %e, "enrolment: the fleet could not be reached; trying again");
                    }
                    if !backoff.wait(&shutdown).await {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "enrolment refused: this box needs a new bundle (simpul-provision)");
                    return Err(e);
                }
            }
        };
        if enrolled.device_id != self.device.as_str() {
            return Err(TrustError::Answer(format!("certificate for {:?}, not {}", enrolled.device_id, self.device)));
        }
        self.finish(&enrolled, key_pem).await?;
        Ok(Some(enrolled))
    }

    /// Writes the identity, the drop-in, and the bundle without its token.
    async fn finish(self, enrolled: &Enrolled, key_pem: String) -> Result<(), TrustError> {
        let identity = Identity { key_pem, cert_pem: enrolled.certificate.clone(), ca_pem: self.bundle.ca.clone() };
        let serial = enrolled.serial.clone();
        let blocking = tokio::task::spawn_blocking(move || -> Result<(), TrustError> {
            // The drop-in first: the uplink connects once the identity exists, and the
            // fleet's config that then arrives is checked against the files on disk.
            if let Some(path) = &self.drop_in {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|source| TrustError::Io { path: parent.display().to_string(), source })?;
                }
                write_file(path, &drop_in_text(&self.device, &self.bundle), 0o644)?;
            }
            identity.save(&self.dir)?;
            let mut spent = self.bundle.clone();
            spent.token = None;
            if let Err(e) = spent.write(&self.bundle_path) {
                // The fleet spent it already; a token left on the card is only untidy.
                tracing::warn!(error = %e, "enrolled, but the token could not be removed from the bundle");
            }
            Ok(())
        });
        blocking
            .await
            .map_err(|e| TrustError::Io { path: "enrolment".to_owned(), source: std::io::Error::other(e) })??;
        tracing::info!(%serial, not_after_ms = enrolled.not_after_ms, "enrolled: identity written");
        Ok(())
    }
}

/// The enrolment drop-in: what later boots need without the bundle.
fn drop_in_text(device: &DeviceId, bundle: &Bundle) -> String {
    let mut t = String::from("# Written at enrolment from the bootstrap bundle (docs/design/trust.md).\n");
    t.push_str(&format!("[device]\nid = {}\n", toml_str(device.as_str())));
    if let Some(site) = &bundle.site {
        t.push_str(&format!("site = {}\n", toml_str(site)));
    }
    t.push_str(&format!("[uplink]\nenabled = true\nbroker = {}\ntls = true\n", toml_str(&bundle.broker)));
    t.push_str(&format!("[trust]\nfleet = {}\n", toml_str(&bundle.fleet)));
    t
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A fresh P-256 key and a CSR for `device` (PEM both).
fn key_and_csr(device: &DeviceId) -> Result<(String, String), TrustError> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| TrustError::Key(e.to_string()))?;
    let csr = csr_for(&key, device.as_str())?;
    Ok((key.serialize_pem(), csr))
}

/// A CSR (PEM) with CN `device`, signed by `key`.
pub(super) fn csr_for(key: &rcgen::KeyPair, device: &str) -> Result<String, TrustError> {
    let key_err = |e: rcgen::Error| TrustError::Key(e.to_string());
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(key_err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, device);
    params.distinguished_name = dn;
    params.serialize_request(key).map_err(key_err)?.pem().map_err(key_err)
}

/// An HTTPS client trusting only the bundle's CA.
fn http_client(ca_pem: &str) -> Result<reqwest::Client, TrustError> {
    let tls = super::identity::client_builder(ca_pem)?.with_no_client_auth();
    super::identity::https_client(tls, REQUEST_TIMEOUT)
}

async fn post(client: &reqwest::Client, url: &str, request: &EnrolRequest) -> Result<Enrolled, TrustError> {
    let resp = client
        .post(url)
        .json(request)
        .send()
        .await
        .map_err(|e| TrustError::Request(simpul_base::causes::with_causes(&e)))?;
    let status = resp.status();
    if status.is_success() {
        return resp.json::<Enrolled>().await.map_err(|e| TrustError::Answer(e.to_string()));
    }
    let message = resp.json::<EnrolError>().await.map(|e| e.error).unwrap_or_else(|_| status.to_string());
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(TrustError::Request(format!("{status}: {message}")));
    }
    Err(TrustError::Refused { status: status.as_u16(), message })
}
