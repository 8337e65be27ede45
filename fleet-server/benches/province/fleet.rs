//! The real `simpul-fleet` binary as a child process: its config (embedded broker with a
//! mutual-TLS listener for the boxes, SQLite), start, SIGKILL or SIGTERM, restart on the same
//! database and ports, its memory and CPU, its own view of connections (`/metrics`), and,
//! once stopped, what its database holds for each box.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, kib};

type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct Fleet {
    config: PathBuf,
    db: PathBuf,
    pub tls_port: u16,
    api_port: u16,
    child: Option<Child>,
    http: reqwest::Client,
}

/// What the database holds for one box.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stored {
    pub rows: u64,
    pub distinct_seqs: u64,
    pub min_seq: u64,
    pub max_seq: u64,
}

impl Fleet {
    /// Writes the config for `devices` boxes in `dir` (the CA is already in `dir/trust`).
    pub fn configure(dir: &Path, devices: u64) -> Result<Fleet, Error> {
        let (plain, tls_port, api_port) = (free_port(), free_port(), free_port());
        let db = dir.join("fleet.db");
        let config = dir.join("fleet.toml");
        let log = std::env::var("SIMPUL_BENCH_FLEET_LOG").unwrap_or_else(|_| "warn".to_owned());
        // Extra `[broker]` lines, to try its limits (`max_handshakes = 2000`, say).
        let broker_extra = std::env::var("SIMPUL_BENCH_BROKER").unwrap_or_default().replace(';', "\n");
        std::fs::write(
            &config,
            format!(
                "[broker]\nlisten = \"127.0.0.1:{plain}\"\ntls_listen = \"127.0.0.1:{tls_port}\"\nmax_connections = {}\n{broker_extra}\n\
                 [store]\npath = \"{}\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n[trust]\ndir = \"{}\"\n[log]\nlevel = \"{log}\"\n",
                devices + 500,
                db.display(),
                dir.join("trust").display(),
            ),
        )?;
        Ok(Fleet { config, db, tls_port, api_port, child: None, http: reqwest::Client::new() })
    }

    /// Starts the fleet and waits until its TLS listener accepts; returns how long that took.
    pub async fn start(&mut self) -> Result<Duration, Error> {
        let t0 = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_simpul-fleet"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .envs(extra_env())
            .stdin(Stdio::null())
            .spawn()?;
        while std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_err() {
            if let Some(status) = child.try_wait()? {
                return Err(format!("the fleet exited at start: {status}").into());
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the fleet did not open its TLS listener within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child = Some(child);
        Ok(t0.elapsed())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL, as a power cut or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for the graceful stop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// Peak resident memory so far (`VmHWM`), MB.
    pub fn peak_rss_mb(&self) -> f64 {
        kib(self.pid(), "VmHWM:") as f64 / 1024.0
    }

    /// A gauge from the fleet's `/metrics`, if it answers.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.api_port);
        let text = self.http.get(url).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Per box: the readings the cursor API would deliver (the fleet must be stopped).
    pub fn stored(&self) -> Result<HashMap<String, Stored>, Error> {
        let db = rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut q = db.prepare(
            "SELECT d.name, COUNT(*), COUNT(DISTINCT r.seq), MIN(r.seq), MAX(r.seq) \
             FROM readings r JOIN devices d ON d.id = r.device_id GROUP BY r.device_id",
        )?;
        let rows = q.query_map([], |r| {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok((r.get::<_, String>(0)?, Stored { rows: n(1)?, distinct_seqs: n(2)?, min_seq: n(3)?, max_seq: n(4)? }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `SIMPUL_BENCH_FLEET_ENV="K=V K2=V2"`: variables for the fleet process only, not for the
/// simulated boxes in this one (a heap profiler's `LD_PRELOAD`, say).
fn extra_env() -> Vec<(String, String)> {
    let spec = std::env::var("SIMPUL_BENCH_FLEET_ENV").unwrap_or_default();
    spec.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}
