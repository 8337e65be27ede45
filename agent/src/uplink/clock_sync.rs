//! Telling the fleet how wrong the clock was, once it syncs.
//!
//! A Pi without a real-time clock may take readings before NTP answers (its wall clock
//! may even say 1970). Such readings carry `synced: false` and (boot id, monotonic ms).
//! When the clock turns synced, the agent publishes one
//! [`Event::ClockSynced`] for the boot: `offset_ms` is what the fleet adds to the wall
//! time of that boot's unsynced readings.
//!
//! # The estimate
//!
//! While the clock runs free, `wall - mono` stays constant (up to the crystal's drift):
//! it is "the epoch as the box believes it". The watcher remembers it at its last
//! unsynced look (`before`) and takes it again at the first synced look (`after`):
//! `offset_ms = after - before`. A reading taken unsynced at `(wall, mono)` then had the
//! true time `wall + offset_ms`. The error is the drift between the two looks (at most one
//! check period apart while the agent runs), plus any step the box's clock made while
//! unsynced, which no estimate can see.
//!
//! Once per boot: after the first sync the watcher is quiet until the boot id changes.

use std::sync::Arc;
use std::time::Duration;

use simpul_protocol::control::Event;
use simpul_protocol::{BootId, ReadingTime};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

/// Watches one clock's sync flag; pure, fed by [`ClockWatch::observe`].
#[derive(Debug, Default)]
pub struct ClockWatch {
    boot: Option<BootId>,
    /// `wall - mono` at the last unsynced look of this boot.
    unsynced_epoch: Option<i64>,
    reported: bool,
}

impl ClockWatch {
    /// Looks at the time `t`; returns the event to publish when the clock has just turned
    /// synced after being seen unsynced in this boot (once per boot).
    pub fn observe(&mut self, t: ReadingTime) -> Option<Event> {
        if self.boot != Some(t.boot_id) {
            *self = ClockWatch { boot: Some(t.boot_id), ..ClockWatch::default() };
        }
        if self.reported {
            return None;
        }
        let epoch = t.wall_ms.saturating_sub(i64::try_from(t.mono_ms).unwrap_or(i64::MAX));
        if !t.synced {
            self.unsynced_epoch = Some(epoch);
            return None;
        }
        let before = self.unsynced_epoch.take()?;
        self.reported = true;
        Some(Event::ClockSynced { boot_id: t.boot_id, offset_ms: epoch.saturating_sub(before), at_mono_ms: t.mono_ms })
    }
}

/// Looks at `clock` now and then every `period` until `shutdown` or until the receiver
/// is dropped; events come out of the returned channel. The first look happens before
/// this returns, so a clock that syncs right after start is still seen unsynced first.
pub(super) fn spawn(
    clock: Arc<dyn Clock>,
    period: Duration,
    shutdown: CancellationToken,
) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watch = ClockWatch::default();
    // The first look cannot report (nothing was seen unsynced yet).
    let _ = watch.observe(clock.now());
    tokio::spawn(async move {
        let period = period.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tx.closed() => break,
                _ = tick.tick() => {
                    if let Some(event) = watch.observe(clock.now()) {
                        tracing::info!(?event, "clock synchronised");
                        if tx.send(event).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const TRUE_NOW: i64 = 1_800_000_000_000;

    #[test]
    fn the_offset_moves_an_unsynced_reading_to_its_true_time() {
        let clock = ManualClock::new(1_000, false);
        let mut w = ClockWatch::default();
        assert_eq!(w.observe(clock.now()), None);
        clock.advance(Duration::from_secs(5));
        let unsynced_reading = clock.now();
        assert_eq!(w.observe(unsynced_reading), None);
        clock.advance(Duration::from_secs(1));
        // NTP answers: the true time is TRUE_NOW at this instant (mono 6000).
        clock.set_wall(TRUE_NOW, true);
        let Some(Event::ClockSynced { offset_ms, at_mono_ms, boot_id }) = w.observe(clock.now()) else {
            panic!("no event")
        };
        assert_eq!((at_mono_ms, boot_id), (6_000, clock.now().boot_id));
        // The reading was taken 1 s before the sync, so its true time is TRUE_NOW - 1 s.
        assert_eq!(unsynced_reading.wall_ms + offset_ms, TRUE_NOW - 1_000);
    }

    #[test]
    fn it_reports_once_per_boot_and_never_for_a_clock_synced_from_the_start() {
        let synced = ManualClock::new(TRUE_NOW, true);
        let mut w = ClockWatch::default();
        assert_eq!(w.observe(synced.now()), None);
        assert_eq!(w.observe(synced.now()), None);

        let clock = ManualClock::new(0, false);
        let mut w = ClockWatch::default();
        w.observe(clock.now());
        clock.set_wall(TRUE_NOW, true);
        assert!(w.observe(clock.now()).is_some());
        clock.set_wall(5, false);
        w.observe(clock.now());
        clock.set_wall(TRUE_NOW, true);
        assert_eq!(w.observe(clock.now()), None, "a second sync in the same boot is not reported");
    }
}
