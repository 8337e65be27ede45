//! The release key tools an ops machine runs (`simpul-fleet releases keygen|sign|verify`):
//! the private key stays 0600, a signed binary verifies, and a changed binary or another
//! key's signature is refused with its reason.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn fleet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simpul-fleet"))
        .current_dir(dir)
        .args(["--config", "/nonexistent/fleet.toml", "releases"])
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_binary_signed_offline_verifies_and_a_changed_binary_or_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = fleet(d, &["keygen", "--out", "release.key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = text(&out.stdout).trim().to_owned();
    assert_eq!(public.len(), 64, "{public}");
    assert_eq!(std::fs::read_to_string(d.join("release.key.pub")).unwrap().trim(), public);
    assert_eq!(std::fs::metadata(d.join("release.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let again = fleet(d, &["keygen", "--out", "release.key"]);
    assert!(!again.status.success() && text(&again.stderr).contains("never overwritten"));

    std::fs::write(d.join("simpul-agent"), b"\x7fELF a release").unwrap();
    let sign = ["sign", "--key", "release.key", "--version", "1.2.0", "--target", "aarch64-unknown-linux-gnu"];
    let out = fleet(d, &[&sign[..], &["simpul-agent"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sig: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("simpul-agent.sig")).unwrap()).unwrap();
    assert_eq!(sig["manifest"]["version"], "1.2.0");
    assert_eq!(sig["public_key"], public.as_str());

    let out = fleet(d, &["verify", "--public-key", &public, "simpul-agent"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("release 1.2.0 for aarch64-unknown-linux-gnu"));

    // Another key: its public half is not the one the signature names.
    assert!(fleet(d, &["keygen", "--out", "other.key"]).status.success());
    let other = std::fs::read_to_string(d.join("other.key.pub")).unwrap();
    let out = fleet(d, &["verify", "--public-key", other.trim(), "simpul-agent"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("does not trust"), "{}", text(&out.stderr));

    // A changed binary under the old signature.
    std::fs::write(d.join("simpul-agent"), b"\x7fELF a releasf").unwrap();
    let out = fleet(d, &["verify", "--public-key", &public, "simpul-agent"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SHA-256"), "{}", text(&out.stderr));

    // Bad arguments: an unknown target, a version that is not one.
    let out = fleet(
        d,
        &["sign", "--key", "release.key", "--version", "1.2", "--target", "x86_64-unknown-linux-gnu", "simpul-agent"],
    );
    assert!(text(&out.stderr).contains("is not a version"), "{}", text(&out.stderr));
    let out = fleet(d, &["sign", "--key", "release.key", "--version", "1.2.0", "--target", "mips", "simpul-agent"]);
    assert!(text(&out.stderr).contains("mips"), "{}", text(&out.stderr));
}
