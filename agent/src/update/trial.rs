//! The trial (docs/design/updates.md, "the old binary supervises the new one"): after the
//! agent stopped for a staged release, the old process runs `agent.new` as a child with
//! the same arguments until the child says it is healthy, exits `[update] crash_limit`
//! times, or `[update] trial_timeout` passes. Healthy: the old binary is kept as
//! `agent.prev`, `agent.new` replaces it at its path (self-replace: one rename), and the
//! process `exec`s the path. Otherwise: `agent.new` is removed and the process `exec`s the
//! old binary again. The binary at the path changes only after the trial passed, so a
//! power cut at any step leaves a box that starts.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use simpul_base::systemd::WatchdogPinger;

use super::{HEALTHY, PREV, Staged, State, TRIAL_ENV, UpdateError};
use crate::config::UpdateConfig;

/// How often the supervisor looks at its child.
const POLL: Duration = Duration::from_millis(100);
/// How long a healthy child gets to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause before a crashed child is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// How a trial ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Healthy: commit.
    Healthy,
    /// Not: roll back, for this reason.
    Failed(String),
    /// The daemon was told to stop (SIGTERM, SIGINT) mid-trial: the child was stopped and
    /// the state left at `Trial`, which the next start settles as a rollback (the box
    /// restarted during the trial). Nothing is `exec`d.
    Stopped,
}

/// Runs the trial of `staged` and settles it: commits (replaces the binary at `exe`) or
/// rolls back, writes the state, and returns what to `exec` next.
pub fn supervise(
    staged: &Staged,
    config: &UpdateConfig,
    exe: &Path,
    args: &[OsString],
) -> Result<Outcome, UpdateError> {
    let dir = &config.dir;
    State::Trial { version: staged.version.clone(), from: staged.from.clone() }.save(dir)?;
    let healthy = dir.join(HEALTHY);
    let _ = std::fs::remove_file(&healthy);
    tracing::warn!(version = %staged.version, timeout = ?config.trial_timeout, "trial of the new release");
    let outcome = run_trial(staged, config, args, &healthy);
    let _ = std::fs::remove_file(&healthy);
    match &outcome {
        Outcome::Healthy => commit(staged, dir, exe)?,
        Outcome::Stopped => {
            tracing::warn!(version = %staged.version, "stopped during the trial; the next start goes back")
        }
        Outcome::Failed(reason) => {
            tracing::error!(version = %staged.version, %reason, "the new release failed its trial; going back");
            let _ = std::fs::remove_file(&staged.binary);
            State::RolledBack { version: staged.version.clone(), reason: reason.clone(), reported: false }.save(dir)?;
        }
    }
    Ok(outcome)
}

fn run_trial(staged: &Staged, config: &UpdateConfig, args: &[OsString], healthy: &Path) -> Outcome {
    let deadline = Instant::now() + config.trial_timeout;
    let mut exits = 0;
    // This process is the unit's main process for the whole trial, and its runtime is
    // gone: it feeds systemd's watchdog itself, or a trial longer than `WatchdogSec`
    // would get the box restarted mid-trial.
    let mut watchdog = WatchdogPinger::from_env();
    // The daemon's own signal handling went with its runtime: a stop (`systemctl stop`)
    // during the trial is watched for here, or it would look like the child crashing.
    let mut signals = StopSignals::install();
    loop {
        watchdog.tick();
        let mut child = match start(&staged.binary, args, healthy) {
            Ok(c) => c,
            Err(e) => {
                exits += 1;
                if exits >= config.crash_limit {
                    return Outcome::Failed(format!("it could not be started {exits} times: {e}"));
                }
                if signals.wait(RESTART_PAUSE) {
                    return Outcome::Stopped;
                }
                continue;
            }
        };
        loop {
            watchdog.tick();
            if is_healthy(healthy, &staged.version) {
                stop(&mut child, &mut watchdog);
                return Outcome::Healthy;
            }
            if let Ok(Some(status)) = child.try_wait() {
                exits += 1;
                tracing::warn!(version = %staged.version, %status, exits, "the new release exited during its trial");
                if exits >= config.crash_limit {
                    return Outcome::Failed(format!("it exited {exits} times before it was healthy (last: {status})"));
                }
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Failed(format!("it was not healthy within {:?}", config.trial_timeout));
            }
            if signals.wait(POLL) {
                stop(&mut child, &mut watchdog);
                return Outcome::Stopped;
            }
        }
        if signals.wait(RESTART_PAUSE) {
            return Outcome::Stopped;
        }
    }
}

/// SIGTERM and SIGINT for the supervising loop, on a small runtime of its own.
struct StopSignals(Option<(tokio::runtime::Runtime, tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let installed = runtime.map_err(|e| e.to_string()).and_then(|rt| {
            let signals = {
                let _inside = rt.enter();
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            };
            match signals {
                (Ok(term), Ok(int)) => Ok((rt, term, int)),
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            }
        });
        match installed {
            Ok(s) => StopSignals(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for a stop during the trial");
                StopSignals(None)
            }
        }
    }

    /// Waits `period`; whether a stop signal came meanwhile.
    fn wait(&mut self, period: Duration) -> bool {
        let Some((rt, term, int)) = &mut self.0 else {
            std::thread::sleep(period);
            return false;
        };
        rt.block_on(async {
            tokio::select! {
                _ = term.recv() => true,
                _ = int.recv() => true,
                () = tokio::time::sleep(period) => false,
            }
        })
    }
}

fn start(binary: &Path, args: &[OsString], healthy: &Path) -> std::io::Result<Child> {
    let mut command = Command::new(binary);
    command.args(args).env(TRIAL_ENV, healthy).stdin(Stdio::null());
    for var in simpul_base::systemd::NOTIFY_ENV {
        command.env_remove(var);
    }
    command.spawn()
}

fn is_healthy(healthy: &Path, version: &str) -> bool {
    std::fs::read_to_string(healthy).is_ok_and(|v| v.trim() == version)
}

/// SIGTERM, then SIGKILL if it does not stop in time: the child flushes its buffer first.
fn stop(child: &mut Child, watchdog: &mut WatchdogPinger) {
    let _ = kill_process(Pid::from_child(child), Signal::TERM);
    let until = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < until {
        watchdog.tick();
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Keeps the old binary, puts the new one at `exe` (one rename), records the commit.
fn commit(staged: &Staged, dir: &Path, exe: &Path) -> Result<(), UpdateError> {
    let prev = dir.join(PREV);
    std::fs::copy(exe, &prev).map_err(|e| UpdateError::io(&prev, e))?;
    self_update::self_replace::self_replace(&staged.binary).map_err(|e| UpdateError::io(exe, e))?;
    let _ = std::fs::remove_file(&staged.binary);
    State::Committed { version: staged.version.clone(), from: staged.from.clone(), reported: false }.save(dir)?;
    tracing::warn!(version = %staged.version, "the new release passed its trial and replaced the old binary");
    Ok(())
}

/// Replaces this process with `exe` and `args` (same PID); returns only on failure.
pub fn exec(exe: &Path, args: &[OsString]) -> std::io::Error {
    tracing::info!(exe = %exe.display(), "restarting");
    Command::new(exe).args(args).exec()
}

/// In a trial child: once `healthy` holds, writes this version to the file the supervisor
/// watches, and asks to be killed if the supervisor dies first.
pub fn child_setup() -> Option<std::path::PathBuf> {
    let path = std::env::var_os(TRIAL_ENV)?;
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        tracing::warn!(error = %e, "cannot tie this trial to its supervisor's life");
    }
    Some(path.into())
}
