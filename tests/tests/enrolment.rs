//! A box's first boot against a real fleet process: it enrols with the bundle
//! `simpul-provision` wrote, keeps its key to itself, and from then on needs no bundle;
//! a spent token or a bundle holding another fleet's CA gets it nothing
//! (docs/design/trust.md).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use simpul_agent::config::{AgentConfig, load};
use simpul_agent::trust::{TrustError, prepare};
use simpul_tests::mosquitto::free_port;
use simpul_tests::system::{Enrolment, Fleet};
use tokio_util::sync::CancellationToken;

/// A box's files in `dir`: `agent.toml` pointing at `dir/trust` and `dir/bundle.toml`.
fn box_config(dir: &Path) -> (std::path::PathBuf, AgentConfig) {
    let main = dir.join("agent.toml");
    let text = format!(
        "[buffer]\npath = \"{}\"\n[uplink]\nreconnect_min = \"50ms\"\nreconnect_max = \"200ms\"\n[trust]\ndir = \"{}\"\nbundle = \"{}\"\n",
        dir.join("buffer.db").display(),
        dir.join("trust").display(),
        dir.join("bundle.toml").display()
    );
    std::fs::write(&main, text).expect("agent.toml");
    let (config, _) = load(&main).expect("config loads");
    (main, config)
}

async fn fleet(dir: &Path) -> (Fleet, Enrolment) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let broker = free_port().expect("port");
    Fleet::start_embedded(dir, broker).await.expect("fleet starts")
}

#[tokio::test]
async fn a_new_box_enrols_with_its_bundle_keeps_its_key_private_and_needs_no_bundle_afterwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_fleet, enrolment) = fleet(&dir.path().join("fleet")).await;
    let box_dir = dir.path().join("box");
    std::fs::create_dir_all(&box_dir).expect("mkdir");
    enrolment
        .write_bundle(&box_dir.join("bundle.toml"), "kel-ciwedus", "127.0.0.1:8883".parse().expect("addr"))
        .expect("bundle");
    let (main, mut config) = box_config(&box_dir);

    let pending = prepare(&mut config, Some(&main)).expect("bundle read").expect("an enrolment to do");
    assert_eq!(config.device.id.as_ref().map(|d| d.as_str()), Some("kel-ciwedus"));
    assert!(config.uplink.enabled && config.uplink.tls, "this run uses the bundle's broker with mutual TLS");
    let enrolled = tokio::time::timeout(Duration::from_secs(60), pending.run(CancellationToken::new()))
        .await
        .expect("enrolment ends")
        .expect("enrolled")
        .expect("not cut short");
    assert_eq!(enrolled.device_id, "kel-ciwedus");

    let trust = box_dir.join("trust");
    let mode = |f: &str| std::fs::metadata(trust.join(f)).expect(f).permissions().mode() & 0o777;
    assert_eq!(mode("device.key"), 0o600, "the key is the box's alone");
    assert_eq!(std::fs::read_to_string(trust.join("ca.pem")).expect("ca"), enrolment.ca);
    let bundle = std::fs::read_to_string(box_dir.join("bundle.toml")).expect("bundle");
    assert!(!bundle.contains("sple_"), "the spent token is gone from the card:\n{bundle}");

    // The next boot reads who it is from the enrolment drop-in, not the bundle.
    let (again, _) = load(&main).expect("config with the enrolment drop-in");
    assert_eq!(again.device.id.as_ref().map(|d| d.as_str()), Some("kel-ciwedus"));
    assert!(again.uplink.enabled && again.uplink.tls);
    assert_eq!(again.uplink.broker, "127.0.0.1:8883");
    let mut again = again;
    assert!(prepare(&mut again, Some(&main)).expect("no error").is_none(), "nothing more to enrol");
}

#[tokio::test]
async fn a_spent_token_is_refused_and_the_second_box_gets_no_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_fleet, enrolment) = fleet(&dir.path().join("fleet")).await;
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    for d in [&first, &second] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    enrolment
        .write_bundle(&first.join("bundle.toml"), "kel-a", "127.0.0.1:8883".parse().expect("addr"))
        .expect("bundle");
    // A copied SD card: the same token, another box.
    let copied = std::fs::read_to_string(first.join("bundle.toml")).expect("bundle").replace("kel-a", "kel-b");
    std::fs::write(second.join("bundle.toml"), copied).expect("copy");

    let (main, mut config) = box_config(&first);
    let pending = prepare(&mut config, Some(&main)).expect("bundle").expect("pending");
    pending.run(CancellationToken::new()).await.expect("the first box enrols");

    let (main, mut config) = box_config(&second);
    let pending = prepare(&mut config, Some(&main)).expect("bundle").expect("pending");
    let refused = pending.run(CancellationToken::new()).await.expect_err("the token was spent");
    match &refused {
        TrustError::Refused { status, message } => {
            assert_eq!(*status, 409, "{message}");
            assert!(message.contains("spent") || message.contains("used"), "says why: {message}");
        }
        other => panic!("a refusal, not {other}"),
    }
    assert!(!second.join("trust").join("device.pem").exists(), "nothing issued to the second box");
    assert!(!second.join("agent.d").exists(), "no enrolment drop-in either");
}

#[tokio::test]
async fn a_bundle_holding_another_fleets_ca_never_enrols_and_its_token_stays_unspent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_fleet, enrolment) = fleet(&dir.path().join("fleet")).await;
    let box_dir = dir.path().join("box");
    std::fs::create_dir_all(&box_dir).expect("mkdir");
    let bundle = box_dir.join("bundle.toml");
    enrolment.write_bundle(&bundle, "kel-a", "127.0.0.1:8883".parse().expect("addr")).expect("bundle");
    let good = std::fs::read_to_string(&bundle).expect("bundle");
    let other_ca = rcgen::generate_simple_self_signed(vec!["other-fleet".to_owned()]).expect("a CA").cert.pem();
    std::fs::write(&bundle, good.replace(&enrolment.ca, &other_ca)).expect("wrong CA");

    let (main, mut config) = box_config(&box_dir);
    let pending = prepare(&mut config, Some(&main)).expect("bundle").expect("pending");
    // The fleet's certificate never checks against that CA: the box keeps trying (an
    // attacker in between may go away) and gets nothing. Stop it after a few tries.
    let stop = CancellationToken::new();
    let run = tokio::spawn(pending.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let outcome = run.await.expect("task").expect("no refusal: it never reached the fleet");
    assert!(outcome.is_none(), "nothing issued");
    assert!(!box_dir.join("trust").join("device.pem").exists());

    // The token was never seen by the fleet: with the right CA it still enrols.
    std::fs::write(&bundle, good).expect("right CA");
    let (main, mut config) = box_config(&box_dir);
    let pending = prepare(&mut config, Some(&main)).expect("bundle").expect("pending");
    pending.run(CancellationToken::new()).await.expect("enrols").expect("issued");
}
