//! The Debian packages as a box and a command-centre server get them (issue 9,
//! docs/design/packaging.md): installed into a fresh Debian 12 root made by debootstrap
//! (files, the service users, the units checked by `systemd-analyze verify`), upgraded
//! with the box's config, identity and buffer kept, removed and purged; and the
//! cross-built agents run under qemu-user against a sensor on a pty.
//!
//! The packages are the ones in `SIMPUL_DEB_DIR`. Without it these tests say SKIPPED and
//! pass, so the ordinary test run needs no release builds. `scripts/package --test` (CI)
//! builds the packages into `target/debian/`, points `SIMPUL_DEB_DIR` there and sets
//! `SIMPUL_PACKAGES_REQUIRED` to the architectures built; then a missing package or tool
//! fails the test instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use simpul_tests::PtySensor;
use simpul_tests::process::ChildGuard;

/// Only a guard against a hang.
const PATIENCE: Duration = Duration::from_secs(60);
/// The goal for the arm64 agent's stripped binary (issue 9).
const ARM64_AGENT_GOAL_BYTES: u64 = 8_000_000;

/// Whether the architectures' packages must be there (CI's packaging stage).
fn required(arch: &str) -> bool {
    std::env::var("SIMPUL_PACKAGES_REQUIRED").is_ok_and(|v| v.split_whitespace().any(|a| a == arch))
}

/// Says SKIPPED (and the test returns) or, when `arch` is required, fails.
fn skip(arch: &str, why: &str) {
    assert!(!required(arch), "{why} (SIMPUL_PACKAGES_REQUIRED names {arch})");
    println!("SKIPPED: {why}; `scripts/package --test` builds the packages and runs these tests");
}

/// The newest `{name}_*_{arch}.deb` in `SIMPUL_DEB_DIR`.
fn deb(name: &str, arch: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(std::env::var_os("SIMPUL_DEB_DIR")?).ok()?;
    let prefix = format!("{name}_");
    let suffix = format!("_{arch}.deb");
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&suffix)))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The packages for `arch`, and whether this machine can run the test (root and tools).
fn packages(arch: &str, names: &[&str], tools: &[&str]) -> Option<Vec<PathBuf>> {
    let mut debs = Vec::new();
    for name in names {
        match deb(name, arch) {
            Some(d) => debs.push(d),
            None => {
                let dir = std::env::var("SIMPUL_DEB_DIR").unwrap_or_else(|_| "(SIMPUL_DEB_DIR unset)".into());
                skip(arch, &format!("no {name} package for {arch} in {dir}"));
                return None;
            }
        }
    }
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref().ok() != Some("0") {
        skip(arch, "not root");
        return None;
    }
    for tool in tools {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            skip(arch, &format!("{tool} is not installed"));
            return None;
        }
    }
    Some(debs)
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh Debian 12 root (debootstrap, minbase with systemd), deleted at the end.
struct DebianRoot {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl DebianRoot {
    fn make() -> DebianRoot {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        // The downloaded packages are kept for the next root (target/, beside the build).
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debootstrap-cache");
        std::fs::create_dir_all(&cache).expect("mkdir the debootstrap cache");
        let mirror = std::env::var("SIMPUL_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", "--include=systemd"])
            .arg(format!("--cache-dir={}", cache.display()))
            .arg("bookworm")
            .arg(&root)
            .arg(&mirror)
            .stdin(Stdio::null())
            .output()
            .expect("run debootstrap");
        assert!(out.status.success(), "debootstrap bookworm from {mirror}\n{}", text(&out));
        DebianRoot { _dir: dir, root }
    }

