//! Certificate renewal with the real fleet and agent binaries: a box whose certificate is
//! due renews it over mutual TLS on the device listener, writes the new one, and after a
//! SIGKILL comes back with it and keeps delivering (docs/design/trust.md, "Renewal").

use std::path::Path;
use std::time::Duration;

use simpul_tests::mosquitto::free_port;
use simpul_tests::system::{Agent, AgentSpec, Consumer, Fleet, PATIENCE};

/// The serials the fleet recorded for `device`, oldest first.
fn recorded(fleet_dir: &Path, device: &str) -> Vec<String> {
    let Ok(db) = rusqlite::Connection::open(fleet_dir.join("fleet.db")) else { return Vec::new() };
    let Ok(mut stmt) = db.prepare("SELECT serial FROM device_certs WHERE device = ?1 ORDER BY issued_ms, rowid") else {
        return Vec::new();
    };
    stmt.query_map([device], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// The serial of a PEM certificate as the fleet stores it (32 lowercase hex digits).
fn serial_of(pem: &str) -> String {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    let cert = pem.parse_x509().expect("a certificate");
    let hex: String = cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    format!("{:0>32}", hex.trim_start_matches('0'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_renews_its_certificate_before_it_expires_and_comes_back_with_the_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet_dir = dir.path().join("fleet");
    std::fs::create_dir_all(&fleet_dir).expect("mkdir");
    let broker = free_port().expect("port");
    // Certificates live an hour; the box renews with two hours left: due at once.
    let (fleet, enrolment) =
        Fleet::start_embedded_with(&fleet_dir, broker, "device_cert_validity = \"1h\"\n").await.expect("fleet");
    let spec = AgentSpec {
        enrolment: Some(enrolment),
        trust_extra: "renew_before = \"2h\"\n".to_owned(),
        ..AgentSpec::new("kel-renew", 1, Duration::from_millis(50))
    };
    let mut agent = Agent::start(dir.path(), broker, spec).expect("agent");
    let mut consumer = Consumer::new(&fleet);
    consumer.wait_for("kel-renew", 5).await;

    // The fleet records a second certificate, and the box holds it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let serials = loop {
        let serials = recorded(&fleet_dir, "kel-renew");
        let holds = agent.certificate().map(|pem| serial_of(&pem));
        if serials.len() >= 2 && holds.as_ref() == serials.last() {
            break serials;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no renewal: {serials:?}, box holds {holds:?}\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(serials.len(), 2, "renewed once, not again at once: {serials:?}");
    assert!(agent.log().contains("certificate renewed"), "{}", agent.log());

    // Killed and started again, the box connects with a certificate it renewed (here due
    // again at once, as renew_before is longer than the certificate lives), and its
    // readings keep coming.
    agent.kill();
    let before = consumer.count("kel-renew");
    agent.restart(broker, true).expect("restart");
    consumer.wait_for("kel-renew", before + 5).await;
    let holds = serial_of(&agent.certificate().expect("a certificate"));
    assert!(recorded(&fleet_dir, "kel-renew")[1..].contains(&holds), "a renewed certificate, not the first");
}
