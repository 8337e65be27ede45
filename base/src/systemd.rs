//! Telling systemd how the daemon is doing (`Type=notify`, docs/design/packaging.md):
//! `READY=1` once it serves, `STOPPING=1` when a graceful stop begins, and a `WATCHDOG=1`
//! ping at half the unit's `WatchdogSec` for as long as the daemon's runtime turns (a
//! runtime that hangs stops the pings, and systemd restarts the daemon). Without
//! `NOTIFY_SOCKET` (not under systemd) each is a no-op.

use sd_notify::NotifyState;

/// The daemon serves; `status` is what `systemctl status` shows beside it.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A graceful stop has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings systemd's watchdog from the current runtime for as long as the runtime lives,
/// when the unit asks for it (`WATCHDOG_USEC` for this process). A graceful stop keeps
/// pinging: the agent stopping for an update is still the running unit, and its flush
/// must not be cut short by the watchdog.
pub fn spawn_watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else { return };
    tracing::info!(period = ?period, "systemd watchdog: pinging at half its period");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}

/// Pings the watchdog from a loop that runs without the daemon's runtime (the agent's
/// update trial, where the old binary supervises the new one as the unit's main process):
/// [`WatchdogPinger::tick`] on each turn of the loop pings at most every half period.
#[derive(Debug)]
pub struct WatchdogPinger {
    half_period: Option<std::time::Duration>,
    last: Option<std::time::Instant>,
}

impl WatchdogPinger {
    /// For this process's unit (`WATCHDOG_USEC`); a no-op without a watchdog.
    pub fn from_env() -> WatchdogPinger {
        WatchdogPinger { half_period: sd_notify::watchdog_enabled().map(|p| p / 2), last: None }
    }

    /// Pings when half the period passed since the last ping (or at the first call).
    pub fn tick(&mut self) {
        let Some(half) = self.half_period else { return };
        let now = std::time::Instant::now();
        if self.last.is_none_or(|last| now.duration_since(last) >= half) {
            send(&[NotifyState::Watchdog]);
            self.last = Some(now);
        }
    }
}

/// The variables through which systemd speaks to the unit's main process. A child the
/// daemon starts (an update trial's new binary) must not inherit them: with
/// `NotifyAccess=main` its messages would only be refused, noisily.
pub const NOTIFY_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot tell systemd the daemon's state");
    }
}