    /// `path` inside the root, as seen from outside.
    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Runs `script` with /bin/sh inside the root (its own /proc, in a mount namespace of
    /// its own that ends with it).
    fn sh(&self, script: &str) -> Output {
        Command::new("unshare")
            .args(["--mount", "--fork", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -c "$1""#)
            .arg(&self.root)
            .arg(script)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("run a command in the Debian root")
    }

    /// [`DebianRoot::sh`] that must succeed; its stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "in the Debian root: {script}\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dpkg -i` of these packages (copied into the root's /tmp).
    fn install(&self, debs: &[PathBuf]) -> String {
        let mut names = Vec::new();
        for d in debs {
            let name = d.file_name().and_then(|n| n.to_str()).expect("a package file name").to_owned();
            std::fs::copy(d, self.path(&format!("/tmp/{name}"))).expect("copy the package into the root");
            names.push(format!("/tmp/{name}"));
        }
        self.ok(&format!("dpkg -i {}", names.join(" ")))
    }

    fn read(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.path(path)).unwrap_or_else(|e| panic!("read {path} in the Debian root: {e}"))
    }

    /// The package's version, or None when it is not installed.
    fn version(&self, package: &str) -> Option<String> {
        let out = self.sh(&format!("dpkg-query -W -f='${{Status}} ${{Version}}' {package}"));
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.strip_prefix("install ok installed ").map(str::to_owned)
    }
}

/// A copy of `deb` with the Debian revision `revision`: the next upgrade, same contents.
fn with_revision(deb: &Path, revision: &str, dir: &Path) -> PathBuf {
    let tree = dir.join(format!("tree-{revision}"));
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run dpkg-deb");
        assert!(out.status.success(), "{cmd:?}\n{}", text(&out));
    };
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let old = std::fs::read_to_string(&control).expect("read control");
    let new: String = old
        .lines()
        .map(|l| match l.strip_prefix("Version: ") {
            Some(v) => format!("Version: {}-{revision}\n", v.rsplit_once('-').map_or(v, |(up, _)| up)),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&control, new).expect("write control");
    let out = dir.join(format!("upgrade-{revision}.deb"));
    run(Command::new("dpkg-deb").args(["--root-owner-group", "-b"]).arg(&tree).arg(&out));
    out
}

#[test]
fn the_amd64_packages_install_into_a_fresh_debian_root_with_their_users_files_and_verified_units() {
    let Some(debs) = packages("amd64", &["simpul-agent", "simpul-fleet"], &["debootstrap", "unshare"]) else {
        return;
    };
    let root = DebianRoot::make();
    let log = root.install(&debs);
    println!("{log}");
    assert_eq!(root.version("simpul-agent").as_deref(), Some("0.1.0-1"));
    assert_eq!(root.version("simpul-fleet").as_deref(), Some("0.1.0-1"));

    // The files, where the units and the docs say.
    for f in [
        "/usr/lib/simpul-agent/simpul-agent",
        "/usr/lib/simpul-agent/import-bundle",
        "/var/lib/simpul/bin/simpul-agent",
        "/etc/simpul/agent.toml",
        "/usr/lib/systemd/system/simpul-agent.service",
        "/usr/lib/sysusers.d/simpul-agent.conf",
        "/usr/share/doc/simpul-agent/install.md",
        "/usr/bin/simpul-fleet",
        "/etc/simpul/fleet.toml",
        "/usr/lib/systemd/system/simpul-fleet.service",
        "/usr/lib/sysusers.d/simpul-fleet.conf",
    ] {
        assert!(root.path(f).is_file(), "{f} is installed");
    }
    assert_eq!(
        root.read("/var/lib/simpul/bin/simpul-agent"),
        root.read("/usr/lib/simpul-agent/simpul-agent"),
        "the binary the unit runs is the package's"
    );
    assert_eq!(
        std::fs::read_link(root.path("/usr/bin/simpul-agent")).expect("/usr/bin/simpul-agent is a link"),
        Path::new("/var/lib/simpul/bin/simpul-agent")
    );
    for unit in ["simpul-agent", "simpul-fleet"] {
        // A link into the root's /lib: look at the link, not through it.
        let wants = root.path(&format!("/etc/systemd/system/multi-user.target.wants/{unit}.service"));
        assert!(std::fs::symlink_metadata(&wants).is_ok(), "{unit} is enabled");
    }

    // The service users: the agent's in dialout for the serial ports, the fleet's not.
    let agent_user = root.ok("getent passwd simpul");
    let fields: Vec<&str> = agent_user.trim().split(':').collect();
    assert_eq!(fields.get(5), Some(&"/var/lib/simpul"), "{agent_user}");
    assert_eq!(fields.get(6), Some(&"/usr/sbin/nologin"), "{agent_user}");
    let uid: u32 = fields.get(2).and_then(|u| u.parse().ok()).expect("a uid");
    assert!(uid < 1000, "a system user: {agent_user}");
    let groups = root.ok("id -nG simpul");
    assert!(groups.split_whitespace().any(|g| g == "dialout"), "simpul is in dialout: {groups}");
    let groups = root.ok("id -nG simpul-fleet");
    assert!(!groups.split_whitespace().any(|g| g == "dialout"), "the fleet has no serial ports: {groups}");

    // Only the agent's state and drop-ins are its to write.
    let owners = root.ok("stat -c '%n %U:%G %a' /var/lib/simpul /var/lib/simpul/bin /etc/simpul/agent.d /etc/simpul /etc/simpul/agent.toml /var/lib/simpul-fleet");
    assert_eq!(
        owners,
        "/var/lib/simpul simpul:simpul 750\n/var/lib/simpul/bin simpul:simpul 750\n/etc/simpul/agent.d simpul:simpul 750\n\
         /etc/simpul root:root 755\n/etc/simpul/agent.toml root:root 644\n/var/lib/simpul-fleet simpul-fleet:simpul-fleet 750\n"
    );

    // The service users read the packaged configs; a typo is named and exits 78.
    let agent = root.ok("setpriv --reuid simpul --regid simpul --init-groups simpul-agent check-config");
    assert!(agent.contains("config OK"), "{agent}");
    let fleet = root.ok("setpriv --reuid simpul-fleet --regid simpul-fleet --init-groups simpul-fleet check-config");
    assert!(fleet.contains("OK"), "{fleet}");
    let typo = root
        .sh("printf '[uplink]\\nenabeld = true\\n' > /etc/simpul/agent.d/50-typo.toml && simpul-agent check-config; \
         code=$?; rm /etc/simpul/agent.d/50-typo.toml; exit $code");
    assert_eq!(typo.status.code(), Some(78), "{}", text(&typo));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("50-typo.toml:2"), "{}", text(&typo));

    // The units: what systemd will hold them to, then systemd's own check.
    for (unit, user, state) in [("simpul-agent", "simpul", "simpul"), ("simpul-fleet", "simpul-fleet", "simpul-fleet")]
    {
        let file = String::from_utf8(root.read(&format!("/usr/lib/systemd/system/{unit}.service"))).expect("utf-8");
        for line in [
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=30s",
            "RestartPreventExitStatus=78",
            "ProtectSystem=strict",
            &format!("User={user}"),
            &format!("StateDirectory={state}"),
        ] {
            assert!(file.lines().any(|l| l == line), "{unit}.service has {line}");
        }
        let verify = root.sh(&format!("systemd-analyze verify /usr/lib/systemd/system/{unit}.service"));
        assert!(verify.status.success(), "systemd-analyze verify {unit}.service\n{}", text(&verify));
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(!stderr.contains(unit), "systemd-analyze has nothing to say about {unit}.service:\n{stderr}");
        let security =
            root.sh(&format!("systemd-analyze security --offline=yes /usr/lib/systemd/system/{unit}.service"));
        let report = String::from_utf8_lossy(&security.stdout);
        let overall = report.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("(no overall level)");
        println!("{unit}.service: {}", overall.trim());
        // systemd's scale runs from 0 (locked down) to 10 (unprotected); "OK" ends at 4.
        let level: Option<f64> = overall.split(':').nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok());
        assert!(level.is_some_and(|l| l <= 3.0), "{unit}.service is exposed: {}\n{report}", overall.trim());
    }
}

