//! Telling systemd how the daemon is doing (`Type=notify`, docs/design/packaging.md):
//! `READY=1` once it serves, `STOPPING=1` when a graceful stop begins, and a `WATCHDOG=1`
//! ping at half the unit's `WatchdogSec` for as long as the daemon's runtime turns (a
//! runtime that hangs stops the pings, and systemd restarts the daemon). Without
//! `NOTIFY_SOCKET` (not under systemd) each is a no-op.

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// The daemon serves; `status` is what `systemctl status` shows beside it.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A graceful stop has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings systemd's watchdog from the current runtime until `shutdown`, when the unit
/// asks for it (`WATCHDOG_USEC` for this process).
pub fn spawn_watchdog(shutdown: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else { return };
    tracing::info!(period = ?period, "systemd watchdog: pinging at half its period");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
                () = shutdown.cancelled() => return,
            }
        }
    });
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot tell systemd the daemon's state");
    }
}
