//! How one series' values travel: as scaled decimal integers when that is exact,
//! otherwise as raw IEEE 754 bits.

/// The value-coding byte of a series whose values travel as raw f64 bits.
pub(super) const RAW: u8 = 0xff;

/// The most decimals a series may be scaled by.
pub(super) const MAX_DECIMALS: u8 = 9;

/// `10^d` for `d` in `0..=9`: every entry is exact in f64.
const POW10: [f64; MAX_DECIMALS as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// 2^63 as f64: scaled values must lie in `[-2^63, 2^63)` to fit an i64.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// One series' values, ready to be written.
#[derive(Debug, PartialEq)]
pub(super) enum SeriesValues {
    /// Every value `v` is exactly `ints[k] as f64 / 10^decimals`.
    Scaled { decimals: u8, ints: Vec<i64> },
    /// Values as their f64 bits.
    Raw(Vec<u64>),
}

impl SeriesValues {
    /// The coding byte written in the series table: the decimals, or [`RAW`].
    pub(super) fn coding(&self) -> u8 {
        match self {
            SeriesValues::Scaled { decimals, .. } => *decimals,
            SeriesValues::Raw(_) => RAW,
        }
    }
}

/// Chooses the smallest number of decimals at which every value round-trips bit-exactly,
/// or raw bits when none does (NaN, infinities, -0.0, f32 noise, magnitudes past i64).
pub(super) fn classify(values: &[f64]) -> SeriesValues {
    for decimals in 0..=MAX_DECIMALS {
        let ints: Option<Vec<i64>> = values.iter().map(|&v| scale(v, decimals)).collect();
        if let Some(ints) = ints {
            return SeriesValues::Scaled { decimals, ints };
        }
    }
    SeriesValues::Raw(values.iter().map(|v| v.to_bits()).collect())
}

/// `v * 10^decimals` as an integer, if decoding it gives back exactly `v`.
fn scale(v: f64, decimals: u8) -> Option<i64> {
    let scaled = (v * pow10(decimals)?).round();
    if !(-TWO_POW_63..TWO_POW_63).contains(&scaled) {
        return None; // NaN, infinite, or past i64
    }
    let int = scaled as i64;
    (unscale(int, decimals)?.to_bits() == v.to_bits()).then_some(int)
}

/// The value a scaled integer stands for: a division, so the result is the double
/// nearest to the decimal (`3 / 10` is 0.3; `3 * 0.1` is not).
pub(super) fn unscale(int: i64, decimals: u8) -> Option<f64> {
    Some(int as f64 / pow10(decimals)?)
}

fn pow10(decimals: u8) -> Option<f64> {
    POW10.get(usize::from(decimals)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimals_of(values: &[f64]) -> Option<u8> {
        match classify(values) {
            SeriesValues::Scaled { decimals, .. } => Some(decimals),
            SeriesValues::Raw(_) => None,
        }
    }

    #[test]
    fn the_fewest_decimals_that_round_trip_are_chosen() {
        assert_eq!(decimals_of(&[1.0, 2.0, -7.0]), Some(0));
        assert_eq!(decimals_of(&[123.4, 123.5, 0.1]), Some(1));
        assert_eq!(decimals_of(&[12.61, 12.6]), Some(2));
        assert_eq!(decimals_of(&[0.000_000_001]), Some(9));
        assert_eq!(decimals_of(&[]), Some(0));
    }

    #[test]
    fn values_no_decimal_scale_can_carry_travel_raw() {
        for v in [f64::NAN, f64::INFINITY, -0.0, f64::from(0.1f32), 1e300, 1e-12] {
            assert_eq!(decimals_of(&[1.0, v]), None, "{v:?} was scaled");
        }
    }

    #[test]
    fn scaled_values_decode_to_the_same_bits() {
        let values = [0.1, 0.2, 0.3, 1234.5, -0.7, 9.2e9];
        let SeriesValues::Scaled { decimals, ints } = classify(&values) else {
            panic!("expected a scaled series");
        };
        for (v, i) in values.iter().zip(ints) {
            assert_eq!(unscale(i, decimals).map(f64::to_bits), Some(v.to_bits()));
        }
    }
}
