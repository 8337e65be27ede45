//! The box's identity on disk (`[trust] dir`): its private key `device.key` (0600, made on
//! the box and never sent), its certificate `device.pem`, and the fleet CA `ca.pem`, the
//! only root it trusts. Every file is written through a temporary file and renamed, so a
//! power cut leaves the old file or the new one, never half of one.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TrustError;

pub const DEVICE_KEY: &str = "device.key";
pub const DEVICE_CERT: &str = "device.pem";
pub const CA_CERT: &str = "ca.pem";

/// The box's key, certificate and fleet CA, as PEM.
#[derive(Clone)]
pub struct Identity {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io { path: path.display().to_string(), source }
}

impl Identity {
    /// Whether `dir` holds an identity (its certificate; `load` checks the rest).
    pub fn exists(dir: &Path) -> bool {
        dir.join(DEVICE_CERT).is_file()
    }

    /// Reads the identity in `dir`. A key readable by others is refused.
    pub fn load(dir: &Path) -> Result<Identity, TrustError> {
        let key_path = dir.join(DEVICE_KEY);
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(io(&p))
        };
        let identity = Identity { key_pem: read(DEVICE_KEY)?, cert_pem: read(DEVICE_CERT)?, ca_pem: read(CA_CERT)? };
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).map_err(io(&key_path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(TrustError::KeyReadable { path: key_path.display().to_string(), mode: mode & 0o777 });
        }
        Ok(identity)
    }

    /// Writes the identity into `dir` (made 0700 if missing): the key 0600 first, the
    /// certificate last, so [`Identity::exists`] is true only once all three are there.
    pub fn save(&self, dir: &Path) -> Result<(), TrustError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        write_file(&dir.join(DEVICE_KEY), &self.key_pem, 0o600)?;
        write_file(&dir.join(CA_CERT), &self.ca_pem, 0o644)?;
        write_file(&dir.join(DEVICE_CERT), &self.cert_pem, 0o644)
    }

    /// A rustls client config on ring: the fleet CA the only root, this identity as the
    /// client certificate (MQTT over mutual TLS).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TrustError> {
        let tls = |e: &dyn std::fmt::Display| TrustError::Tls(e.to_string());
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let config = client_builder(&self.ca_pem)?.with_client_auth_cert(chain, key).map_err(|e| tls(&e))?;
        Ok(Arc::new(config))
    }
}

impl Identity {
    /// An HTTPS client of the fleet's device listener: the fleet CA the only root, this
    /// identity as the client certificate, each request at most `timeout`.
    pub fn https_client(&self, timeout: std::time::Duration) -> Result<reqwest::Client, TrustError> {
        https_client((*self.client_config()?).clone(), timeout)
    }
}

/// An HTTPS client with `tls`, each request at most `timeout`.
pub fn https_client(tls: rustls::ClientConfig, timeout: std::time::Duration) -> Result<reqwest::Client, TrustError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| TrustError::Tls(e.to_string()))
}

/// A rustls client config builder on ring trusting only the CA(s) in `ca_pem`.
pub fn client_builder(
    ca_pem: &str,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, TrustError> {
    simpul_base::tls::client_builder(ca_pem).map_err(|e| match e {
        simpul_base::tls::TlsSetupError::NoCertificate => {
            TrustError::Tls("the fleet CA holds no certificate".to_owned())
        }
        e => TrustError::Tls(e.to_string()),
    })
}

/// Writes `text` to `path` with `mode`, whole or not at all ([`simpul_base::fs::write_atomic`]).
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), TrustError> {
    simpul_base::fs::write_atomic(path, text.as_bytes(), mode).map_err(io(path))
}
