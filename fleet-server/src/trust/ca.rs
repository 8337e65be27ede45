//! The fleet CA (docs/design/trust.md, "The fleet CA"): made on first start in `[trust] dir`,
//! or supplied by ops; it signs device certificates from CSRs (with its own parameters,
//! never the CSR's) and the fleet's server certificates.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use simpul_protocol::DeviceId;
use time::OffsetDateTime;

use super::TrustError;
use crate::auth::token::hex;
use crate::ingest::ms_since_epoch;

/// The CA certificate's file in `[trust] dir`.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// How long a CA the fleet makes is valid.
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// How long a server certificate (made at each start) is valid.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// Certificates start this long before "now", for boxes whose clock is a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);

/// What a CSR cannot be signed for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is not a PEM certificate signing request with a valid signature: {0}")]
    Malformed(String),
    #[error("the CSR's common name must be the device id {device:?}; it is {found:?}")]
    WrongName { device: String, found: Option<String> },
}

/// A certificate the CA issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub pem: String,
    /// The serial number, lowercase hex.
    pub serial: String,
    /// When it stops being valid (ms since the epoch).
    pub not_after_ms: i64,
}

/// The fleet's certificate authority.
pub struct FleetCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    fleet_id: String,
}

impl std::fmt::Debug for FleetCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetCa").field("fleet_id", &self.fleet_id).finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io { path: path.display().to_string(), source }
}

fn rcgen_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> TrustError {
    move |e| TrustError::Certificate(format!("{what}: {e}"))
}

fn offset(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// 16 random bytes, the top bit clear (a positive DER integer).
fn serial() -> Result<SerialNumber, TrustError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TrustError::Certificate("no randomness for a serial number".to_owned()))?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Writes `text` to `path` with `mode`, through a temporary file and a rename.
pub(crate) fn write_private(path: &Path, text: &str, mode: u32) -> Result<(), TrustError> {
    simpul_base::fs::write_atomic(path, text.as_bytes(), mode).map_err(io(path))
}

