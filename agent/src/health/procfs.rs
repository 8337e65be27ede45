//! Pure parsers for the kernel's text files: `/proc/stat`, `/proc/meminfo`,
//! `/proc/loadavg`, a thermal zone's `temp` and the Pi firmware's `get_throttled`.
//!
//! Each returns `None` for text it does not understand: a value the box cannot give is
//! absent, never zero. None of them panics, whatever the bytes.

/// CPU time from the `cpu ` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks not idle (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    /// All ticks (busy plus idle and iowait).
    pub total: u64,
}

/// The all-CPUs line of `/proc/stat`. Guest time is already inside user and nice, so only
/// the first eight columns count.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let cols: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if cols.len() < 4 {
        return None;
    }
    let total = cols.iter().try_fold(0u64, |a, c| a.checked_add(*c))?;
    let idle = cols.get(3)?.checked_add(cols.get(4).copied().unwrap_or(0))?;
    Some(CpuTimes { busy: total.checked_sub(idle)?, total })
}

/// CPU busy between two samples, percent of all cores; `None` when no time passed or
/// the counters went backwards.
pub fn cpu_percent(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|t| *t > 0)?;
    let busy = after.busy.checked_sub(before.busy)?;
    #[allow(clippy::cast_precision_loss)] // tick counts between heartbeats are small
    let pct = 100.0 * busy as f64 / total as f64;
    Some(pct.clamp(0.0, 100.0))
}

/// Memory from `/proc/meminfo`, in bytes; each field is absent when its line is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total_bytes: Option<u64>,
    /// `MemAvailable` (kernels since 3.14).
    pub available_bytes: Option<u64>,
}

impl Memory {
    /// In use: total minus available.
    pub fn used_bytes(&self) -> Option<u64> {
        self.total_bytes?.checked_sub(self.available_bytes?)
    }
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo` (`MemTotal:  948304 kB`).
pub fn parse_meminfo(text: &str) -> Memory {
    let field = |name: &str| {
        let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
        let mut words = line.split(':').nth(1)?.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            Some(_) => None,
        }
    };
    Memory { total_bytes: field("MemTotal"), available_bytes: field("MemAvailable") }
}

/// The 1-minute load average, the first field of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    let v: f64 = text.split_whitespace().next()?.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// A thermal zone's `temp`: millidegrees Celsius (`48312`) -> degrees (`48.312`).
pub fn parse_millidegrees(text: &str) -> Option<f64> {
    let milli: i32 = text.trim().parse().ok()?;
    Some(f64::from(milli) / 1000.0)
}

/// The firmware's throttle word. The kernel's `get_throttled` file prints it in hex
/// without a prefix (`50005`); `vcgencmd get_throttled` prints `throttled=0x50005`.
/// Both, and a bare `0x50005`, are read as hex.
pub fn parse_throttled(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_prefix("throttled=").unwrap_or(t);
    let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_1: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\n";
    const STAT_2: &str = "cpu  160 0 70 880 70 0 0 0 0 0\ncpu0 80 0 35 440 35 0 0 0 0 0\nintr 1 2 3\n";

    #[test]
    fn cpu_busy_percent_is_the_share_of_non_idle_ticks_between_two_samples() {
        let a = parse_stat(STAT_1).expect("first sample");
        let b = parse_stat(STAT_2).expect("second sample");
        assert_eq!(a, CpuTimes { busy: 150, total: 1000 });
        // 80 busy ticks of 180: iowait counts as idle.
        let pct = cpu_percent(a, b).expect("time passed");
        assert!((pct - 80.0 / 180.0 * 100.0).abs() < 1e-9, "{pct}");
    }

    #[test]
    fn cpu_percent_is_none_when_no_time_passed_or_counters_went_backwards() {
        let a = parse_stat(STAT_1).expect("sample");
        let b = parse_stat(STAT_2).expect("sample");
        assert_eq!(cpu_percent(a, a), None);
        assert_eq!(cpu_percent(b, a), None);
    }

    #[test]
    fn garbage_proc_stat_is_none_not_zero() {
        for bad in ["", "intr 1 2\n", "cpu  a b c d\n", "cpu  1 2\n", "cpu  99999999999999999999 1 1 1\n", "\0\u{fffd}"]
        {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
        let overflow = format!("cpu  {m} {m} 0 0\n", m = u64::MAX);
        assert_eq!(parse_stat(&overflow), None);
    }

    #[test]
    fn meminfo_gives_total_and_used_in_bytes() {
        let m = parse_meminfo("MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     400 kB\n");
        assert_eq!(m.total_bytes, Some(1_024_000));
        assert_eq!(m.used_bytes(), Some(600 * 1024));
    }

    #[test]
    fn meminfo_without_mem_available_has_a_total_but_no_used() {
        let m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\n");
        assert_eq!((m.total_bytes, m.available_bytes, m.used_bytes()), (Some(1_024_000), None, None));
    }

    #[test]
    fn garbage_meminfo_is_none_not_zero() {
        for bad in ["", "MemTotal: lots kB\n", "MemTotal 1000 kB\n", "MemTotal: 1000 MB\n", "\u{fffd}:\n"] {
            assert_eq!(parse_meminfo(bad), Memory::default(), "{bad:?}");
        }
    }

    #[test]
    fn loadavg_gives_the_one_minute_average() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/389 12345\n"), Some(0.52));
        for bad in ["", "x 1 2", "NaN 1 2", "-1 0 0", "inf"] {
            assert_eq!(parse_loadavg(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn thermal_millidegrees_become_degrees() {
        assert_eq!(parse_millidegrees("48312\n"), Some(48.312));
        assert_eq!(parse_millidegrees("-5000"), Some(-5.0));
        for bad in ["", "hot", "48.3", "99999999999999"] {
            assert_eq!(parse_millidegrees(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_throttle_word_is_read_from_vcgencmd_style_prefixed_and_kernel_style_bare_hex() {
        assert_eq!(parse_throttled("throttled=0x50005\n"), Some(0x50005));
        assert_eq!(parse_throttled("0x50005"), Some(0x50005));
        // The kernel's sysfs file prints `%x`: bare digits are hex, not decimal.
        assert_eq!(parse_throttled("50005\n"), Some(0x50005));
        assert_eq!(parse_throttled("0\n"), Some(0));
    }

    #[test]
    fn a_garbage_throttle_word_is_none_not_zero() {
        for bad in ["", "throttled=", "0x", "zz", "-1", "+5", "0x1ffffffff", "throttled=0xg"] {
            assert_eq!(parse_throttled(bad), None, "{bad:?}");
        }
    }
}
