//! A sample: a reading before the buffer has given it a sequence number.

use std::sync::Arc;

use simpul_protocol::{Reading, ReadingTime};

/// What a sensor driver produces. Strings are shared (`Arc<str>`): a driver makes them
/// once from its config and every sample clones a pointer, not the text.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sensor's id in the config (`[sensors.<id>]`).
    pub sensor: Arc<str>,
    /// What was measured.
    pub metric: Arc<str>,
    /// Unit of `value`; may be empty.
    pub unit: Arc<str>,
    /// Scaled and rounded to the sensor's configured decimals.
    pub value: f64,
    /// When it was taken.
    pub time: ReadingTime,
}

impl Sample {
    /// The reading this sample becomes once the buffer gives it `seq`.
    pub fn into_reading(self, seq: u64) -> Reading {
        Reading {
            seq,
            sensor: self.sensor.to_string(),
            metric: self.metric.to_string(),
            unit: self.unit.to_string(),
            value: self.value,
            time: self.time,
        }
    }
}

/// Rounds `v` to `decimals` places the way the wire format expects: the result is the
/// double nearest to a decimal with that many places, so it encodes as a scaled integer.
pub fn round_to_decimals(v: f64, decimals: u8) -> f64 {
    let p = 10f64.powi(i32::from(decimals.min(9)));
    (v * p).round() / p
}
