//! A real PostgreSQL server (Debian's `postgresql` package), started and stopped by the test.
//!
//! The cluster lives in a private temp dir and listens on a unix socket in that dir
//! (`listen_addresses = ''`), so no TCP port is taken and two tests never collide; only
//! [`Postgres::start_tls`] adds 127.0.0.1 (TLS is not spoken on unix sockets). It runs
//! with `fsync = off`: tests kill fleet servers, never the database, so durability of the
//! database itself is not what they prove. PostgreSQL refuses to run as root; when the test
//! runs as root (CI does), the dir is given to the `postgres` user and both binaries run as it.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The port is only part of the socket file's name (`.s.PGSQL.5432`).
const PORT: u16 = 5432;

/// A PostgreSQL server of its own. Stopped (SIGQUIT, then reaped) when dropped.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The TCP port of a server started with [`Postgres::start_tls`].
    tcp_port: Option<u16>,
}

impl Postgres {
    /// Makes a fresh cluster (`initdb`) and starts the server; returns when it accepts
    /// connections. User `simpul`, no password (trust on the private socket).
    pub fn start() -> io::Result<Postgres> {
        Postgres::start_with(None)
    }

    /// As [`Postgres::start`], and also on 127.0.0.1 (a free port) for TLS only: `hostssl`
    /// is the one TCP line of `pg_hba.conf`, with `cert_pem` and `key_pem` the server's.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> io::Result<Postgres> {
        Postgres::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> io::Result<Postgres> {
        let bin = bin_dir()?;
        // Short: a unix socket path must stay under 107 bytes.
        let dir = tempfile::Builder::new().prefix("pg").tempdir_in("/tmp")?;
        let owner = run_as()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let data = dir.path().join("data");
        let log = dir.path().join("initdb.log");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "simpul", "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.path().join("initdb.err"))?);
        as_owner(&mut initdb, owner);
        let status = initdb.status()?;
        if !status.success() {
            let err = std::fs::read_to_string(dir.path().join("initdb.err")).unwrap_or_default();
            return Err(io::Error::other(format!("initdb failed ({status}): {err}")));
        }
        let mut listen = "listen_addresses=".to_owned();
        let mut tcp_port = None;
        let mut ssl = Vec::new();
        if let Some((cert, key)) = tls {
            // PostgreSQL cannot take port 0: ask the kernel for a free one and hand it over.
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            listen = "listen_addresses=127.0.0.1".to_owned();
            tcp_port = Some(port);
            for (name, text) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, text)?;
                std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
                }
            }
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")?;
            ssl = vec!["-c".to_owned(), "ssl=on".to_owned()];
        }
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-p", &tcp_port.unwrap_or(PORT).to_string()])
            .args(["-c", &listen, "-c", "fsync=off", "-c", "max_connections=200"])
            .args(&ssl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("postgres.log"))?);
        as_owner(&mut server, owner);
        let child = server.spawn()?;
        let mut pg = Postgres { dir, child: Some(child), tcp_port };
        pg.wait_ready(&bin, Duration::from_secs(30))?;
        Ok(pg)
    }

    /// The connection string (libpq key=value form) for the `postgres` database.
    pub fn url(&self) -> String {
        format!("host={} port={} user=simpul dbname=postgres", self.dir.path().display(), self.port())
    }

    /// The connection string over TCP to 127.0.0.1, for a server started with
    /// [`Postgres::start_tls`].
    pub fn tcp_url(&self) -> Option<String> {
        self.tcp_port.map(|port| format!("host=127.0.0.1 port={port} user=simpul dbname=postgres"))
    }

    fn port(&self) -> u16 {
        self.tcp_port.unwrap_or(PORT)
    }

    /// The server's own log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, bin: &Path, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!("postgres exited ({status}): {}", self.log())));
            }
            let ready = Command::new(bin.join("pg_isready"))
                .arg("-h")
                .arg(self.dir.path())
                .args(["-p", &self.port().to_string(), "-U", "simpul", "-q"])
                .stdin(Stdio::null())
                .status()?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!("postgres not ready after {limit:?}: {}", self.log())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: immediate shutdown; the postmaster stops its backends and exits.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
            }
            let _ = child.wait();
        }
    }
}

/// The binaries of the newest PostgreSQL Debian installed (`initdb` is not on PATH).
fn bin_dir() -> io::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let missing = || {
        io::Error::new(io::ErrorKind::NotFound, "PostgreSQL is missing: apt-get install postgresql (scripts/test does)")
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| missing())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(missing)
}

/// The `postgres` user's uid and gid when this process is root (PostgreSQL refuses root).
fn run_as() -> io::Result<Option<(u32, u32)>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
        })
        .map(Some)
        .ok_or_else(|| io::Error::other("running as root, and there is no `postgres` user to run PostgreSQL as"))
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}
