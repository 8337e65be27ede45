//! Publishing releases (docs/design/updates.md): the fleet stores a binary only when it is
//! signed by one of `[releases] keys` over exactly these bytes, never replaces one, and
//! lists what it holds; the CLI publishes what `releases sign` wrote.

#![allow(clippy::unwrap_used)]

mod common;

use common::Setup;
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde_json::Value;
use simpul_fleet::protocol::release::{Manifest, SignedManifest};
use simpul_fleet::releases::ReleaseStore;
use simpul_fleet::store::sqlite::SqliteReleaseStore;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

struct World {
    s: Setup,
    ops: String,
    http: reqwest::Client,
}

impl World {
    async fn start(keys: Vec<String>) -> World {
        let s = Setup::start(|c| c.releases.keys = keys).await;
        let ops = s.fleet.token.clone();
        World { s, ops, http: reqwest::Client::new() }
    }

    async fn publish(&self, version: &str, target: &str, sig: Option<&SignedManifest>, binary: &[u8]) -> (u16, Value) {
        let url = format!("{}/api/v1/releases/{version}/{target}", self.s.fleet.api);
        let mut req = self.http.request(Method::PUT, url).bearer_auth(&self.ops).body(binary.to_vec());
        if let Some(sig) = sig {
            req = req.header("simpul-release-signature", serde_json::to_string(sig).unwrap());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_signed_by_an_accepted_key_is_stored_once_and_anything_else_is_refused_with_its_reason() {
    let accepted = key(1);
    let w = World::start(vec![hex::encode(accepted.verifying_key().as_bytes())]).await;
    let binary = b"\x7fELF the agent 1.1.0".to_vec();
    let good = Manifest::of(&binary, "1.1.0", TARGET).unwrap().sign(&accepted);

    let (status, body) = w.publish("1.1.0", TARGET, Some(&good), &binary).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sha256"], good.manifest.sha256.as_str());

    let other = Manifest::of(&binary, "1.2.0", TARGET).unwrap().sign(&key(2));
    let mut changed = binary.clone();
    changed[5] ^= 1;
    let mut forged = Manifest::of(&binary, "1.3.0", TARGET).unwrap().sign(&key(2));
    forged.public_key = good.public_key.clone();
    // (what, version in the path, signature, body, status, the error says)
    type Case<'a> = (&'a str, &'a str, Option<&'a SignedManifest>, &'a [u8], u16, &'a str);
    let cases: [Case<'_>; 6] = [
        ("unsigned", "1.2.0", None, &binary, 400, "not signed"),
        ("another key", "1.2.0", Some(&other), &binary, 403, "does not trust"),
        ("a forged signature", "1.3.0", Some(&forged), &binary, 403, "does not hold"),
        ("a changed binary", "1.1.0", Some(&good), &changed, 400, "SHA-256"),
        ("a path other than the signature's", "9.9.9", Some(&good), &binary, 400, "the signature names version 1.1.0"),
        ("the same version again", "1.1.0", Some(&good), &binary, 409, "never replaced"),
    ];
    for (what, version, sig, bytes, want, says) in cases {
        let (status, body) = w.publish(version, TARGET, sig, bytes).await;
        assert_eq!(status, want, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{what}: {error:?} should say {says:?}");
    }

    // Stored once, the bytes as published.
    let store = SqliteReleaseStore::open(&w.s.dir.path().join("fleet.db")).unwrap();
    let list = store.releases().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let (signed, bytes) = store.release("1.1.0", TARGET).unwrap().unwrap();
    assert_eq!((signed, bytes), (good, binary));
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_without_release_keys_accepts_no_release() {
    let w = World::start(Vec::new()).await;
    let binary = b"anything".to_vec();
    let signed = Manifest::of(&binary, "1.0.0", TARGET).unwrap().sign(&key(1));
    let (status, body) = w.publish("1.0.0", TARGET, Some(&signed), &binary).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("[releases] keys"), "{body}");
    w.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_publishes_what_releases_sign_wrote_and_lists_it() {
    let ops_dir = tempfile::tempdir().unwrap();
    let d = ops_dir.path();
    let cli = |args: &[&str], api: Option<(&str, &str)>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_simpul-fleet"));
        cmd.current_dir(d).args(["--config", "/nonexistent/fleet.toml", "releases"]).args(args);
        if let Some((url, token)) = api {
            cmd.env("SIMPUL_API", url).env("SIMPUL_TOKEN", token);
        }
        cmd.output().unwrap()
    };
    let made = cli(&["keygen", "--out", "release.key"], None);
    assert!(made.status.success());
    let public = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    std::fs::write(d.join("simpul-agent"), b"\x7fELF 1.5.0").unwrap();
    let sign = ["sign", "--key", "release.key", "--version", "1.5.0", "--target", TARGET, "simpul-agent"];
    assert!(cli(&sign, None).status.success());

    let w = World::start(vec![public]).await;
    let api = Some((w.s.fleet.api.as_str(), w.ops.as_str()));
    let out = cli(&["publish", "simpul-agent"], api);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = cli(&["publish", "simpul-agent"], api);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never replaced"));
    let list = cli(&["list"], api);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("1.5.0") && text.contains(TARGET), "{text}");
    w.s.stop().await;
}
