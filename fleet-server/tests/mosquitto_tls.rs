//! The fleet with `[mqtt] tls` against Debian's Mosquitto running the shipped TLS-only
//! configuration (`packaging/mosquitto/simpul.conf` and `simpul.acl`, only the port and the
//! file paths replaced): the fleet checks the broker's certificate against the fleet CA and
//! presents its own, made at start, whose CN the broker takes as the fleet's identity.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Agent, Fleet, batch, device_cert, fleet_config};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use simpul_fleet::trust::FleetCa;
use simpul_tests::Mosquitto;

const SHIPPED_CONF: &str = "../packaging/mosquitto/simpul.conf";
const SHIPPED_ACL: &str = "../packaging/mosquitto/simpul.acl";
const SHIPPED_LISTENER: &str = "listener 8883\n";
const SHIPPED_DIR: &str = "/etc/mosquitto/simpul/";

/// The shipped Mosquitto files in `etc`, its server certificate from `ca` for 127.0.0.1.
fn broker_files(ca: &FleetCa, etc: &std::path::Path) {
    std::fs::create_dir_all(etc).unwrap();
    let (chain, key) = ca.server_identity(&["127.0.0.1".to_owned()], SystemTime::now()).unwrap();
    std::fs::write(etc.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(etc.join("server.pem"), chain).unwrap();
    std::fs::write(etc.join("server.key"), key).unwrap();
    std::fs::copy(SHIPPED_ACL, etc.join("simpul.acl")).unwrap();
}

fn shipped_config(etc: &std::path::Path, port: u16) -> String {
    let shipped = std::fs::read_to_string(SHIPPED_CONF).unwrap();
    assert!(
        shipped.contains(SHIPPED_LISTENER) && shipped.contains(SHIPPED_DIR),
        "simpul.conf changed: update the test"
    );
    shipped
        .replace(SHIPPED_LISTENER, &format!("listener {port} 127.0.0.1\n"))
        .replace(SHIPPED_DIR, &format!("{}/", etc.display()))
}

#[tokio::test]
async fn the_fleet_reaches_a_tls_only_mosquitto_with_its_own_certificate_and_acks_a_devices_readings() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust");
    let ca = FleetCa::load_or_create(&trust).unwrap();
    let etc = dir.path().join("mosquitto");
    broker_files(&ca, &etc);
    let mosquitto = Mosquitto::start_with_config(|port| shipped_config(&etc, port)).await.unwrap();

    let mut c = fleet_config(mosquitto.port(), dir.path());
    c.trust.dir = trust;
    c.mqtt.tls = true;
    // Subscribed means the TLS handshake, the broker's ACL for the CN `simpul-fleet`, and
    // the SUBACK all went through.
    let fleet = Fleet::start(c).await;

    let (key, cert) = device_cert(&ca, "kel-a");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap())
        .unwrap();
    let mut opts = MqttOptions::new("kel-a", "127.0.0.1", mosquitto.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    let mut device = Agent::connect_with(opts, "kel-a").await;

    // The readings reach the fleet, and its ack (published as the fleet, on the device's
    // own ack topic) reaches the device.
    device.publish(&batch(1..=5)).await;
    device.wait_ack(5).await;
    fleet.until("/api/v1/devices/kel-a", |d| d["watermark"].as_u64() == Some(5)).await;
    fleet.stop().await;
}
