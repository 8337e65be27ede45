//! TLS clients that trust only the CA(s) they are given: the box towards its fleet, the
//! fleet towards its broker and its database. On ring, the provider every Simpul client uses.

use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ConfigBuilder};

/// Why a TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the CA file holds no certificate")]
    NoCertificate,
    #[error("a CA certificate: {0}")]
    Certificate(String),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client config builder trusting only the certificates in `ca_pem` (PEM, one or more).
pub fn client_builder(ca_pem: &str) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| TlsSetupError::Certificate(e.to_string()))?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoCertificate);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_by_name() {
        let e = client_builder("# not a certificate\n").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("the CA file holds no certificate"));
    }
}
