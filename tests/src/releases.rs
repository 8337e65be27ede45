//! Releases as ops make them, for the update and rollout tests: keys made and binaries
//! signed with `simpul-fleet releases` in an ops folder (no fleet needed), then published
//! to a fleet; a "newer" agent is the built one, stripped, with its version slot stamped
//! (agent/src/version.rs), so no second build is needed.

use std::path::{Path, PathBuf};

use crate::process::workspace_bin;
use crate::system::Fleet;

/// What this machine's agent is built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The stdout of a command that must succeed.
pub fn run_ok(out: std::io::Result<std::process::Output>, what: &str) -> String {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An ops machine's folder with two release keys: `release.key` (the boxes pin it) and
/// `other.key` (the fleet accepts it too; the boxes do not).
#[derive(Debug)]
pub struct ReleaseOps {
    dir: PathBuf,
    /// The public half of `release.key`.
    pub pinned: String,
    /// The public half of `other.key`.
    pub other: String,
}

impl ReleaseOps {
    /// Makes both keys in `dir`.
    pub fn new(dir: &Path) -> ReleaseOps {
        std::fs::create_dir_all(dir).expect("mkdir ops");
        let mut ops = ReleaseOps { dir: dir.to_owned(), pinned: String::new(), other: String::new() };
        ops.pinned = ops.cli(&["keygen", "--out", "release.key"]);
        ops.other = ops.cli(&["keygen", "--out", "other.key"]);
        ops
    }

    /// `simpul-fleet releases ARGS` in the ops folder.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(workspace_bin("simpul-fleet"))
            .current_dir(&self.dir)
            .args(["--config", "/nonexistent/fleet.toml", "releases"])
            .args(args)
            .output();
        run_ok(out, &format!("releases {args:?}"))
    }

    /// The fleet's `[releases]` section: both keys accepted.
    pub fn fleet_section(&self) -> String {
        format!("[releases]\nkeys = [\"{}\", \"{}\"]\n", self.pinned, self.other)
    }

    /// The agent's `[update]` section: the pinned key, the update state in `dir`.
    pub fn agent_section(&self, dir: &Path) -> String {
        format!("[update]\nkeys = [\"{}\"]\ndir = \"{}\"\ntrial_timeout = \"60s\"\n", self.pinned, dir.display())
    }

    /// Signs `bytes` as `version` for `target` with `key` (`release.key` or `other.key`)
    /// and publishes it to `fleet` with the ops token `ops`.
    pub fn publish(&self, fleet: &Fleet, ops: &str, target: &str, version: &str, bytes: &[u8], key: &str) {
        let file = self.dir.join(format!("simpul-agent-{version}-{target}"));
        std::fs::write(&file, bytes).expect("write release");
        let file = file.to_string_lossy().into_owned();
        self.cli(&["sign", "--key", key, "--version", version, "--target", target, &file]);
        run_ok(fleet.cli(&["releases", "publish", &file], Some(ops)), "publish");
    }
}

/// The workspace's agent without its debug symbols (a tenth of the size: releases are
/// stripped too), made once in `dir`.
pub fn agent_binary(dir: &Path) -> Vec<u8> {
    let stripped = dir.join("simpul-agent.stripped");
    if !stripped.exists() {
        let tmp = dir.join("simpul-agent.stripping");
        let out = std::process::Command::new("strip").arg("-o").arg(&tmp).arg(workspace_bin("simpul-agent")).output();
        run_ok(out, "strip (binutils)");
        std::fs::rename(&tmp, &stripped).expect("rename the stripped agent");
    }
    std::fs::read(&stripped).expect("the stripped agent")
}

/// The agent binary stamped with `version`.
pub fn agent_release(dir: &Path, version: &str) -> Vec<u8> {
    let mut bytes = agent_binary(dir);
    simpul_agent::version::stamp(&mut bytes, version).expect("stamp");
    bytes
}

/// A release that exits at once, as a binary that crashes on start would.
pub const CRASHING: &[u8] = b"#!/bin/sh\necho 'the bad release starts, and dies' >&2\nexit 3\n";

/// A fleet with its embedded broker that accepts releases signed by either of `keys`, and
/// an ops token for it.
#[derive(Debug)]
pub struct ReleaseFleet {
    pub keys: ReleaseOps,
    pub fleet: Fleet,
    pub enrolment: crate::system::Enrolment,
    /// Where devices reach the broker (mutual TLS).
    pub broker: std::net::SocketAddr,
    /// An `ops` API token.
    pub ops: String,
}

impl ReleaseFleet {
    /// Makes the keys in `dir/ops` and starts the fleet in `dir/fleet`, with `extra`
    /// config sections after `[releases]`.
    pub async fn start(dir: &Path, extra: &str) -> ReleaseFleet {
        let keys = ReleaseOps::new(&dir.join("ops"));
        let fleet_dir = dir.join("fleet");
        std::fs::create_dir_all(&fleet_dir).expect("mkdir");
        let section = format!("{}{extra}", keys.fleet_section());
        let (fleet, enrolment, broker) = Fleet::start_embedded_fresh(&fleet_dir, &section).await.expect("fleet");
        let ops =
            run_ok(fleet.cli(&["tokens", "create", "--offline", "--name", "ops", "--role", "ops"], None), "token");
        ReleaseFleet { keys, fleet, enrolment, broker, ops }
    }
}
