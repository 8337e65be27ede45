//! A sensor's [`SensorSnapshot`] as the heartbeat reports it: a state, the age of its
//! last reading, its last values and its error counts by kind.

use std::collections::BTreeMap;

use simpul_protocol::ReadingTime;
use simpul_protocol::control::{SensorHealth, SensorState};

use crate::sensor::SensorSnapshot;

/// Good frames and errors of one sensor at the previous heartbeat, to tell "reading"
/// from "failing" since then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub frames_ok: u64,
    pub errors: u64,
}

impl From<&SensorSnapshot> for Progress {
    fn from(s: &SensorSnapshot) -> Self {
        let errors = [s.garbage, s.crc_errors, s.timeouts, s.io_errors, s.exceptions]
            .iter()
            .fold(0u64, |a, n| a.saturating_add(*n));
        Progress { frames_ok: s.frames_ok, errors }
    }
}

/// The error counts by kind, kinds with none left out.
pub fn errors_by_kind(s: &SensorSnapshot) -> BTreeMap<String, u64> {
    [
        ("garbage", s.garbage),
        ("crc", s.crc_errors),
        ("timeout", s.timeouts),
        ("io", s.io_errors),
        ("exception", s.exceptions),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_owned(), n))
    .collect()
}

/// Disconnected when its port is closed; failing when, since `before` (or ever, on the
/// first heartbeat), it counted errors and no good frame; otherwise ok.
pub fn state(s: &SensorSnapshot, before: Option<Progress>) -> SensorState {
    if !s.connected {
        return SensorState::Disconnected;
    }
    let now = Progress::from(s);
    let then = before.unwrap_or_default();
    let got_frames = now.frames_ok > then.frames_ok;
    let got_errors = now.errors > then.errors;
    if got_errors && !got_frames { SensorState::Failing } else { SensorState::Ok }
}

/// Seconds from `seen` to `now`: by the monotonic clock within one boot, else by wall
/// time; `None` when the clocks say it is in the future.
pub fn age_s(seen: ReadingTime, now: ReadingTime) -> Option<u64> {
    if seen.boot_id == now.boot_id {
        return now.mono_ms.checked_sub(seen.mono_ms).map(|ms| ms / 1000);
    }
    let ms = now.wall_ms.checked_sub(seen.wall_ms)?;
    u64::try_from(ms).ok().map(|ms| ms / 1000)
}

/// The heartbeat's view of one sensor.
pub fn health(s: &SensorSnapshot, before: Option<Progress>, now: ReadingTime) -> SensorHealth {
    SensorHealth {
        state: state(s, before),
        last_reading_age_s: s.last_seen.and_then(|seen| age_s(seen, now)),
        last_values: s.last_values.clone(),
        errors: errors_by_kind(s),
        error: s.last_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use simpul_protocol::BootId;

    use super::*;
    use crate::sensor::SensorStats;

    fn time(boot: u8, wall_ms: i64, mono_ms: u64) -> ReadingTime {
        ReadingTime { wall_ms, synced: true, boot_id: BootId([boot; 16]), mono_ms }
    }

    #[test]
    fn a_sensor_with_a_closed_port_is_disconnected() {
        let s = SensorStats::new("ascii").snapshot();
        assert_eq!(state(&s, None), SensorState::Disconnected);
    }

    #[test]
    fn a_connected_sensor_with_only_errors_since_the_last_heartbeat_is_failing() {
        let stats = SensorStats::new("modbus");
        stats.opened(true);
        stats.frame_ok();
        let before = Progress::from(&stats.snapshot());
        assert_eq!(state(&stats.snapshot(), None), SensorState::Ok);
        stats.trouble(crate::sensor::Trouble::Timeout, "no reply");
        assert_eq!(state(&stats.snapshot(), Some(before)), SensorState::Failing);
        stats.frame_ok();
        assert_eq!(state(&stats.snapshot(), Some(before)), SensorState::Ok, "a good frame since: it reads");
    }

    #[test]
    fn error_kinds_without_errors_are_left_out() {
        let stats = SensorStats::new("modbus");
        stats.trouble(crate::sensor::Trouble::Crc, "bad crc");
        stats.trouble(crate::sensor::Trouble::Crc, "bad crc");
        let errors = errors_by_kind(&stats.snapshot());
        assert_eq!(errors, BTreeMap::from([("crc".to_owned(), 2)]));
    }

    #[test]
    fn reading_age_uses_the_monotonic_clock_within_a_boot_and_wall_time_across_boots() {
        assert_eq!(age_s(time(1, 0, 1_000), time(1, 999_999, 13_500)), Some(12));
        assert_eq!(age_s(time(1, 10_000, 0), time(2, 70_000, 5)), Some(60));
        assert_eq!(age_s(time(1, 70_000, 0), time(2, 10_000, 5)), None, "in the future: unknown");
    }
}
