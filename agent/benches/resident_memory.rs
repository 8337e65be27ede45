//! Resident memory of the real agent binary with 8 sensors at 1 Hz.
//!
//! Starts `simpul-agent` (built with the bench profile: the release settings without
//! LTO) on 8 simulated sensors at 1 Hz with the default buffer settings, lets it run
//! for 60 s (`--quick`: 15 s), and prints VmRSS and VmHWM from /proc. Goal: at most 12 MB.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let run_for = if quick { Duration::from_secs(15) } else { Duration::from_secs(60) };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    let mut f = std::fs::File::create(&config)?;
    writeln!(
        f,
        "[buffer]\npath = \"{}\"\n[clock]\nsync = \"always\"\n[log]\nlevel = \"warn\"",
        dir.path().join("buffer.db").display()
    )?;
    for i in 0..8 {
        writeln!(f, "[sensors.sim{i}]\nkind = \"simulated\"\ninterval = \"1s\"\nseed = {i}\n")?;
    }
    drop(f);

    let mut child =
        Command::new(env!("CARGO_BIN_EXE_simpul-agent")).arg("--config").arg(&config).stdin(Stdio::null()).spawn()?;
    let pid = child.id();
    let start = Instant::now();
    let mut peak_rss = 0;
    while start.elapsed() < run_for {
        std::thread::sleep(Duration::from_secs(1));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        peak_rss = peak_rss.max(kib(&status, "VmRSS:").unwrap_or(0));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = kib(&status, "VmRSS:").unwrap_or(0);
    let hwm = kib(&status, "VmHWM:").unwrap_or(0);
    // A graceful stop, as systemd would ask.
    Command::new("kill").arg("-TERM").arg(pid.to_string()).status()?;
    let exit = child.wait()?;

    let stats = Command::new(env!("CARGO_BIN_EXE_simpul-agent"))
        .args(["buffer", "stats", "--json", "--path"])
        .arg(dir.path().join("buffer.db"))
        .output()?;
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap_or_default();
    println!(
        "agent, 8 sensors at 1 Hz, {:.0} s: VmRSS {:.1} MB (sampled peak {:.1} MB), VmHWM {:.1} MB; goal <= 12 MB; readings buffered {}; exit {exit}",
        run_for.as_secs_f64(),
        rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        stats.get("readings").cloned().unwrap_or_default(),
    );
    Ok(())
}
