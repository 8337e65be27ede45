//! The fleet CA and one client certificate per simulated box. Certificates are signed by
//! the CA directly, as enrolment would sign them: enrolling over HTTPS costs an argon2
//! check per box, which is not what this benchmark measures.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use simpul_fleet::trust::FleetCa;
use simpul_protocol::DeviceId;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The device id of simulated box `n`.
pub fn device_name(n: u64) -> String {
    format!("prov-{n:05}")
}

/// Creates the fleet CA in `trust_dir` (the fleet loads the same one) and a TLS client
/// config for each of `devices` boxes, on as many threads as there are cores.
pub fn device_tls(trust_dir: &Path, devices: u64) -> Result<Vec<Arc<ClientConfig>>, Error> {
    let ca = FleetCa::load_or_create(trust_dir)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let threads = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    let per_thread = devices.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..devices)
            .step_by(per_thread as usize)
            .map(|first| {
                let (ca, roots, provider) = (&ca, &roots, &provider);
                scope.spawn(move || {
                    (first..(first + per_thread).min(devices))
                        .map(|n| client_config(ca, roots, provider, &device_name(n)))
                        .collect::<Result<Vec<_>, Error>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(devices as usize);
        for worker in workers {
            all.extend(worker.join().map_err(|_| "a certificate thread panicked")??);
        }
        Ok(all)
    })
}

/// A key, a certificate from `ca` with `device` as its CN, and a client config presenting it.
fn client_config(
    ca: &FleetCa,
    roots: &rustls::RootCertStore,
    provider: &Arc<CryptoProvider>,
    device: &str,
) -> Result<Arc<ClientConfig>, Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, device);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?.pem()?;
    let id = DeviceId::new(device)?;
    let issued = ca.sign_device(&csr, &id, Duration::from_secs(30 * 24 * 3600), SystemTime::now())??;
    let chain = CertificateDer::pem_slice_iter(issued.pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?;
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}
