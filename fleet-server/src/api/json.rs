//! A reading as JSON, shared by the cursor API and the webhook.

use serde::Serialize;

use crate::store::StoredReading;

/// One reading on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadingJson<'a> {
    /// The delivery cursor of this reading (opaque: pass it back as `after`).
    pub cursor: String,
    pub device: &'a str,
    pub seq: u64,
    pub sensor: &'a str,
    pub metric: &'a str,
    pub unit: &'a str,
    /// The value; `null` if the sensor gave NaN.
    pub value: Option<f64>,
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    pub time_ms: i64,
    pub synced: bool,
    pub time_corrected: bool,
    /// `"{device}:{seq}"`: the same for every delivery of this reading.
    pub idempotency_key: String,
}

impl<'a> From<&'a StoredReading> for ReadingJson<'a> {
    fn from(r: &'a StoredReading) -> Self {
        ReadingJson {
            cursor: r.cursor.to_string(),
            device: &r.device,
            seq: r.seq,
            sensor: &r.sensor,
            metric: &r.metric,
            unit: &r.unit,
            value: r.value.is_finite().then_some(r.value),
            time: rfc3339_ms(r.time_ms),
            time_ms: r.time_ms,
            synced: r.synced,
            time_corrected: r.time_corrected,
            idempotency_key: idempotency_key(&r.device, r.seq),
        }
    }
}

/// The idempotency key of a reading.
pub fn idempotency_key(device: &str, seq: u64) -> String {
    format!("{device}:{seq}")
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC (`2026-11-23T03:05:18.123Z`); any
/// i64 formats, years before 1 or after 9999 included (as signed or wider years).
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_230_318_123), "2026-11-21T03:05:18.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        let _ = rfc3339_ms(i64::MIN);
        let _ = rfc3339_ms(i64::MAX);
    }
}
