//! Probing a newly plugged port over real ptys: an ASCII ranger ([`PtySensor`]), a Modbus
//! RTU slave ([`ModbusSlave`]) and a silent port. A pty has no baud rate of its own, so
//! these prove what is recognised and what is proposed, not that a wrong baud is refused;
//! the probe lists are kept short to stay fast.

use std::time::Duration;

use simpul_agent::config::ProbeConfig;
use simpul_agent::config::sensor::{AsciiFormat, SensorConfig};
use simpul_agent::probe::{Found, probe};
use simpul_tests::{ModbusSlave, PtySensor, RegisterMap};
use tokio_util::sync::CancellationToken;

fn quick(bauds: &[u32], slaves: &[u8]) -> ProbeConfig {
    ProbeConfig {
        bauds: bauds.to_vec(),
        modbus_slaves: slaves.to_vec(),
        listen_for: Duration::from_millis(600),
        modbus_timeout: Duration::from_millis(150),
        ..ProbeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranger_at_9600_is_proposed_as_ascii_prefixed_at_9600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ranger = PtySensor::create(dir.path().join("ttyUSB1")).expect("pty");
    let link = ranger.link().to_owned();
    let stop = CancellationToken::new();
    let talking = stop.clone();
    let writer = tokio::spawn(async move {
        let mut mm = 1200;
        while !talking.is_cancelled() {
            let _ = ranger.write_line(&format!("R{mm}")).await;
            mm += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let found = probe(&link, &quick(&[9600], &[1]), &CancellationToken::new()).await.expect("probe runs");
    stop.cancel();
    writer.await.expect("writer");

    let p = found.expect("the ranger is recognised");
    assert!(
        matches!(&p.found, Found::Ascii { baud: 9600, format: AsciiFormat::Prefixed, prefix: Some(r), .. } if r == "R"),
        "{:?}",
        p.found
    );
    assert_eq!(p.sensor_id, "usb1");
    assert!(p.summary.starts_with("ASCII lines like R12") && p.summary.ends_with("at 9600 baud"), "{}", p.summary);
    let Ok(SensorConfig::Ascii(a)) = p.check() else { panic!("the proposal does not load: {}", p.toml) };
    assert_eq!((a.port.baud, a.port.path.as_path(), a.format), (9600, link.as_path(), AsciiFormat::Prefixed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_slave_2_at_19200_is_proposed_as_modbus_slave_2_at_19200() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slave = ModbusSlave::start(dir.path().join("ttyUSB3"), &[2], RegisterMap::default()).expect("slave");

    let found = probe(slave.link(), &quick(&[19200], &[1, 2, 3]), &CancellationToken::new()).await.expect("probe");

    let p = found.expect("the slave is recognised");
    assert_eq!(p.summary, "Modbus slave 2 at 19200 baud");
    assert!(matches!(p.found, Found::Modbus { baud: 19200, slave: 2, register: 0, .. }), "{:?}", p.found);
    let Ok(SensorConfig::Modbus(m)) = p.check() else { panic!("the proposal does not load: {}", p.toml) };
    assert_eq!((m.slave, m.port.baud, m.registers.len()), (2, 19200, 1));
    assert!(slave.answered() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_port_proposes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silent = PtySensor::create(dir.path().join("ttyUSB0")).expect("pty");
    let found = probe(silent.link(), &quick(&[9600, 19200], &[1]), &CancellationToken::new()).await.expect("probe");
    assert_eq!(found, None);
}

#[tokio::test]
async fn a_port_that_is_not_there_is_an_error_not_a_proposal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = probe(&dir.path().join("ttyUSB9"), &quick(&[9600], &[1]), &CancellationToken::new()).await;
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn the_proposal_toml_loads_as_a_valid_agent_config_together_with_a_minimal_one() {
    let found = Found::Modbus {
        baud: 9600,
        slave: 1,
        function: simpul_agent::config::sensor::RegisterFunction::Holding,
        register: 0,
    };
    let p = simpul_agent::probe::Proposal::new(std::path::Path::new("/dev/ttyUSB1"), found).expect("proposal");
    let text = format!("[device]\nid = \"kel-a\"\n[sensors.sungai]\nkind = \"simulated\"\n{}", p.toml);
    let config = simpul_agent::config::load_str("agent.toml", &text).expect("the proposal loads");
    assert_eq!(config.sensors.keys().collect::<Vec<_>>(), ["sungai", "usb1"]);
}
