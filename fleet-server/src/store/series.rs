//! Per-minute aggregates of a series, backend-neutral: gathered during an ingest
//! transaction ([`Minutes`]) and folded from the rows a chart query returns
//! ([`fold_series`]). Each backend only writes and reads the rows.

use std::collections::HashMap;

use super::{MinutePoint, SeriesPoints, StoreError};

/// Count, min, max and sum of one series' values in one minute.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MinuteAgg {
    pub n: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

/// The `series_minutes` rows a transaction adds to, gathered in memory so each
/// (series, minute) is upserted once per commit, not once per reading (the hot path).
#[derive(Default)]
pub(crate) struct Minutes(HashMap<(i64, i64), MinuteAgg>);

/// The minute `time_ms` falls in (minutes since the epoch).
pub(crate) fn minute_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(60_000)
}

impl Minutes {
    /// Counts a deliverable reading of `series` at `time_ms`. NaN (stored as NULL) is left out.
    pub fn add(&mut self, series: i64, time_ms: i64, value: f64) {
        if value.is_nan() {
            return;
        }
        self.0
            .entry((series, minute_of(time_ms)))
            .and_modify(|a| {
                a.n += 1;
                a.min = a.min.min(value);
                a.max = a.max.max(value);
                a.sum += value;
            })
            .or_insert(MinuteAgg { n: 1, min: value, max: value, sum: value });
    }

    /// Every ((series, minute), aggregate) gathered, in key order: neighbouring rows share
    /// B-tree pages.
    pub fn into_sorted(self) -> Vec<((i64, i64), MinuteAgg)> {
        let mut rows: Vec<_> = self.0.into_iter().collect();
        rows.sort_unstable_by_key(|(k, _)| *k);
        rows
    }
}

/// One row of a chart query: a series (id, sensor, metric, unit) and, when it has one in
/// the window, a minute with its count, min, max and sum.
pub(crate) struct SeriesMinuteRow {
    pub id: i64,
    pub sensor: String,
    pub metric: String,
    pub unit: String,
    pub minute: Option<(i64, i64, f64, f64, f64)>,
}

/// Folds rows ordered by series then minute into one [`SeriesPoints`] per series.
pub(crate) fn fold_series(
    rows: impl IntoIterator<Item = Result<SeriesMinuteRow, StoreError>>,
) -> Result<Vec<SeriesPoints>, StoreError> {
    let mut out: Vec<SeriesPoints> = Vec::new();
    let mut last_id = None;
    for row in rows {
        let SeriesMinuteRow { id, sensor, metric, unit, minute } = row?;
        if last_id != Some(id) {
            out.push(SeriesPoints { sensor, metric, unit, points: Vec::new() });
            last_id = Some(id);
        }
        let Some((minute, n, min, max, sum)) = minute else { continue };
        let n = super::sqlite::to_u64(n)?;
        let point = MinutePoint { minute_ms: minute * 60_000, n, min, max, avg: sum / n.max(1) as f64 };
        if let Some(s) = out.last_mut() {
            s.points.push(point);
        }
    }
    Ok(out)
}
