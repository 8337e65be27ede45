//! A real Mosquitto broker on 127.0.0.1 and a free port, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/sbin/mosquitto";

/// A running broker.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub fn start() -> Mosquitto {
        Mosquitto::start_on(free_port())
    }

    /// Starts a broker on `port` (again, after [`Mosquitto::kill`]), without persistence:
    /// a restart forgets retained messages and sessions, as a crashed broker may.
    pub fn start_on(port: u16) -> Mosquitto {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: the uplink tests need a real broker (apt-get install mosquitto)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"))
            .expect("write mosquitto.conf");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(BINARY)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mosquitto");
            // Ready when it accepts a connection; a port still held by the killed
            // broker's socket makes it exit, and then it is started again.
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Mosquitto { child, port, _dir: dir };
                }
                if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "mosquitto did not start on port {port}");
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill(mut self) -> u16 {
        self.stop();
        self.port
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
