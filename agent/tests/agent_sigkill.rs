//! A real agent process killed with SIGKILL while it writes loses nothing it had flushed,
//! and its sequence numbers go on without a gap or a reuse after a restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use simpul_agent::buffer::{Buffer, BufferOptions};
use simpul_agent::config::Eviction;

/// A config with 8 fast simulated sensors and a short flush interval, so a few seconds
/// hold many commits.
fn write_config(dir: &Path) -> std::path::PathBuf {
    let mut text = format!(
        "[buffer]\npath = \"{}\"\nflush_interval = \"50ms\"\n[clock]\nsync = \"always\"\n",
        dir.join("buffer.db").display()
    );
    for i in 0..8 {
        text.push_str(&format!("[sensors.s{i}]\nkind = \"simulated\"\ninterval = \"2ms\"\nseed = {i}\n"));
    }
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_simpul-agent"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("RUST_LOG", "simpul_agent::buffer=debug,warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start simpul-agent")
}

/// Reads the agent's log until it reports `commits` commits; returns the highest seq it
/// said was committed. Each such line is printed only after the transaction committed.
fn wait_for_commits(child: &mut Child, commits: usize) -> u64 {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut seen = 0;
    let mut last = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read log");
        if let Some(l) = committed_last(&line) {
            last = last.max(l);
            seen += 1;
            if seen == commits {
                return last;
            }
        }
    }
    panic!("the agent stopped logging after {seen} commits");
}

/// `... committed first=11 last=40 ...` -> 40.
fn committed_last(line: &str) -> Option<u64> {
    if !line.contains("committed") {
        return None;
    }
    line.split_whitespace().find_map(|w| w.strip_prefix("last=")).and_then(|v| v.parse().ok())
}

fn sigkill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Every seq in the buffer, in order.
fn seqs(db: &Path) -> Vec<u64> {
    let b = Buffer::open(db, BufferOptions { quota_bytes: 1 << 30, eviction: Eviction::OldestFirst }).expect("open");
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let batch = b.read_batch(after, 10_000).expect("read");
        let Some(last) = batch.readings.last() else { break };
        after = last.seq;
        out.extend(batch.readings.iter().map(|r| r.seq));
    }
    out
}

#[test]
fn sigkill_mid_write_keeps_every_flushed_reading_and_seqs_unbroken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let db = dir.path().join("buffer.db");
    let mut flushed_before_kill = 0;
    for round in 1..=3 {
        let mut agent = start(&config);
        let flushed = wait_for_commits(&mut agent, 10);
        sigkill(&mut agent);
        let s = seqs(&db);
        assert!(!s.is_empty(), "round {round}: buffer empty");
        let expected: Vec<u64> = (1..=s[s.len() - 1]).collect();
        assert_eq!(s, expected, "round {round}: seqs must run 1..=last with no gap");
        assert!(s.len() as u64 >= flushed, "round {round}: {flushed} were flushed but only {} survived", s.len());
        assert!(flushed > flushed_before_kill, "round {round}: seqs must go on after a restart, not start again");
        flushed_before_kill = s[s.len() - 1];
    }
}
