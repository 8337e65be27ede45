//! A reading: one value of one metric of one sensor, with the time it was taken.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The Linux boot id (`/proc/sys/kernel/random/boot_id`): 16 bytes that name one boot.
///
/// Readings taken before the clock synchronised are placed in time by
/// (boot id, monotonic time) once the agent reports the clock offset for that boot.
/// In JSON it is the kernel's text form (`"8c5fd8a5-...")`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BootId(pub [u8; 16]);

impl Serialize for BootId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BootId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        BootId::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a boot id: {text:?}")))
    }
}

impl BootId {
    /// Parses the kernel's text form (`8-4-4-4-12` hex digits, dashes optional).
    pub fn parse(text: &str) -> Option<BootId> {
        let hex: Vec<u8> = text.trim().bytes().filter(|b| *b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(BootId(out))
    }
}

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_id_reads_and_prints_as_the_kernel_writes_it() {
        let text = "8c5fd8a5-2f0e-4c4b-9d3a-0123456789ab";
        let id = BootId::parse(&format!("{text}\n")).expect("parses");
        assert_eq!(id.to_string(), text);
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<BootId>(&json).expect("back"), id);
        assert!(serde_json::from_str::<BootId>("\"nope\"").is_err());
    }
}

/// When a reading was taken, as the box knew it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadingTime {
    /// Wall-clock time, milliseconds since the Unix epoch, as the box believed it.
    /// Before the clock synchronised this can be far in the past (a Pi has no RTC).
    pub wall_ms: i64,
    /// Whether the system clock was synchronised (NTP) when the reading was taken.
    pub synced: bool,
    /// The boot during which the reading was taken.
    pub boot_id: BootId,
    /// Milliseconds since that boot (CLOCK_BOOTTIME), which never jumps.
    pub mono_ms: u64,
}

/// One reading as it travels: a per-device sequence number, what was measured, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Per-device monotonic sequence number, given when the reading entered the buffer.
    pub seq: u64,
    /// The sensor's id in the agent's config (`[sensors.<id>]`).
    pub sensor: String,
    /// What was measured (`level`, `rain`, `distance`, ...).
    pub metric: String,
    /// Unit of `value` (`cm`, `mm`, `mm/h`, ...); may be empty.
    pub unit: String,
    /// The value, already scaled and rounded to the sensor's resolution.
    pub value: f64,
    /// When it was taken.
    pub time: ReadingTime,
}
