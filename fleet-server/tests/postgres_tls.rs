//! The fleet reaches PostgreSQL over TLS when `[store] tls_ca_file` is set: the server's
//! certificate checked against that CA and the host in `[store] url`, and no silent fall
//! back to plain. The server here takes TCP connections only with TLS (`hostssl`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, Issuer, KeyPair, SanType};
use simpul_fleet::config::{StoreBackend, StoreConfig};
use simpul_fleet::store::postgres::{Conn, PgTarget};
use simpul_fleet::store::{StoreError, open_stores};
use simpul_tests::Postgres;

/// A CA, written to `dir/{name}.pem`, and a server certificate from it for `san`.
fn ca_and_server(dir: &Path, name: &str, san: SanType) -> (PathBuf, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![san];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (path, cert.pem(), key.serialize_pem())
}

fn localhost() -> SanType {
    SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// Whether the session behind `target` is encrypted, as the server sees it.
fn session_is_tls(target: &PgTarget) -> Result<bool, StoreError> {
    let conn = Conn::connect(target)?;
    let row = conn.get()?.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])?;
    Ok(row.get(0))
}

#[test]
fn with_the_servers_ca_the_fleet_stores_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server(dir.path(), "ca", localhost());
    let pg = Postgres::start_tls(&cert, &key).unwrap();
    let url = pg.tcp_url().unwrap();
    assert!(session_is_tls(&PgTarget::new(&url, Some(&ca)).unwrap()).unwrap());
    // The whole fleet's stores open the same way from its config (schema created over TLS).
    let config = StoreConfig { backend: StoreBackend::Postgres, url, tls_ca_file: Some(ca), ..StoreConfig::default() };
    let stores = open_stores(&config).unwrap();
    assert!(stores.store.devices().unwrap().is_empty());
}

#[test]
fn without_a_ca_file_a_tls_only_server_refuses_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = ca_and_server(dir.path(), "ca", localhost());
    let pg = Postgres::start_tls(&cert, &key).unwrap();
    let e = session_is_tls(&PgTarget::plain(&pg.tcp_url().unwrap()).unwrap()).unwrap_err().to_string();
    assert!(e.contains("no encryption"), "{e}");
}

#[test]
fn a_server_certificate_from_another_ca_or_for_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server(dir.path(), "ca", localhost());
    let (other_ca, _, _) = ca_and_server(dir.path(), "other", localhost());
    let pg = Postgres::start_tls(&cert, &key).unwrap();
    let url = pg.tcp_url().unwrap();
    let e = session_is_tls(&PgTarget::new(&url, Some(&other_ca)).unwrap()).unwrap_err().to_string();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // The right CA, but the certificate names 127.0.0.1 and the url says localhost.
    let by_name = url.replace("host=127.0.0.1", "host=localhost");
    let e = session_is_tls(&PgTarget::new(&by_name, Some(&ca)).unwrap()).unwrap_err().to_string();
    assert!(e.contains("not valid for name \"localhost\""), "{e}");
}

#[test]
fn tls_settings_that_contradict_each_other_are_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = ca_and_server(dir.path(), "ca", localhost());
    let e = PgTarget::new("host=db sslmode=require", None).unwrap_err().to_string();
    assert!(e.contains("set [store] tls_ca_file"), "{e}");
    let e = PgTarget::new("host=db sslmode=disable", Some(&ca)).unwrap_err().to_string();
    assert!(e.contains("sslmode=disable"), "{e}");
    let e = PgTarget::new("host=db sslmode=verify-full sslrootcert=/etc/ca.pem", None).unwrap_err().to_string();
    assert!(e.contains("tls_ca_file"), "{e}");
    let e = PgTarget::new("host=db", Some(&dir.path().join("missing.pem"))).unwrap_err().to_string();
    assert!(e.contains("missing.pem"), "{e}");
    let e = PgTarget::new("host=db", Some(&dir.path().join("ca.pem").with_file_name("."))).unwrap_err().to_string();
    assert!(e.starts_with("[store] tls_ca_file"), "{e}");
}
