//! Time behind a trait, so tests can steer it.
//!
//! A Pi has no real-time clock: after a power cut it may believe it is 1970 until NTP
//! answers. So every reading carries, beside its wall time, whether the clock was
//! synchronised, and (boot id, monotonic time since boot) which never jump. The fleet
//! uses the offset the agent reports after the sync to correct earlier readings.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use simpul_protocol::{BootId, ReadingTime};

use crate::config::{ClockConfig, ClockSync};

/// The source of [`ReadingTime`]s.
pub trait Clock: Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> ReadingTime;
}

/// Wall time earlier than this (2025-01-01) is never a synchronised clock.
const PLAUSIBLE_AFTER_MS: i64 = 1_735_689_600_000;

/// The machine's clocks: `SystemTime`, `CLOCK_BOOTTIME`, the kernel's boot id, and the
/// kernel's (or a marker file's) word on whether NTP has synchronised the clock.
#[derive(Debug)]
pub struct SystemClock {
    boot_id: BootId,
    sync: ClockSync,
    sync_marker: Option<PathBuf>,
}

impl SystemClock {
    /// Reads the boot id once; a box without one (not Linux, or a path that does not
    /// exist) gets a random id for this process, which is what a boot id is for.
    pub fn new(config: &ClockConfig) -> SystemClock {
        let boot_id = read_boot_id(&config.boot_id_path).unwrap_or_else(|| {
            tracing::warn!(path = %config.boot_id_path.display(), "no boot id; using a random one");
            BootId(rand::random())
        });
        SystemClock { boot_id, sync: config.sync, sync_marker: config.sync_marker.clone() }
    }

    /// The boot id every reading of this process carries.
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    fn synced(&self, wall_ms: i64) -> bool {
        if wall_ms < PLAUSIBLE_AFTER_MS {
            return false;
        }
        if let Some(marker) = &self.sync_marker {
            return marker.exists();
        }
        match self.sync {
            ClockSync::Kernel => kernel_says_synced(),
            ClockSync::Always => true,
            ClockSync::Never => false,
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> ReadingTime {
        let wall_ms = wall_ms(SystemTime::now());
        ReadingTime { wall_ms, synced: self.synced(wall_ms), boot_id: self.boot_id, mono_ms: boottime_ms() }
    }
}

fn read_boot_id(path: &Path) -> Option<BootId> {
    BootId::parse(&std::fs::read_to_string(path).ok()?)
}

/// Milliseconds since the epoch; negative before it (a clock can be that wrong).
pub fn wall_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `CLOCK_BOOTTIME` in milliseconds: time since boot, counting suspend, never jumping.
#[allow(unsafe_code)]
fn boottime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1000 + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

/// Whether the kernel's NTP state says the clock is synchronised (`STA_UNSYNC` clear),
/// as chrony, ntpd and systemd-timesyncd leave it.
#[allow(unsafe_code)]
fn kernel_says_synced() -> bool {
    // SAFETY: an all-zero timex is valid input; with modes = 0 ntp_adjtime only reads state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed timex.
    let state = unsafe { libc::ntp_adjtime(&mut tx) };
    state != libc::TIME_ERROR && (tx.status & libc::STA_UNSYNC) == 0
}

/// A clock tests steer by hand: wall time, sync flag and monotonic time are set directly.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ReadingTime>,
}

impl ManualClock {
    /// A clock at `wall_ms`, synced or not, at monotonic zero of a fixed boot.
    pub fn new(wall_ms: i64, synced: bool) -> ManualClock {
        let t = ReadingTime { wall_ms, synced, boot_id: BootId([7; 16]), mono_ms: 0 };
        ManualClock { state: Mutex::new(t) }
    }

    /// Moves wall and monotonic time forward together.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let mut t = self.state.lock().unwrap_or_else(|p| p.into_inner());
        t.mono_ms = t.mono_ms.saturating_add(ms);
        t.wall_ms = t.wall_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
    }

    /// Sets the wall clock (as NTP does when it answers) and the synced flag.
    pub fn set_wall(&self, wall_ms: i64, synced: bool) {
        let mut t = self.state.lock().unwrap_or_else(|p| p.into_inner());
        t.wall_ms = wall_ms;
        t.synced = synced;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> ReadingTime {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_in_1970_is_never_called_synced() {
        let c = SystemClock { boot_id: BootId::default(), sync: ClockSync::Always, sync_marker: None };
        assert!(!c.synced(0));
        assert!(c.synced(PLAUSIBLE_AFTER_MS + 1));
    }

    #[test]
    fn monotonic_time_does_not_go_backwards() {
        let a = boottime_ms();
        let b = boottime_ms();
        assert!(b >= a && a > 0);
    }
}
