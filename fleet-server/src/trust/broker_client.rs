//! The fleet's own TLS towards an external broker (`[mqtt] tls`): the broker's certificate
//! checked against `[mqtt] tls_ca_file` or the fleet CA, and a client certificate of the
//! fleet CA with CN = `[mqtt] identity`, made at each start and never written to disk.
//! A broker that takes the CN as the username (Mosquitto's `use_identity_as_username`,
//! docs/ops/mosquitto.md) knows the fleet by it, as the embedded broker knows it by the
//! username it sends.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::TrustError;
use super::ca::FleetCa;
use super::listener::certs;
use crate::config::FleetConfig;

/// The TLS settings of the fleet's MQTT clients, or `None` when `[mqtt] tls` is off.
pub fn client_config(config: &FleetConfig) -> Result<Option<Arc<rustls::ClientConfig>>, TrustError> {
    if !config.mqtt.tls {
        return Ok(None);
    }
    let ca = FleetCa::load_or_create(&config.trust.dir)?;
    let trusted = match &config.mqtt.tls_ca_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| TrustError::Io { path: path.display().to_string(), source })?,
        None => ca.cert_pem().to_owned(),
    };
    let (chain, key) = ca.client_identity(&config.mqtt.identity, SystemTime::now())?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| TrustError::Tls(e.to_string()))?;
    let tls = simpul_base::tls::client_builder(&trusted)
        .map_err(|e| TrustError::Tls(format!("mqtt.tls_ca_file: {e}")))?
        .with_client_auth_cert(certs(&chain)?, key)
        .map_err(|e| TrustError::Tls(e.to_string()))?;
    tracing::info!(identity = %config.mqtt.identity, fleet_id = ca.fleet_id(), "TLS to the broker, with a client certificate of the fleet CA");
    Ok(Some(Arc::new(tls)))
}
