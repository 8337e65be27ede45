//! Enrolment over the fleet's HTTPS device listener (docs/design/trust.md): a one-time
//! token and a CSR in, a certificate of the fleet CA out; every bad input refused with its
//! own reason and nothing issued.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Setup;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use simpul_fleet::protocol::DeviceId;
use simpul_fleet::store::sqlite::SqliteTrustStore;
use simpul_fleet::trust::FleetCa;
use simpul_fleet::trust::store::TrustStore;
use simpul_fleet::trust::tokens::{self, TokenRequest};

struct World {
    s: Setup,
    device_api: String,
    ca_pem: String,
    fleet_id: String,
    trust: SqliteTrustStore,
}

impl World {
    async fn start() -> World {
        let mut dir = None;
        let s = Setup::start(|c| {
            c.trust.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            c.trust.dir = c.store.path.with_file_name("trust");
            // Its name at the external broker, where a certificate's CN is the identity.
            c.mqtt.identity = "fleet-at-broker".to_owned();
            dir = Some(c.trust.dir.clone());
        })
        .await;
        let dir = dir.unwrap();
        let addr = s.fleet.running.as_ref().unwrap().device_addr.expect("the device listener runs");
        let ca = FleetCa::load_or_create(&dir).unwrap();
        let trust = SqliteTrustStore::open(&s.dir.path().join("fleet.db")).unwrap();
        World {
            device_api: format!("https://127.0.0.1:{}", addr.port()),
            ca_pem: ca.cert_pem().to_owned(),
            fleet_id: ca.fleet_id().to_owned(),
            trust,
            s,
        }
    }

    fn token(&self, expires: Duration) -> String {
        let req = TokenRequest { group: None, site: None, expires, created_by: "test".to_owned() };
        tokens::create(&self.trust, &self.fleet_id, &req, simpul_fleet::auth::now_ms()).unwrap().token
    }

    /// An HTTPS client that trusts `ca_pem` alone.
    fn client(ca_pem: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    async fn enrol(&self, token: &str, device: &str, csr: &str) -> (u16, Value) {
        let body = json!({"token": token, "device_id": device, "csr": csr});
        let resp = World::client(&self.ca_pem).post(format!("{}/api/v1/enrol", self.device_api)).json(&body).send();
        let resp = resp.await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A key and a CSR with CN `cn`.
fn csr(cn: &str) -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_enrols_once_with_its_token_and_gets_a_client_certificate_of_the_fleet_ca_for_its_own_key() {
    let w = World::start().await;
    let token = w.token(Duration::from_secs(3600));
    let (key, request) = csr("kel-ciwedus");
    let (status, body) = w.enrol(&token, "kel-ciwedus", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device_id"], "kel-ciwedus");
    assert_eq!(body["ca"], w.ca_pem.as_str());

    // The certificate is the fleet CA's, for the box's own key, CN = the device, client auth.
    let cert_pem = body["certificate"].as_str().unwrap();
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok());
    assert_eq!(cn, Some("kel-ciwedus"));
    assert_eq!(cert.public_key().subject_public_key.data.as_ref(), key.public_key_raw(), "the box's own key");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth, "client auth only");
    assert!(!cert.is_ca());
    let ca_der = CertificateDer::from_pem_slice(w.ca_pem.as_bytes()).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(cert.verify_signature(Some(ca.public_key())).is_ok(), "signed by the fleet CA");
    let certs = w.trust.device_certs(&DeviceId::new("kel-ciwedus").unwrap()).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].serial, body["serial"].as_str().unwrap());

