//! The workspace's real binaries as child processes that never outlive the test.

use std::path::PathBuf;
use std::process::Child;

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// The child itself (to take its stdout or stderr).
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    /// Kills the process now with SIGKILL, as a power cut would stop it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> std::io::Result<Option<i32>> {
        let Some(mut c) = self.0.take() else { return Ok(None) };
        let status = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status()?;
        if !status.success() {
            return Err(std::io::Error::other("kill -TERM failed"));
        }
        Ok(c.wait()?.code())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of a workspace binary (`simpul-agent`, `simpul-fleet`, ...), built beside the
/// running test in the same target directory. `cargo nextest run --workspace` (and
/// `scripts/test`) builds them; a missing one is a clear panic, not a skipped test.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) });
    let path = dir.map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name));
    assert!(path.exists(), "{} is not built: run `cargo build --workspace --bins` (scripts/test does)", path.display());
    path
}
