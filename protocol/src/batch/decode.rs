//! Reading a batch body: a parser of hostile input. Counts are checked against the bytes
//! left and the format's limits before anything is allocated from them.

use super::columns::MonoPredictor;
use super::values::{MAX_DECIMALS, RAW, unscale};
use super::varint::Reader;
use super::{
    DecodeError, MAX_BOOTS, MAX_DECODED_TEXT, MAX_DROPPED, MAX_READINGS, MAX_SERIES, MAX_TEXT_LEN, ReadingBatch,
    SeqRange,
};
use crate::reading::{BootId, Reading, ReadingTime};

/// The fewest body bytes a reading takes: seq, flags, mono, offset and value, one each.
const MIN_READING_BYTES: usize = 5;

/// One entry of the series table.
struct Series {
    sensor: String,
    metric: String,
    unit: String,
    coding: u8,
}

/// Decodes an uncompressed body. Layout: docs/design/wire-format.md.
pub(super) fn body(bytes: &[u8]) -> Result<ReadingBatch, DecodeError> {
    let mut r = Reader::new(bytes);
    let series = series_table(&mut r)?;
    let boots = boot_table(&mut r)?;
    let dropped = dropped_ranges(&mut r)?;

    let n = r.count(MIN_READING_BYTES, MAX_READINGS, "readings")?;
    let seqs = seq_column(&mut r, n)?;
    let series_of = series_column(&mut r, n, series.len())?;
    let text: usize = series_of.iter().filter_map(|&s| series.get(s)).map(Series::text_len).sum();
    if text > MAX_DECODED_TEXT {
        return Err(DecodeError::TooLarge("decoded text"));
    }
    let flags = flags_column(&mut r, n, &boots)?;
    let members = members(series.len(), &series_of);
    let monos = mono_column(&mut r, n, &members)?;
    let walls = wall_column(&mut r, &monos)?;
    let values = value_column(&mut r, n, &series, &members)?;
    if r.remaining() > 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }

    let mut readings = Vec::with_capacity(n);
    for p in 0..n {
        let (Some(&seq), Some(s), Some(&(synced, boot_id)), Some(&mono_ms), Some(&wall_ms), Some(&value)) = (
            seqs.get(p),
            series_of.get(p).and_then(|&s| series.get(s)),
            flags.get(p),
            monos.get(p),
            walls.get(p),
            values.get(p),
        ) else {
            return Err(DecodeError::Truncated);
        };
        readings.push(Reading {
            seq,
            sensor: s.sensor.clone(),
            metric: s.metric.clone(),
            unit: s.unit.clone(),
            value,
            time: ReadingTime { wall_ms, synced, boot_id, mono_ms },
        });
    }
    Ok(ReadingBatch { readings, dropped })
}

impl Series {
    fn text_len(&self) -> usize {
        self.sensor.len() + self.metric.len() + self.unit.len()
    }
}

fn series_table(r: &mut Reader<'_>) -> Result<Vec<Series>, DecodeError> {
    let n = r.count(4, MAX_SERIES, "series table")?;
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        let sensor = r.text(MAX_TEXT_LEN, "sensor")?;
        let metric = r.text(MAX_TEXT_LEN, "metric")?;
        let unit = r.text(MAX_TEXT_LEN, "unit")?;
        let [coding] = r.array()?;
        if coding > MAX_DECIMALS && coding != RAW {
            return Err(DecodeError::BadValueCoding(coding));
        }
        series.push(Series { sensor, metric, unit, coding });
    }
    Ok(series)
}

fn boot_table(r: &mut Reader<'_>) -> Result<Vec<BootId>, DecodeError> {
    let n = r.count(16, MAX_BOOTS, "boot table")?;
    (0..n).map(|_| r.array().map(BootId)).collect()
}

fn dropped_ranges(r: &mut Reader<'_>) -> Result<Vec<SeqRange>, DecodeError> {
    let n = r.count(2, MAX_DROPPED, "dropped ranges")?;
    (0..n)
        .map(|_| {
            let first = r.u64()?;
            let last = first.checked_add(r.u64()?).ok_or(DecodeError::Overflow)?;
            Ok(SeqRange { first, last })
        })
        .collect()
}