    // The token is spent: a second box with it is refused, naming who spent it.
    let (_, other) = csr("kel-other");
    let (status, body) = w.enrol(&token, "kel-other", &other).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already used, by device \"kel-ciwedus\""), "{body}");
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_bad_csrs_are_refused_each_with_its_reason_and_nothing_is_issued() {
    let w = World::start().await;
    let (_, good) = csr("kel-bad");
    let expired = {
        let req = TokenRequest { group: None, site: None, expires: Duration::from_secs(60), created_by: "t".into() };
        let long_ago = simpul_fleet::auth::now_ms() - 3_600_000;
        tokens::create(&w.trust, &w.fleet_id, &req, long_ago).unwrap().token
    };
    let other_fleet = {
        let other = FleetCa::create(std::time::SystemTime::now()).unwrap();
        let req = TokenRequest { group: None, site: None, expires: Duration::from_secs(60), created_by: "t".into() };
        tokens::create(&w.trust, other.fleet_id(), &req, simpul_fleet::auth::now_ms()).unwrap().token
    };
    let live = w.token(Duration::from_secs(3600));
    let (id, secret) = live.rsplit_once('_').unwrap();
    let wrong_secret = format!("{id}_{}", "0".repeat(secret.len()));
    let unknown = format!("sple_{}_{}_{}", w.fleet_id, "ab".repeat(8), "cd".repeat(32));
    let (_, mismatched) = csr("kel-someone-else");
    let tampered = {
        // Flip a byte inside the signed part: the signature no longer holds.
        let lines: Vec<&str> = good.lines().collect();
        let mut body = lines[2].to_owned();
        let c = if body.as_bytes()[10] == b'A' { "B" } else { "A" };
        body.replace_range(10..11, c);
        let mut out = vec![lines[0], lines[1], &body];
        out.extend(&lines[3..]);
        out.join("\n")
    };
    let cases: [(&str, &str, &str, &str, u16, &str); 10] = [
        ("an expired token", &expired, "kel-bad", &good, 401, "expired"),
        ("a token from another fleet", &other_fleet, "kel-bad", &good, 403, "another fleet"),
        ("a token this fleet never made", &unknown, "kel-bad", &good, 401, "never issued"),
        ("a token with a wrong secret", &wrong_secret, "kel-bad", &good, 401, "never issued"),
        ("not a token at all", "spl_1234", "kel-bad", &good, 400, "not an enrolment token"),
        (
            "a malformed CSR",
            &live,
            "kel-bad",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            400,
            "CSR",
        ),
        ("a CSR whose signature does not hold", &live, "kel-bad", &tampered, 400, "CSR"),
        ("a CSR for another name", &live, "kel-bad", &mismatched, 400, "common name must be the device id"),
        ("the fleet's own name", &live, "simpul-fleet", &good, 400, "keeps for itself"),
        ("the fleet's identity at its broker", &live, "fleet-at-broker", &good, 400, "keeps for itself"),
    ];
    for (what, token, device, request, status, says) in cases {
        let (got, body) = w.enrol(token, device, request).await;
        assert_eq!(got, status, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{what}: {error:?} should say {says:?}");
    }
    assert!(w.trust.device_certs(&DeviceId::new("kel-bad").unwrap()).unwrap().is_empty(), "nothing was issued");
    let listed = w.trust.enrolment_tokens().unwrap();
    assert!(listed.iter().all(|t| t.spent_ms.is_none()), "no token was spent: {listed:?}");

    // The live token still works once the request is right; then the device holds a live
    // certificate, and another token cannot enrol a second box under its name.
    assert_eq!(w.enrol(&live, "kel-bad", &good).await.0, 200);
    let again = w.token(Duration::from_secs(3600));
    let (_, second) = csr("kel-bad");
    let (status, body) = w.enrol(&again, "kel-bad", &second).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already holds a live certificate"), "{body}");
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_whose_bundle_holds_another_ca_refuses_the_fleet_and_sends_nothing() {
    let w = World::start().await;
    let token = w.token(Duration::from_secs(3600));
    let wrong = FleetCa::create(std::time::SystemTime::now()).unwrap();
    let (_, request) = csr("kel-wrong-ca");
    let body = json!({"token": token, "device_id": "kel-wrong-ca", "csr": request});
    let sent = World::client(wrong.cert_pem()).post(format!("{}/api/v1/enrol", w.device_api)).json(&body).send().await;
    let err = sent.expect_err("the TLS handshake must fail");
    let chain = format!("{err:?}");
    assert!(chain.contains("UnknownIssuer") || chain.contains("certificate"), "{chain}");
    assert!(w.trust.enrolment_tokens().unwrap().iter().all(|t| t.spent_ms.is_none()), "the token is not spent");
    w.s.stop().await;
}

impl World {
    /// A client of the device listener with `identity` (certificate and key PEM) as its
    /// client certificate.
    fn client_as(&self, identity: Option<(&str, &KeyPair)>) -> reqwest::Client {
        let mut client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap());
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}{}", key.serialize_pem());
            client = client.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        client.build().unwrap()
    }

    /// POSTs a renewal with `identity` as the client certificate.
    async fn renew(&self, identity: Option<(&str, &KeyPair)>, csr: &str) -> Result<(u16, Value), reqwest::Error> {
        let url = format!("{}/api/v1/renew", self.device_api);
        let resp = self.client_as(identity).post(url).json(&json!({ "csr": csr })).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_renews_with_its_certificate_and_a_revoked_foreign_or_missing_certificate_gets_nothing() {
    let w = World::start().await;
    let device = DeviceId::new("kel-renew").unwrap();
    let (key, request) = csr("kel-renew");
    let (status, enrolled) = w.enrol(&w.token(Duration::from_secs(3600)), "kel-renew", &request).await;
    assert_eq!(status, 200, "{enrolled}");
    let cert = enrolled["certificate"].as_str().unwrap().to_owned();

    // With its certificate, the box gets a new one for the same device, recorded.
    let (status, renewed) = w.renew(Some((&cert, &key)), &request).await.unwrap();
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["device_id"], "kel-renew");
    assert_ne!(renewed["serial"], enrolled["serial"], "a new certificate");
    let certs = w.trust.device_certs(&device).unwrap();
    assert_eq!(certs.len(), 2, "{certs:?}");
    // ...and the new certificate renews in its turn.
    let next = renewed["certificate"].as_str().unwrap().to_owned();
    assert_eq!(w.renew(Some((&next, &key)), &request).await.unwrap().0, 200);

    // No certificate, a CSR naming another device: refused, each with its reason.
    let (status, body) = w.renew(None, &request).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("needs the box's client certificate"), "{body}");
    let (_, someone_else) = csr("kel-someone-else");
    let (status, body) = w.renew(Some((&cert, &key)), &someone_else).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("common name must be the device id"), "{body}");

    // A certificate of another CA does not get past the handshake.
    let other = FleetCa::create(std::time::SystemTime::now()).unwrap();
    let foreign =
        other.sign_device(&request, &device, Duration::from_secs(3600), std::time::SystemTime::now()).unwrap().unwrap();
    assert!(w.renew(Some((&foreign.pem, &key)), &request).await.is_err(), "the handshake refuses it");

    // Revoked: every certificate of the device, old and renewed, renews no more.
    let count = w.trust.device_certs(&device).unwrap().len();
    w.trust.revoke_device(&device, simpul_fleet::auth::now_ms()).unwrap();
    for presented in [&cert, &next] {
        let (status, body) = w.renew(Some((presented, &key)), &request).await.unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(body["error"].as_str().unwrap().contains("was revoked"), "{body}");
    }
    assert_eq!(w.trust.device_certs(&device).unwrap().len(), count, "nothing issued after the revocation");
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_downloads_a_release_with_its_certificate_and_a_revoked_or_missing_one_gets_nothing() {
    use simpul_fleet::protocol::release::{Manifest, SignedManifest};
    use simpul_fleet::releases::ReleaseStore;

    let w = World::start().await;
    let target = "aarch64-unknown-linux-gnu";
    let binary = b"\x7fELF agent 2.0.0".to_vec();
    let signed = Manifest::of(&binary, "2.0.0", target).unwrap().sign(&ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let releases = simpul_fleet::store::sqlite::SqliteReleaseStore::open(&w.s.dir.path().join("fleet.db")).unwrap();
    assert!(releases.add_release(&signed, &binary, 1, "test").unwrap());

    let (key, request) = csr("kel-update");
    let (status, enrolled) = w.enrol(&w.token(Duration::from_secs(3600)), "kel-update", &request).await;
    assert_eq!(status, 200, "{enrolled}");
    let cert = enrolled["certificate"].as_str().unwrap().to_owned();
    let url = format!("{}/api/v1/releases/2.0.0/{target}", w.device_api);

    // With its certificate: the bytes, and the signed manifest beside them.
    let resp = w.client_as(Some((&cert, &key))).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let sig: SignedManifest =
        serde_json::from_str(resp.headers()["simpul-release-signature"].to_str().unwrap()).unwrap();
    assert_eq!(sig, signed);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), binary.as_slice());

    // A release that is not there; no certificate; a revoked one.
    let missing = w.client_as(Some((&cert, &key))).get(url.replace("2.0.0", "2.0.1")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let anonymous = w.client_as(None).get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    w.trust.revoke_device(&DeviceId::new("kel-update").unwrap(), simpul_fleet::auth::now_ms()).unwrap();
    let revoked = w.client_as(Some((&cert, &key))).get(&url).send().await.unwrap();
    assert_eq!(revoked.status().as_u16(), 403);
    w.s.stop().await;
}
