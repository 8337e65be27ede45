//! Logs under systemd (docs/design/packaging.md, "Logs: journald under systemd"): the real
//! agent is started as systemd starts a unit whose stderr is the journal stream:
//! `JOURNAL_STREAM` names its stderr's device and inode, and, in a mount namespace of its
//! own, `/run/systemd/journal/socket` is a datagram socket this test holds. Its logs must
//! arrive there as native journal records (priority, message, fields) and not on stderr.
//!
//! Needs root (a mount namespace) and util-linux's `unshare`; without them it prints
//! `SKIPPED: ...` and passes.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use simpul_tests::{ChildGuard, workspace_bin};

const PATIENCE: Duration = Duration::from_secs(30);

/// Mounts a fresh tmpfs on `/run` (the host's journald is untouched), puts the socket named
/// by `$0` (if any) at `/run/systemd/journal/socket`, and execs the rest of the arguments.
const AS_SYSTEMD: &str = "mount -t tmpfs tmpfs /run && if [ -n \"$0\" ]; then mkdir -p /run/systemd/journal \
                          && touch /run/systemd/journal/socket \
                          && mount --bind \"$0\" /run/systemd/journal/socket; fi && exec \"$@\"";

/// One native-protocol record: its fields in order (a field may repeat).
#[derive(Debug, Clone)]
struct Entry(Vec<(String, String)>);

impl Entry {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Parses `KEY=value\n` and `KEY\n<u64 LE length><bytes>\n` fields
    /// (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>).
    fn parse(mut data: &[u8]) -> Result<Entry, String> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'=' || b == b'\n').ok_or("a field without = or newline")?;
            let name = String::from_utf8_lossy(&data[..end]).into_owned();
            let value;
            if data[end] == b'=' {
                let rest = &data[end + 1..];
                let nl = rest.iter().position(|&b| b == b'\n').ok_or("a value without its newline")?;
                value = &rest[..nl];
                data = &rest[nl + 1..];
            } else {
                let rest = &data[end + 1..];
                let len: [u8; 8] = rest.get(..8).and_then(|l| l.try_into().ok()).ok_or("a short length")?;
                let len = usize::try_from(u64::from_le_bytes(len)).map_err(|e| e.to_string())?;
                value = rest.get(8..8 + len).ok_or("a short value")?;
                if rest.get(8 + len) != Some(&b'\n') {
                    return Err(format!("no newline after the value of {name}"));
                }
                data = &rest[8 + len + 1..];
            }
            fields.push((name, String::from_utf8_lossy(value).into_owned()));
        }
        Ok(Entry(fields))
    }
}