#[test]
fn an_upgrade_keeps_the_boxs_config_identity_and_buffer_and_a_purge_removes_them() {
    let Some(debs) = packages("amd64", &["simpul-agent"], &["debootstrap", "unshare", "dpkg-deb"]) else {
        return;
    };
    let root = DebianRoot::make();
    root.install(&debs);

    // A box in service: ops edited the config, enrolment left its drop-in and identity,
    // and the agent, run as its user, buffered readings of a sensor.
    root.ok(
        "echo '# edited by ops' >> /etc/simpul/agent.toml && \
         printf '[sensors.sim]\\nkind = \"simulated\"\\ninterval = \"20ms\"\\nseed = 1\\n' > /etc/simpul/agent.d/20-sensors.toml && \
         install -d -o simpul -g simpul -m 0700 /var/lib/simpul/trust && \
         echo 'a key made on the box' > /var/lib/simpul/trust/device.key && chown simpul /var/lib/simpul/trust/device.key",
    );
    root.ok(
        "setpriv --reuid simpul --regid simpul --init-groups simpul-agent run 2>/tmp/agent.log & pid=$!; i=0; \
         until simpul-agent buffer stats --json 2>/dev/null | awk -F'[:,]' '/\"readings\":/ { found = ($2 + 0 >= 20) } END { exit !found }'; do \
           i=$((i + 1)); if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/agent.log >&2; exit 1; fi; sleep 0.1; \
         done; kill -TERM $pid; wait $pid",
    );
    let held = |root: &DebianRoot| {
        let stats: serde_json::Value =
            serde_json::from_str(&root.ok("simpul-agent buffer stats --json")).expect("buffer stats JSON");
        (stats["readings"].as_u64(), stats["first_seq"].as_u64(), stats["last_seq"].as_u64())
    };
    let stats_before = held(&root);
    assert!(stats_before.0.is_some_and(|n| n >= 20), "{stats_before:?}");
    let key_before = root.read("/var/lib/simpul/trust/device.key");
    let config_before = root.read("/etc/simpul/agent.toml");

    // The upgrade.
    let work = tempfile::tempdir().expect("tempdir");
    let next = with_revision(&debs[0], "2", work.path());
    root.install(&[next]);
    assert_eq!(root.version("simpul-agent").as_deref(), Some("0.1.0-2"));
    assert_eq!(root.read("/etc/simpul/agent.toml"), config_before, "ops' edit to the config is kept");
    assert!(root.path("/etc/simpul/agent.d/20-sensors.toml").is_file(), "the drop-ins are kept");
    assert_eq!(root.read("/var/lib/simpul/trust/device.key"), key_before, "the box's identity is kept");
    assert_eq!(held(&root), stats_before, "every buffered reading is kept");
    assert_eq!(
        root.read("/var/lib/simpul/bin/simpul-agent"),
        root.read("/usr/lib/simpul-agent/simpul-agent"),
        "the unit runs the upgraded package's binary"
    );

    // Remove: the program goes, the data stays.
    root.ok("dpkg -r simpul-agent");
    assert_eq!(root.version("simpul-agent"), None);
    assert!(!root.path("/var/lib/simpul/bin/simpul-agent").exists(), "the binary is removed");
    assert!(!root.path("/usr/lib/systemd/system/simpul-agent.service").exists(), "the unit is removed");
    assert!(root.path("/var/lib/simpul/buffer.db").is_file(), "remove keeps the buffer");
    assert!(root.path("/etc/simpul/agent.toml").is_file(), "remove keeps the config");

    // Purge: config, drop-ins, identity and buffer go; the user stays (Debian's practice).
    root.ok("dpkg --purge simpul-agent");
    for gone in ["/etc/simpul", "/var/lib/simpul"] {
        assert!(!root.path(gone).exists(), "purge removes {gone}");
    }
    let wants = root.path("/etc/systemd/system/multi-user.target.wants/simpul-agent.service");
    assert!(std::fs::symlink_metadata(wants).is_err(), "purge disables the unit");
    root.ok("getent passwd simpul");
}

