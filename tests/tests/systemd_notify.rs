//! The daemons under a `Type=notify` unit (docs/design/packaging.md): each real binary is
//! started with `NOTIFY_SOCKET` pointing at a datagram socket this test holds, as systemd
//! would, and must say READY=1 once it serves, ping the watchdog at half `WATCHDOG_USEC`,
//! and say STOPPING=1 on the first SIGTERM before it exits cleanly.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use simpul_tests::{ChildGuard, workspace_bin};

const PATIENCE: Duration = Duration::from_secs(30);

/// The notify socket and the messages the daemon sent to it, one datagram each.
struct Systemd {
    socket: UnixDatagram,
}

impl Systemd {
    fn bind(dir: &Path) -> Systemd {
        let socket = UnixDatagram::bind(dir.join("notify.sock")).expect("bind the notify socket");
        socket.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
        Systemd { socket }
    }

    fn path(&self) -> std::path::PathBuf {
        self.socket.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)).expect("a path")
    }

    /// Reads datagrams until one has `line`; that datagram.
    fn until(&self, line: &str, log: &Path) -> String {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if msg.lines().any(|l| l == line) {
                        return msg;
                    }
                }
                Err(e) => panic!(
                    "no {line} within {PATIENCE:?} ({e}); the daemon's log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ),
            }
        }
    }
}

/// Starts `bin` with `config` as systemd would start a `Type=notify` unit with
/// `WatchdogSec=1`.
fn start(bin: &str, config: &Path, systemd: &Systemd, log: &Path) -> ChildGuard {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(workspace_bin(bin))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("NOTIFY_SOCKET", systemd.path())
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn");
    ChildGuard::new(child)
}

fn ready_watchdog_and_stopping(bin: &str, config_text: &str, ready_status: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text.replace("{dir}", &dir.path().display().to_string())).expect("config");
    let systemd = Systemd::bind(dir.path());
    let log = dir.path().join("daemon.log");
    let mut daemon = start(bin, &config, &systemd, &log);

    let ready = systemd.until("READY=1", &log);
    assert!(ready.contains(&format!("STATUS={ready_status}")), "{bin} says what it does: {ready:?}");
    systemd.until("WATCHDOG=1", &log);
    systemd.until("WATCHDOG=1", &log);

    let code = daemon.terminate().expect("SIGTERM");
    systemd.until("STOPPING=1", &log);
    assert_eq!(code, Some(0), "{bin} stops cleanly on SIGTERM:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
}

#[test]
fn the_fleet_says_ready_once_it_serves_pings_the_watchdog_and_says_stopping_on_sigterm() {
    let config =
        "[broker]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{dir}/fleet.db\"\n[api]\nlisten = \"127.0.0.1:0\"\n";
    ready_watchdog_and_stopping("simpul-fleet", config, "API on 127.0.0.1:");
}

#[test]
fn the_agent_says_ready_once_its_sensors_run_pings_the_watchdog_and_says_stopping_on_sigterm() {
    let config = "[device]\nid = \"kel-notify\"\n[buffer]\npath = \"{dir}/buffer.db\"\n\
                  [sensors.sim]\nkind = \"simulated\"\ninterval = \"100ms\"\n";
    ready_watchdog_and_stopping("simpul-agent", config, "reading sensors");
}