/// The socket journald would listen on, read on a thread of its own so that the agent,
/// whose sends block when the socket's queue is full, never waits for the test.
struct Journald {
    path: std::path::PathBuf,
    entries: Receiver<Result<Entry, String>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Journald {
    fn bind(dir: &Path) -> Journald {
        let path = dir.join("journal.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the journal socket");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout");
        let (tx, entries) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while !stopped.load(Ordering::Relaxed) {
                match socket.recv(&mut buf) {
                    // The logger's "is anyone there?" probe.
                    Ok(0) => {}
                    Ok(n) => {
                        if tx.send(Entry::parse(&buf[..n])).is_err() {
                            return;
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(e) => {
                        let _ = tx.send(Err(format!("recv: {e}")));
                        return;
                    }
                }
            }
        });
        Journald { path, entries, stop, reader: Some(reader) }
    }

    /// Reads records until one has `MESSAGE` containing `text`; that record.
    fn until(&self, text: &str, stderr: &Path) -> Entry {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.entries.recv_timeout(left) {
                Ok(Ok(entry)) if entry.get("MESSAGE").is_some_and(|m| m.contains(text)) => return entry,
                Ok(Ok(entry)) => seen.push(entry),
                Ok(Err(e)) => panic!("a datagram that is not a journal record: {e}"),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no record with {text:?} within {PATIENCE:?}; records so far:\n{seen:#?}\nstderr:\n{}",
                    std::fs::read_to_string(stderr).unwrap_or_default()
                ),
            }
        }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Why this test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if uid != 0 {
        return Some(format!("not root (uid {uid}); a mount namespace needs root"));
    }
    match Command::new("unshare").args(["--mount", "--propagation", "private", "true"]).output() {
        Err(e) => Some(format!("no `unshare` ({e})")),
        Ok(out) if !out.status.success() => {
            Some(format!("`unshare --mount` is not permitted here: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        Ok(_) => None,
    }
}

/// Starts the agent with `config` as systemd would with its stderr (a file in `dir`,
/// returned) as the journal stream, and `journald` (if any) listening on the journal socket.
fn start(dir: &Path, config: &Path, journald: Option<&Journald>) -> (ChildGuard, std::path::PathBuf) {
    let stderr_path = dir.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("the stderr file");
    let stream = stderr.metadata().expect("the stderr file's metadata");
    let agent = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", AS_SYSTEMD])
        .arg(journald.map(|j| j.path.as_os_str()).unwrap_or_default())
        .arg(workspace_bin("simpul-agent"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("JOURNAL_STREAM", format!("{}:{}", stream.dev(), stream.ino()))
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn the agent");
    (ChildGuard::new(agent), stderr_path)
}

#[test]
fn under_systemd_the_agent_logs_to_journald_with_priorities_and_fields_not_stderr() {
    if let Some(why) = cannot_run() {
        println!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    // A serial sensor whose port is not there: the agent says so at debug, inside the
    // sensor's span, and keeps retrying.
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"info,simpul_agent::sensor=debug\"\n\
             [device]\nid = \"kel-journald\"\n[buffer]\npath = \"{dir}/buffer.db\"\n\
             [sensors.gauge]\nkind = \"ascii\"\nformat = \"number\"\nport = {{ path = \"{dir}/no-such-port\" }}\n",
            dir = dir.path().display()
        ),
    )
    .expect("write the config");
    let journald = Journald::bind(dir.path());
    let (mut agent, stderr_path) = start(dir.path(), &config, Some(&journald));

    let loaded = journald.until("config loaded", &stderr_path);
    assert_eq!(loaded.get("PRIORITY"), Some("5"), "INFO is notice (5), as systemd-journal-logger maps it: {loaded:?}");
    assert_eq!(loaded.get("SYSLOG_IDENTIFIER"), Some("simpul-agent"), "{loaded:?}");
    assert_eq!(loaded.get("TARGET"), Some("simpul_agent::cli"), "{loaded:?}");
    assert_eq!(loaded.get("CODE_FILE"), Some("agent/src/cli.rs"), "{loaded:?}");
    assert!(loaded.get("CODE_LINE").is_some_and(|l| l.parse::<u32>().is_ok()), "{loaded:?}");
    assert!(loaded.get("SYSLOG_PID").is_some_and(|p| p == agent.id().unwrap_or_default().to_string()), "{loaded:?}");
    assert!(loaded.get("FILES").is_some_and(|f| f.contains("agent.toml")), "the event's field as a field: {loaded:?}");

    let starting = journald.until("simpul-agent starting", &stderr_path);
    assert_eq!(starting.get("DEVICE"), Some("kel-journald"), "{starting:?}");
    assert_eq!(starting.get("SENSORS"), Some("1"), "{starting:?}");
    let message = starting.get("MESSAGE").unwrap_or_default();
    assert!(message.starts_with("simpul-agent starting device=kel-journald sensors=1 buffer="), "{message}");

    let cannot_open = journald.until("cannot open port", &stderr_path);
    assert_eq!(cannot_open.get("PRIORITY"), Some("6"), "DEBUG is info (6): {cannot_open:?}");
    assert_eq!(cannot_open.get("SENSOR_ID"), Some("gauge"), "the span's fields as fields: {cannot_open:?}");
    assert_eq!(cannot_open.get("SENSOR_KIND"), Some("ascii"), "{cannot_open:?}");
    assert!(cannot_open.get("ERROR").is_some(), "{cannot_open:?}");
    let message = cannot_open.get("MESSAGE").unwrap_or_default();
    assert!(message.starts_with(r#"sensor{id=gauge kind="ascii"}: cannot open port path="#), "{message}");

    let code = agent.terminate().expect("SIGTERM");
    journald.until("simpul-agent stopped", &stderr_path);
    assert_eq!(code, Some(0), "the agent stops cleanly on SIGTERM");
    let stderr = std::fs::read_to_string(&stderr_path).expect("read the stderr file");
    assert!(stderr.is_empty(), "nothing on stderr when it is the journal stream:\n{stderr}");
}

#[test]
fn under_systemd_without_journald_the_agent_says_so_once_and_logs_to_stderr() {
    if let Some(why) = cannot_run() {
        println!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    // A buffer that cannot be created: the agent logs, fails and exits by itself.
    std::fs::write(&config, "[device]\nid = \"kel-journald\"\n[buffer]\npath = \"/proc/no-such-dir/buffer.db\"\n")
        .expect("write the config");
    let (mut agent, stderr_path) = start(dir.path(), &config, None);
    let code = agent.child().map(|c| c.wait().map(|s| s.code())).expect("the agent").expect("wait for the agent");
    assert_eq!(code, Some(1), "the agent fails on a buffer it cannot create");
    let stderr = std::fs::read_to_string(&stderr_path).expect("read the stderr file");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.first().is_some_and(
            |l| l.starts_with("warning: journald cannot be reached (") && l.ends_with("): logging to stderr")
        ),
        "the first line says why stderr:\n{stderr}"
    );
    assert_eq!(stderr.matches("journald cannot be reached").count(), 1, "said once:\n{stderr}");
    assert!(lines.iter().any(|l| l.contains(" INFO simpul_agent::cli: config loaded")), "{stderr}");
    assert!(lines.iter().any(|l| l.contains(" ERROR simpul_agent::cli: simpul-agent failed")), "{stderr}");
}
