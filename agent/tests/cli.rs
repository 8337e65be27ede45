//! The binary's contract with people, scripts and systemd: exit codes, messages, signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_simpul-agent");

fn agent(args: &[&str]) -> Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("run simpul-agent")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_bad_config_exits_78_naming_file_line_and_key_for_run_and_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "[buffer]\npath = \"/tmp/x.db\"\nflush_intervall = \"1s\"\n").expect("write");
    let cfg = cfg.to_str().expect("utf-8 path");
    for cmd in ["check-config", "run"] {
        let out = agent(&["--config", cfg, cmd]);
        assert_eq!(out.status.code(), Some(78), "{cmd}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains(&format!("{cfg}:3: buffer.flush_intervall: unknown field")), "{cmd}: {err}");
    }
}

#[test]
fn the_printed_default_config_passes_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = agent(&["print-default-config"]);
    assert!(out.status.success());
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, &out.stdout).expect("write");
    let check = agent(&["--config", cfg.to_str().expect("utf-8"), "check-config"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(text(&check.stdout).starts_with("config OK: 0 sensor(s)"));
}

#[test]
fn buffer_stats_of_a_missing_buffer_is_a_clear_error_not_a_panic() {
    let out = agent(&["buffer", "stats", "--path", "/nonexistent/simpul/buffer.db"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: cannot read the buffer at /nonexistent/simpul/buffer.db"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn write_sim_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("agent.toml");
    let mut t = format!(
        "[buffer]\npath = \"{}\"\nflush_interval = \"60s\"\n[clock]\nsync = \"always\"\n",
        dir.join("buffer.db").display()
    );
    for i in 0..3 {
        t.push_str(&format!("[sensors.s{i}]\nkind = \"simulated\"\ninterval = \"5ms\"\nseed = {i}\n"));
    }
    std::fs::write(&cfg, t).expect("write");
    cfg
}

#[test]
fn sigterm_stops_gracefully_and_flushes_every_sample_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_sim_config(dir.path());
    // A 60 s flush interval: nothing is committed before the stop, so whatever is in
    // the buffer afterwards was written by the graceful stop's last flush.
    let mut child = Command::new(BIN)
        .args(["--config", cfg.to_str().expect("utf-8"), "run"])
        .env("RUST_LOG", "info,simpul_agent::sensor=trace")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut taken = 0;
    for line in lines.by_ref() {
        if line.expect("log").contains(" sample ") {
            taken += 1;
            if taken == 30 {
                break;
            }
        }
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut appended = None;
    for line in lines {
        let line = line.expect("log");
        if line.contains("simpul-agent stopped") {
            appended =
                line.split_whitespace().find_map(|w| w.strip_prefix("appended=")).and_then(|v| v.parse::<u64>().ok());
        }
    }
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "a graceful stop exits 0");
    let appended = appended.expect("the agent logs what it appended when it stops");
    let stats = agent(&["buffer", "stats", "--json", "--path", dir.path().join("buffer.db").to_str().expect("utf-8")]);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats json");
    assert!(appended >= 30, "{appended} appended, but 30 samples were taken before the stop");
    assert_eq!(json["readings"].as_u64(), Some(appended), "every sample appended is in the file");
}
