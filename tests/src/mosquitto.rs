//! A real Mosquitto broker on 127.0.0.1, started and killed by the test.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

/// Where Debian's package puts the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto process on a port of its own. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    persistence: bool,
    /// A whole configuration given by the test (see [`Mosquitto::start_with_config`]).
    config: Option<String>,
    child: Option<ChildGuard>,
}

impl Mosquitto {
    /// Starts a broker on a free port, anonymous, without persistence (a restart loses
    /// retained messages and sessions: the harshest broker restart).
    pub async fn start() -> io::Result<Mosquitto> {
        Self::start_with(false).await
    }

    /// Starts a broker; with `persistence`, retained messages and sessions survive a
    /// restart (saved on a clean stop, as Mosquitto does).
    pub async fn start_with(persistence: bool) -> io::Result<Mosquitto> {
        Self::start_inner(persistence, None::<fn(u16) -> String>).await
    }

    /// Starts a broker with a configuration of the test's own: `config` gets the free port
    /// (on 127.0.0.1) the broker must listen on and returns the whole configuration text.
    /// The broker runs with `-v` (every log type, whatever the configuration says), so that
    /// [`Mosquitto::log`] shows each packet and each refusal.
    pub async fn start_with_config(config: impl FnOnce(u16) -> String) -> io::Result<Mosquitto> {
        Self::start_inner(false, Some(config)).await
    }

    async fn start_inner(persistence: bool, config: Option<impl FnOnce(u16) -> String>) -> io::Result<Mosquitto> {
        if !std::path::Path::new(MOSQUITTO).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{MOSQUITTO} is missing: apt-get install mosquitto (scripts/test does)"),
            ));
        }
        let addr = free_port()?;
        let dir = tempfile::tempdir()?;
        let config = config.map(|make| make(addr.port()));
        let mut m = Mosquitto { addr, dir, persistence, config, child: None };
        m.spawn().await?;
        Ok(m)
    }

    /// `host:port` of the broker.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    async fn spawn(&mut self) -> io::Result<()> {
        let conf = match &self.config {
            Some(text) => text.clone(),
            None => {
                let mut conf = format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n",
                    self.addr.port()
                );
                if self.persistence {
                    conf.push_str(&format!("persistence true\npersistence_location {}/\n", self.dir.path().display()));
                } else {
                    conf.push_str("persistence false\n");
                }
                conf
            }
        };
        std::fs::write(self.config_path(), conf)?;
        // A broker killed a moment ago may still hold the port: if the new one exits at
        // once, start it again until the port is free (or the time is up).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::File::create(self.dir.path().join("mosquitto.log"))?;
            let mut command = Command::new(MOSQUITTO);
            command.arg("-c").arg(self.config_path());
            if self.config.is_some() {
                command.arg("-v");
            }
            let child: Child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn()?;
            let mut guard = ChildGuard::new(child);
            let up = wait_until_accepting(self.addr, Duration::from_secs(2)).await;
            let exited = guard.child().is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if up.is_ok() && !exited {
                self.child = Some(guard);
                return Ok(());
            }
            guard.kill();
            if tokio::time::Instant::now() >= deadline {
                return Err(io::Error::other(format!("mosquitto did not start on {}: {}", self.addr, self.log())));
            }
        }
    }

    /// Kills the broker with SIGKILL: every connection drops, nothing is saved.
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Starts the broker again on the same port.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// The broker's own log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Waits until something accepts TCP connections at `addr`.
pub async fn wait_until_accepting(addr: SocketAddr, limit: Duration) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(io::Error::new(e.kind(), format!("nothing accepts on {addr} after {limit:?}: {e}")));
            }
            // Nothing to await for a process to bind a port: poll with a growing pause.
            Err(_) => tokio::time::sleep(pause).await,
        }
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