/// The agent of `arch`'s package, unpacked, run under qemu-user against a pty sensor:
/// its readings reach its buffer, and SIGTERM stops it cleanly.
///
/// Debian's qemu-user lacks the TCGETS2/TCSETS2 ioctls serial2 configures a port with (a
/// Pi's kernel has them), so the emulated agent runs with `tests/qemu/termios2_shim.c`
/// preloaded, built here with the architecture's cross compiler; it maps them to the
/// TCGETS/TCSETS that qemu does translate.
async fn cross_agent_reads_a_pty_sensor(arch: &str, qemu: &str, gnu: &str) {
    let cc = format!("{gnu}-gcc");
    let Some(debs) = packages(arch, &["simpul-agent"], &[qemu, &cc, "dpkg-deb"]) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let unpacked = dir.path().join("pkg");
    let out = Command::new("dpkg-deb").arg("-x").arg(&debs[0]).arg(&unpacked).output().expect("dpkg-deb -x");
    assert!(out.status.success(), "{}", text(&out));
    let binary = unpacked.join("usr/lib/simpul-agent/simpul-agent");
    let size = std::fs::metadata(&binary).expect("the agent binary").len();
    println!("simpul-agent {arch}: {size} bytes stripped ({:.2} MB)", size as f64 / 1e6);
    if arch == "arm64" {
        assert!(size <= ARM64_AGENT_GOAL_BYTES, "the arm64 agent is {size} bytes, over the 8 MB goal");
    }
    let shim = dir.path().join("termios2_shim.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("qemu/termios2_shim.c");
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("run the cross compiler");
    assert!(out.status.success(), "{cc} {}\n{}", source.display(), text(&out));

    let mut sensor = PtySensor::create(dir.path().join("ttyUSB0")).expect("a pty");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"kel-{arch}\"\n[buffer]\npath = \"{buffer}\"\nflush_interval = \"100ms\"\n\
             [sensors.level]\nkind = \"ascii\"\nformat = \"prefixed\"\nprefix = \"L\"\n\
             port = {{ path = \"{port}\", baud = 9600 }}\n",
            buffer = dir.path().join("buffer.db").display(),
            port = sensor.link().display(),
        ),
    )
    .expect("write the config");
    let agent = |args: &[&str]| {
        let mut c = Command::new(qemu);
        c.args(["-L", &format!("/usr/{gnu}"), "-E"])
            .arg(format!("LD_PRELOAD={}", shim.display()))
            .arg(&binary)
            .arg("--config")
            .arg(&config)
            .args(args);
        c
    };
    let version = agent(&["--version"]).output().expect("run the agent under qemu");
    assert!(version.status.success(), "{}", text(&version));
    let log = dir.path().join("agent.log");
    let mut run = agent(&["run"]);
    run.stdout(Stdio::null()).stderr(std::fs::File::create(&log).expect("log file"));
    let mut child = ChildGuard::new(run.spawn().expect("start the agent under qemu"));

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut n = 0u32;
    let readings = loop {
        n += 1;
        sensor.write_line(&format!("L{}", 100 + n)).await.expect("write a reading");
        let stats = agent(&["buffer", "stats", "--json"]).output().expect("buffer stats under qemu");
        let held = serde_json::from_slice::<serde_json::Value>(&stats.stdout)
            .ok()
            .and_then(|v| v["readings_by_sensor"]["level"].as_u64());
        if held.is_some_and(|h| h >= 3) {
            break held;
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(tokio::time::Instant::now() < deadline, "no readings in the {arch} agent's buffer\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("simpul-agent {arch} under {qemu}: {readings:?} readings in its buffer from {n} lines");
    let code = child.terminate().expect("SIGTERM");
    assert_eq!(code, Some(0), "a clean stop\n{}", std::fs::read_to_string(&log).unwrap_or_default());
}

#[tokio::test]
async fn the_arm64_agent_reads_a_pty_sensor_into_its_buffer_under_qemu_and_fits_8_mb() {
    cross_agent_reads_a_pty_sensor("arm64", "qemu-aarch64", "aarch64-linux-gnu").await;
}

#[tokio::test]
async fn the_armhf_agent_reads_a_pty_sensor_into_its_buffer_under_qemu() {
    cross_agent_reads_a_pty_sensor("armhf", "qemu-arm", "arm-linux-gnueabihf").await;
}