fn seq_column(r: &mut Reader<'_>, n: usize) -> Result<Vec<u64>, DecodeError> {
    let mut seqs = Vec::with_capacity(n);
    if n == 0 {
        return Ok(seqs);
    }
    let mut previous = r.u64()?;
    seqs.push(previous);
    for _ in 1..n {
        let seq = previous.wrapping_add(1).wrapping_add(r.i64()? as u64);
        if seq <= previous {
            return Err(DecodeError::NotAscending { after: previous, seq });
        }
        seqs.push(seq);
        previous = seq;
    }
    Ok(seqs)
}

/// Each reading's series: written only when the table has more than one.
fn series_column(r: &mut Reader<'_>, n: usize, tables: usize) -> Result<Vec<usize>, DecodeError> {
    if tables <= 1 {
        if n > 0 && tables == 0 {
            return Err(DecodeError::BadIndex { table: "series", index: 0 });
        }
        return Ok(vec![0; n]);
    }
    (0..n)
        .map(|_| {
            let index = r.u64()?;
            usize::try_from(index).ok().filter(|&s| s < tables).ok_or(DecodeError::BadIndex { table: "series", index })
        })
        .collect()
}

/// Each reading's (synced, boot id), from `boot index << 1 | synced`.
fn flags_column(r: &mut Reader<'_>, n: usize, boots: &[BootId]) -> Result<Vec<(bool, BootId)>, DecodeError> {
    (0..n)
        .map(|_| {
            let flags = r.u64()?;
            let index = flags >> 1;
            let boot = usize::try_from(index)
                .ok()
                .and_then(|b| boots.get(b))
                .ok_or(DecodeError::BadIndex { table: "boot", index })?;
            Ok((flags & 1 == 1, *boot))
        })
        .collect()
}

/// The positions of each series' readings, ascending.
fn members(tables: usize, series_of: &[usize]) -> Vec<Vec<usize>> {
    let mut members = vec![Vec::new(); tables];
    for (p, &s) in series_of.iter().enumerate() {
        if let Some(m) = members.get_mut(s) {
            m.push(p);
        }
    }
    members
}

fn mono_column(r: &mut Reader<'_>, n: usize, members: &[Vec<usize>]) -> Result<Vec<u64>, DecodeError> {
    let mut monos = vec![0u64; n];
    let mut predictor = MonoPredictor::default();
    for positions in members {
        predictor.start_series();
        for &p in positions {
            let mono = predictor.value(r.i64()?);
            if let Some(slot) = monos.get_mut(p) {
                *slot = mono;
            }
        }
    }
    Ok(monos)
}

/// Wall times from the changes of the clock offset (`wall - mono`).
fn wall_column(r: &mut Reader<'_>, monos: &[u64]) -> Result<Vec<i64>, DecodeError> {
    let mut offset = 0i64;
    monos
        .iter()
        .map(|&mono| {
            offset = offset.wrapping_add(r.i64()?);
            Ok(offset.wrapping_add(mono as i64))
        })
        .collect()
}

fn value_column(
    r: &mut Reader<'_>,
    n: usize,
    series: &[Series],
    members: &[Vec<usize>],
) -> Result<Vec<f64>, DecodeError> {
    let mut values = vec![0f64; n];
    for (s, positions) in series.iter().zip(members) {
        let mut previous_int = 0i64;
        let mut previous_bits = 0u64;
        for &p in positions {
            let value = if s.coding == RAW {
                previous_bits ^= u64::from_le_bytes(r.array()?);
                f64::from_bits(previous_bits)
            } else {
                previous_int = previous_int.wrapping_add(r.i64()?);
                unscale(previous_int, s.coding).ok_or(DecodeError::BadValueCoding(s.coding))?
            };
            if let Some(slot) = values.get_mut(p) {
                *slot = value;
            }
        }
    }
    Ok(values)
}
