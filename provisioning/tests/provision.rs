//! `simpul-provision` writes a bundle onto a boot partition (a temp folder with a
//! `config.txt`), and refuses what would leave a box unable to enrol.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

use simpul_fleet::trust::FleetCa;
use simpul_provision::{BUNDLE_FILE, Bundle};

fn provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simpul-provision")).args(args).env_remove("SIMPUL_ENROL_TOKEN").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Card {
    _dir: tempfile::TempDir,
    boot: String,
    ca: String,
    token: String,
}

fn card() -> Card {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("bootfs");
    std::fs::create_dir(&boot).unwrap();
    std::fs::write(boot.join("config.txt"), "arm_64bit=1\n").unwrap();
    let ca = FleetCa::create(SystemTime::now()).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let token = format!("sple_{}_{}_{}", ca.fleet_id(), "ab".repeat(8), "cd".repeat(32));
    Card { boot: boot.display().to_string(), ca: ca_file.display().to_string(), token, _dir: dir }
}

fn args<'a>(c: &'a Card, fleet: &'a str) -> Vec<&'a str> {
    vec!["--boot", &c.boot, "--fleet", fleet, "--broker", "fleet.example:8883", "--ca", &c.ca, "--token", &c.token]
}

#[test]
fn a_bundle_is_written_where_the_agent_reads_it_and_reads_back_whole() {
    let c = card();
    let mut a = args(&c, "https://fleet.example:8443");
    a.extend(["--site", "Kelurahan Ciwedus", "--group", "cilegon", "--device-id", "cilegon-ciwedus"]);
    let out = provision(&a);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = Path::new(&c.boot).join(BUNDLE_FILE);
    assert_eq!(text(&out.stdout).trim(), path.display().to_string());
    let b = Bundle::read(&path).unwrap();
    assert_eq!(b.fleet, "https://fleet.example:8443");
    assert_eq!(b.token.as_deref(), Some(c.token.as_str()));
    assert_eq!((b.site.as_deref(), b.device_id.as_deref()), (Some("Kelurahan Ciwedus"), Some("cilegon-ciwedus")));
    assert_eq!(b.ca, std::fs::read_to_string(&c.ca).unwrap());
}

#[test]
fn what_would_leave_a_box_unable_to_enrol_is_refused_and_nothing_is_written() {
    let c = card();
    let not_a_cert = Path::new(&c.ca).with_file_name("not-a-cert.pem");
    std::fs::write(&not_a_cert, "hello\n").unwrap();
    let plain = Path::new(&c.boot).with_file_name("not-boot");
    std::fs::create_dir(&plain).unwrap();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("a plain http fleet", vec!["--fleet".into(), "http://fleet.example:8443".into()], "must be https://host:port"),
        (
            "a CA that is not a certificate",
            vec!["--ca".into(), not_a_cert.display().to_string()],
            "not a PEM certificate",
        ),
        ("an API token", vec!["--token".into(), "spl_0123456789abcdef_00".into()], "not an enrolment token"),
        ("a folder that is not a boot partition", vec!["--boot".into(), plain.display().to_string()], "boot partition"),
    ];
    for (what, change, says) in cases {
        let mut a: Vec<String> = args(&c, "https://fleet.example:8443").iter().map(|s| (*s).to_owned()).collect();
        let at = a.iter().position(|x| *x == change[0]).unwrap();
        a[at + 1] = change[1].clone();
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = provision(&refs);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{what}: {}", text(&out.stderr));
    }
    assert!(!Path::new(&c.boot).join(BUNDLE_FILE).exists(), "nothing written");
}