impl FleetCa {
    /// Loads the CA from `dir`, or makes one there on first start (the directory 0700, the
    /// key 0600). One of the two files without the other is an error, not a new CA.
    pub fn load_or_create(dir: &Path) -> Result<FleetCa, TrustError> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(&cert_path, &key_path),
            (false, false) => {
                let (ca, key_pem) = Self::generate(SystemTime::now())?;
                write_private(&key_path, &key_pem, 0o600)?;
                write_private(&cert_path, &ca.cert_pem, 0o644)?;
                tracing::info!(fleet_id = %ca.fleet_id, dir = %dir.display(), "made the fleet CA");
                Ok(ca)
            }
            (has_cert, _) => {
                let (there, missing) = if has_cert { (&cert_path, &key_path) } else { (&key_path, &cert_path) };
                Err(TrustError::HalfCa { there: there.display().to_string(), missing: missing.display().to_string() })
            }
        }
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<FleetCa, TrustError> {
        let mode = std::fs::metadata(key_path).map_err(io(key_path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(TrustError::KeyReadable { path: key_path.display().to_string(), mode: mode & 0o777 });
        }
        let cert_pem = std::fs::read_to_string(cert_path).map_err(io(cert_path))?;
        let key_pem = std::fs::read_to_string(key_path).map_err(io(key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(rcgen_error("the CA key"))?;
        let fleet_id = fleet_id(&key);
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(rcgen_error("the CA certificate"))?;
        Ok(FleetCa { cert_pem, issuer, fleet_id })
    }

    /// A new CA in memory (tests; `load_or_create` writes it).
    pub fn create(now: SystemTime) -> Result<FleetCa, TrustError> {
        Self::generate(now).map(|(ca, _)| ca)
    }

    /// A new CA and its key's PEM.
    fn generate(now: SystemTime) -> Result<(FleetCa, String), TrustError> {
        let key = KeyPair::generate().map_err(rcgen_error("a CA key"))?;
        let fleet_id = fleet_id(&key);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Simpul");
        dn.push(DnType::CommonName, format!("Simpul fleet CA {fleet_id}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = offset(now - BACKDATE);
        params.not_after = offset(now + CA_VALIDITY);
        params.serial_number = Some(serial()?);
        let cert = params.self_signed(&key).map_err(rcgen_error("the CA certificate"))?;
        let key_pem = key.serialize_pem();
        Ok((FleetCa { cert_pem: cert.pem(), issuer: Issuer::new(params, key), fleet_id }, key_pem))
    }

    /// The fleet's id: 16 hex digits of the SHA-256 of the CA's public key.
    pub fn fleet_id(&self) -> &str {
        &self.fleet_id
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a device's CSR: CN = `device` (the CSR's CN must say so), client auth only,
    /// valid from `now` (less an hour) for `validity`. Only the CSR's public key is used.
    pub fn sign_device(
        &self,
        csr_pem: &str,
        device: &DeviceId,
        validity: Duration,
        now: SystemTime,
    ) -> Result<Result<Issued, CsrError>, TrustError> {
        let csr = match CertificateSigningRequestParams::from_pem(csr_pem) {
            Ok(c) => c,
            Err(e) => return Ok(Err(CsrError::Malformed(e.to_string()))),
        };
        let found = csr.params.distinguished_name.get(&DnType::CommonName).and_then(dn_text);
        if found.as_deref() != Some(device.as_str()) {
            return Ok(Err(CsrError::WrongName { device: device.to_string(), found }));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = serial()?;
        params.serial_number = Some(serial.clone());
        let not_after = now + validity;
        params.not_before = offset(now - BACKDATE);
        params.not_after = offset(not_after);
        let cert = params.signed_by(&csr.public_key, &self.issuer).map_err(rcgen_error("a device certificate"))?;
        Ok(Ok(Issued { pem: cert.pem(), serial: hex(serial.as_ref()), not_after_ms: ms_since_epoch(not_after) }))
    }

    /// A fresh server key and certificate for `names` (DNS names or IP addresses), valid
    /// for [`SERVER_VALIDITY`]: `(certificate chain PEM, key PEM)`.
    pub fn server_identity(&self, names: &[String], now: SystemTime) -> Result<(String, String), TrustError> {
        let mut sans = Vec::new();
        for name in names {
            sans.push(match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    name.clone()
                        .try_into()
                        .map_err(|e| TrustError::Certificate(format!("server name {name:?}: {e}")))?,
                ),
            });
        }
        let cn = names.first().map_or("simpul-fleet", String::as_str);
        self.leaf(cn, sans, ExtendedKeyUsagePurpose::ServerAuth, now)
    }

    /// A fresh client key and certificate with CN = `name`, valid for [`SERVER_VALIDITY`]:
    /// the fleet's own identity at an external broker (`[mqtt] tls`).
    pub fn client_identity(&self, name: &str, now: SystemTime) -> Result<(String, String), TrustError> {
        self.leaf(name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, now)
    }

    fn leaf(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        now: SystemTime,
    ) -> Result<(String, String), TrustError> {
        let key = KeyPair::generate().map_err(rcgen_error("a key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial()?);
        params.not_before = offset(now - BACKDATE);
        params.not_after = offset(now + SERVER_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error("a certificate"))?;
        Ok((format!("{}{}", cert.pem(), self.cert_pem), key.serialize_pem()))
    }
}

fn dn_text(v: &DnValue) -> Option<String> {
    match v {
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn fleet_id(key: &KeyPair) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
    hex(digest.as_ref().get(..8).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_with_its_key_readable_by_the_owner_alone_and_loads_back_as_the_same_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust");
        let made = FleetCa::load_or_create(&trust).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&trust.join(CA_KEY)), 0o600);
        assert_eq!(mode(&trust), 0o700);
        let loaded = FleetCa::load_or_create(&trust).unwrap();
        assert_eq!((loaded.fleet_id(), loaded.cert_pem()), (made.fleet_id(), made.cert_pem()));
        assert_eq!(made.fleet_id().len(), 16);
        assert_ne!(FleetCa::create(SystemTime::now()).unwrap().fleet_id(), made.fleet_id(), "each CA its own id");
    }

    #[test]
    fn a_key_others_can_read_or_half_a_ca_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust");
        FleetCa::load_or_create(&trust).unwrap();
        std::fs::set_permissions(trust.join(CA_KEY), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = FleetCa::load_or_create(&trust).unwrap_err();
        assert!(matches!(e, TrustError::KeyReadable { .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::remove_file(trust.join(CA_KEY)).unwrap();
        let e = FleetCa::load_or_create(&trust).unwrap_err();
        assert!(matches!(e, TrustError::HalfCa { .. }), "{e}");
        assert!(trust.join(CA_CERT).exists(), "the certificate is left alone");
    }
}
