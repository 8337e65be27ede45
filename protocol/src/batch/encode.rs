//! Writing a batch body. All arithmetic wraps, so any batch encodes losslessly; the
//! decoder undoes it with the same wrapping arithmetic.

use std::collections::HashMap;

use super::values::{SeriesValues, classify};
use super::varint::{put_i64, put_str, put_u64};
use super::{ReadingBatch, columns::MonoPredictor};
use crate::reading::{BootId, Reading};

/// zstd levels tried on a body; the smallest output wins. On batch-sized bodies a lower
/// level sometimes beats 19, and both take well under a millisecond.
const ZSTD_LEVELS: [i32; 2] = [19, 6];

/// The body, uncompressed. Layout: docs/design/wire-format.md.
pub(super) fn body(batch: &ReadingBatch) -> Vec<u8> {
    let readings = &batch.readings;
    let table = Tables::of(readings);
    let mut out = Vec::with_capacity(64 + readings.len() * 8);

    put_u64(&mut out, table.series.len() as u64);
    for (&(sensor, metric, unit), values) in table.series.iter().zip(&table.values) {
        put_str(&mut out, sensor);
        put_str(&mut out, metric);
        put_str(&mut out, unit);
        out.push(values.coding());
    }
    put_u64(&mut out, table.boots.len() as u64);
    for boot in &table.boots {
        out.extend_from_slice(&boot.0);
    }
    put_u64(&mut out, batch.dropped.len() as u64);
    for range in &batch.dropped {
        put_u64(&mut out, range.first);
        put_u64(&mut out, range.last.wrapping_sub(range.first));
    }

    put_u64(&mut out, readings.len() as u64);
    seq_column(&mut out, readings);
    if table.series.len() > 1 {
        for &s in &table.series_of {
            put_u64(&mut out, s as u64);
        }
    }
    for (r, &boot) in readings.iter().zip(&table.boot_of) {
        put_u64(&mut out, ((boot as u64) << 1) | u64::from(r.time.synced));
    }
    mono_column(&mut out, readings, &table.members);
    offset_column(&mut out, readings);
    for values in &table.values {
        value_column(&mut out, values);
    }
    out
}

/// The smallest zstd frame of `body` over [`ZSTD_LEVELS`], if zstd works at all.
pub(super) fn smallest_zstd(body: &[u8]) -> Option<Vec<u8>> {
    ZSTD_LEVELS.iter().filter_map(|&level| zstd::bulk::compress(body, level).ok()).min_by_key(Vec::len)
}

/// First seq, then `seq - previous - 1` zigzagged: contiguous seqs are zero bytes.
fn seq_column(out: &mut Vec<u8>, readings: &[Reading]) {
    let Some(first) = readings.first() else {
        return;
    };
    put_u64(out, first.seq);
    for pair in readings.windows(2) {
        let gap = pair[1].seq.wrapping_sub(pair[0].seq).wrapping_sub(1);
        put_i64(out, gap as i64);
    }
}

/// Monotonic time, series by series: delta-of-delta within a series.
fn mono_column(out: &mut Vec<u8>, readings: &[Reading], members: &[Vec<usize>]) {
    let mut predictor = MonoPredictor::default();
    for positions in members {
        predictor.start_series();
        for &p in positions {
            put_i64(out, predictor.residual(readings[p].time.mono_ms));
        }
    }
}

/// Wall time as the change of the clock offset (`wall - mono`) from the reading before:
/// zero while the clock neither steps nor slews, whatever the sampling rhythm.
fn offset_column(out: &mut Vec<u8>, readings: &[Reading]) {
    let mut previous = 0i64;
    for r in readings {
        let offset = r.time.wall_ms.wrapping_sub(r.time.mono_ms as i64);
        put_i64(out, offset.wrapping_sub(previous));
        previous = offset;
    }
}

/// One series' values: deltas of scaled integers, or f64 bits XOR the previous value's.
fn value_column(out: &mut Vec<u8>, values: &SeriesValues) {
    match values {
        SeriesValues::Scaled { ints, .. } => {
            let mut previous = 0i64;
            for &i in ints {
                put_i64(out, i.wrapping_sub(previous));
                previous = i;
            }
        }
        SeriesValues::Raw(bits) => {
            let mut previous = 0u64;
            for &b in bits {
                out.extend_from_slice(&(b ^ previous).to_le_bytes());
                previous = b;
            }
        }
    }
}

/// The series and boot tables of a batch, in order of first appearance.
struct Tables<'a> {
    series: Vec<(&'a str, &'a str, &'a str)>,
    values: Vec<SeriesValues>,
    /// Positions of each series' readings, ascending.
    members: Vec<Vec<usize>>,
    series_of: Vec<usize>,
    boots: Vec<BootId>,
    boot_of: Vec<usize>,
}

impl<'a> Tables<'a> {
    fn of(readings: &'a [Reading]) -> Self {
        let mut series = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut series_index = HashMap::new();
        let mut boots = Vec::new();
        let mut boot_index = HashMap::new();
        let mut series_of = Vec::with_capacity(readings.len());
        let mut boot_of = Vec::with_capacity(readings.len());
        for (p, r) in readings.iter().enumerate() {
            let key = (r.sensor.as_str(), r.metric.as_str(), r.unit.as_str());
            let s = *series_index.entry(key).or_insert_with(|| {
                series.push(key);
                members.push(Vec::new());
                series.len() - 1
            });
            if let Some(m) = members.get_mut(s) {
                m.push(p);
            }
            series_of.push(s);
            let b = *boot_index.entry(r.time.boot_id).or_insert_with(|| {
                boots.push(r.time.boot_id);
                boots.len() - 1
            });
            boot_of.push(b);
        }
        let values =
            members.iter().map(|m| classify(&m.iter().map(|&p| readings[p].value).collect::<Vec<_>>())).collect();
        Tables { series, values, members, series_of, boots, boot_of }
    }
}
