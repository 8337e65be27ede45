//! The real binary: config commands (exit codes and messages a person and systemd rely
//! on), and a SIGKILL in the middle of ingest.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Agent, Mosquitto, WAIT, batch};

fn fleet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simpul-fleet")).args(args).output().unwrap()
}

#[test]
fn a_wrong_config_exits_78_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, "[mqtt]\nbroker = \"127.0.0.1:1883\"\n\n[store]\npaht = \"/tmp/x.db\"\n").unwrap();
    let out = fleet(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5: ", path.display())), "{err}");
    assert!(err.contains("paht"), "{err}");
    let out = fleet(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "run refuses the same config");
}

#[test]
fn the_printed_default_config_checks_ok() {
    let out = fleet(&["print-default-config"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let out = fleet(&["check-config", "--print", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("config OK"));
}

/// The fleet binary, killed with SIGKILL on drop.
struct FleetProcess(std::process::Child);

impl FleetProcess {
    /// Starts `simpul-fleet run` and waits until it logs that it is subscribed.
    fn start(config: &std::path::Path) -> FleetProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_simpul-fleet"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("subscribed") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(WAIT).expect("the fleet subscribed");
        FleetProcess(child)
    }
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_killed_before_its_commit_gets_the_batch_again_and_acks_it_after_restart() {
    let broker = Mosquitto::start().await.expect("mosquitto (apt-get install mosquitto)");
    let dir = tempfile::tempdir().unwrap();
    let config = |commit_interval: &str| {
        let path = dir.path().join(format!("fleet-{}.toml", commit_interval.len()));
        let text = format!(
            "[mqtt]\nbroker = \"127.0.0.1:{}\"\nclient_id = \"fleet-kill\"\n[store]\npath = \"{}\"\n\
             commit_interval = \"{commit_interval}\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
            broker.port(),
            dir.path().join("fleet.db").display()
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    // A commit interval of an hour: the batch is received but never committed.
    let slow = FleetProcess::start(&config("1h"));
    let mut agent = Agent::connect(broker.port(), "kel-kill").await;
    agent.publish(&batch(1..=3)).await;
    drop(slow); // SIGKILL
    assert_eq!(agent.last_ack, 0);

    let _fleet = FleetProcess::start(&config("20ms"));
    agent.wait_ack(3).await;
}
