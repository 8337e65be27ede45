//! The ingest transaction: readings, dropped ranges, clock offsets, statuses and
//! malformed payloads of many devices, applied in arrival order in one transaction.
//! Transactions begin IMMEDIATE: they read progress and the delivery counter and then
//! write them, so taking the write lock first avoids a busy upgrade with another writer.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use simpul_protocol::{BootId, DeviceId, Reading, SeqRange};

use super::{to_i64, to_u64};
use crate::store::{CommitOutcome, Inbound, StoreError};
use crate::watermark::Progress;

/// A device's state while the transaction runs; written back once at the end.
struct Touched {
    name: DeviceId,
    id: i64,
    progress: Progress,
    /// The ranges above the watermark as read, so `finish` rewrites them only if they changed.
    ranges_read: Vec<SeqRange>,
    stored: u64,
    dropped: u64,
    acked: bool,
}

/// A series id, by its device and names.
struct SeriesKey {
    device_id: i64,
    sensor: String,
    metric: String,
    unit: String,
}

/// The transaction's working state.
struct Commit<'t> {
    tx: Transaction<'t>,
    now_ms: i64,
    history_every_ms: i64,
    last_id: i64,
    /// Devices touched, in first-touch order, and where each is.
    devices: Vec<Touched>,
    device_index: HashMap<DeviceId, usize>,
    offsets: HashMap<(i64, BootId), Option<i64>>,
    /// Series seen in this transaction (a device has a handful).
    series: Vec<(SeriesKey, i64)>,
    /// The per-minute aggregate of the readings made deliverable, written once at the end.
    minutes: Minutes,
    outcome: CommitOutcome,
}

/// Count, min, max and sum of one series' values in one minute.
#[derive(Clone, Copy, Debug)]
struct MinuteAgg {
    n: i64,
    min: f64,
    max: f64,
    sum: f64,
}

/// The `series_minutes` rows a transaction adds to, gathered in memory so each
/// (series, minute) is upserted once per commit, not once per reading (the hot path).
#[derive(Default)]
struct Minutes(HashMap<(i64, i64), MinuteAgg>);

impl Minutes {
    /// Counts a deliverable reading of `series` at `time_ms`. NaN (stored as NULL) is left out.
    fn add(&mut self, series: i64, time_ms: i64, value: f64) {
        if value.is_nan() {
            return;
        }
        let key = (series, time_ms.div_euclid(60_000));
        self.0
            .entry(key)
            .and_modify(|a| {
                a.n += 1;
                a.min = a.min.min(value);
                a.max = a.max.max(value);
                a.sum += value;
            })
            .or_insert(MinuteAgg { n: 1, min: value, max: value, sum: value });
    }

    /// Upserts every (series, minute) gathered.
    fn write(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<_> = self.0.into_iter().collect();
        // In key order: neighbouring rows share B-tree pages.
        rows.sort_unstable_by_key(|(k, _)| *k);
        let mut upsert = tx.prepare_cached(
            "INSERT INTO series_minutes (series_id, minute, n, min, max, sum) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (series_id, minute) DO UPDATE SET n = n + excluded.n,
             min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum",
        )?;
        for ((series, minute), a) in rows {
            upsert.execute(params![series, minute, a.n, a.min, a.max, a.sum])?;
        }
        Ok(())
    }
}

pub fn commit(
    conn: &mut Connection,
    items: &[Inbound],
    now_ms: i64,
    history_every_ms: i64,
) -> Result<CommitOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_id = tx.query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
    let mut c = Commit {
        tx,
        now_ms,
        history_every_ms,
        last_id,
        devices: Vec::new(),
        device_index: HashMap::new(),
        offsets: HashMap::new(),
        series: Vec::new(),
        minutes: Minutes::default(),
        outcome: Default::default(),
    };
    for item in items {
        match item {
            Inbound::Readings { device, batch } => {
                c.readings(device, &batch.readings)?;
                c.dropped(device, &batch.dropped)?;
                c.device(device)?.acked = true;
            }
            Inbound::ClockSynced { device, boot_id, offset_ms } => c.clock_synced(device, *boot_id, *offset_ms)?,
            Inbound::Status { device, online } => {
                let id = c.device(device)?.id;
                c.tx.prepare_cached("UPDATE devices SET online = ?2 WHERE id = ?1")?.execute(params![id, online])?;
            }
            Inbound::Heartbeat { device, heartbeat } => {
                let id = c.device(device)?.id;
                super::health::record_heartbeat(&c.tx, id, heartbeat, now_ms, c.history_every_ms)?;
            }
            Inbound::Event { device, event } => {
                let id = c.device(device)?.id;
                super::health::record_event(&c.tx, id, event, now_ms)?;
            }
            Inbound::ConfigReported { device, report } => {
                let id = c.device(device)?.id;
                super::config::record_reported(&c.tx, id, report, now_ms)?;
            }
            Inbound::Malformed { device, channel, error, bytes } => {
                let id = c.device(device)?.id;
                c.tx.execute("UPDATE devices SET malformed = malformed + 1 WHERE id = ?1", [id])?;
                let detail = format!("{channel}: {bytes} bytes: {error}");
                c.tx.execute(
                    "INSERT INTO protocol_events (device, at_ms, kind, detail) VALUES (?1, ?2, 'malformed_payload', ?3)",
                    params![device.as_str(), now_ms, detail],
                )?;
            }
        }
    }
    c.finish()
}

impl Commit<'_> {
    /// The device's working state, creating its row on first sight.
    fn device(&mut self, device: &DeviceId) -> Result<&mut Touched, StoreError> {
        let i = self.device_at(device)?;
        self.devices.get_mut(i).ok_or_else(|| StoreError::Corrupt("device vanished".to_owned()))
    }

    /// Where the device's working state is in `devices`, loading it on first sight.
    fn device_at(&mut self, device: &DeviceId) -> Result<usize, StoreError> {
        if let Some(&i) = self.device_index.get(device) {
            return Ok(i);
        }
        let found: Option<(i64, i64)> = self
            .tx
            .prepare_cached("SELECT id, watermark FROM devices WHERE name = ?1")?
            .query_row([device.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (id, watermark) = match found {
            Some(found) => found,
            None => {
                self.tx.prepare_cached("INSERT INTO devices (name) VALUES (?1)")?.execute([device.as_str()])?;
                (self.tx.last_insert_rowid(), 0)
            }
        };
        let ranges = self
            .tx
            .prepare_cached("SELECT first, last FROM device_ranges WHERE device_id = ?1 ORDER BY first")?
            .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
            .map(|r| {
                let (first, last) = r?;
                Ok(SeqRange { first: to_u64(first)?, last: to_u64(last)? })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let progress = Progress::new(to_u64(watermark)?, ranges.iter().copied());
        let name = device.clone();
        self.devices.push(Touched { name, id, progress, ranges_read: ranges, stored: 0, dropped: 0, acked: false });
        self.device_index.insert(device.clone(), self.devices.len() - 1);
        Ok(self.devices.len() - 1)
    }

    /// The id of a reading's series, creating it on first sight.
    fn series_id(&mut self, device_id: i64, r: &Reading) -> Result<i64, StoreError> {
        let same = |k: &SeriesKey| {
            k.device_id == device_id && k.sensor == r.sensor && k.metric == r.metric && k.unit == r.unit
        };
        // Newest first: a batch's readings mostly repeat the series just seen.
        if let Some((_, id)) = self.series.iter().rev().find(|(k, _)| same(k)) {
            return Ok(*id);
        }
        let args = params![device_id, r.sensor, r.metric, r.unit];
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM series WHERE device_id = ?1 AND sensor = ?2 AND metric = ?3 AND unit = ?4")?
            .query_row(args, |row| row.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                self.tx
                    .prepare_cached("INSERT INTO series (device_id, sensor, metric, unit) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(args)?;
                self.tx.last_insert_rowid()
            }
        };
        let key = SeriesKey { device_id, sensor: r.sensor.clone(), metric: r.metric.clone(), unit: r.unit.clone() };
        self.series.push((key, id));
        Ok(id)
    }

    /// The clock offset a device reported for a boot, if any.
    fn offset(&mut self, device_id: i64, boot: BootId) -> Result<Option<i64>, StoreError> {
        if let Some(o) = self.offsets.get(&(device_id, boot)) {
            return Ok(*o);
        }
        let o = self
            .tx
            .prepare_cached("SELECT offset_ms FROM clock_offsets WHERE device_id = ?1 AND boot_id = ?2")?
            .query_row(params![device_id, &boot.0[..]], |r| r.get(0))
            .optional()?;
        self.offsets.insert((device_id, boot), o);
        Ok(o)
    }

    /// Stores each reading not already done: deliverable at once when its time is known,
    /// held otherwise. A repeat (its seq already stored or dropped) is skipped without a
    /// write. Statements are prepared once per batch, not per reading (the hot path).
    fn readings(&mut self, device: &DeviceId, readings: &[Reading]) -> Result<(), StoreError> {
        let at = self.device_at(device)?;
        let id = self.devices[at].id;
        // First decide each reading: new or not, its series, its clock offset.
        let mut new = Vec::with_capacity(readings.len());
        for r in readings {
            // Seqs start at 1; 0 is never valid.
            if r.seq == 0 || !self.devices[at].progress.mark_seq(r.seq) {
                continue;
            }
            let series = self.series_id(id, r)?;
            let offset = if r.time.synced { Some(0) } else { self.offset(id, r.time.boot_id)? };
            new.push((r, series, offset));
        }
        if new.is_empty() {
            return Ok(());
        }
        let mut deliverable = self.tx.prepare_cached(
            "INSERT INTO readings (cursor, device_id, seq, series_id, value, time_ms, wall_ms, mono_ms,
             synced, time_corrected, arrived_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut stored = 0;
        for (r, series, offset) in new {
            let (seq, mono) = (to_i64(r.seq)?, to_i64(r.time.mono_ms)?);
            let inserted = match offset {
                Some(offset) => {
                    let cursor = self.last_id + 1;
                    let time_ms = r.time.wall_ms.saturating_add(offset);
                    self.minutes.add(series, time_ms, r.value);
                    deliverable.execute(params![
                        cursor,
                        id,
                        seq,
                        series,
                        r.value,
                        time_ms,
                        r.time.wall_ms,
                        mono,
                        r.time.synced,
                        !r.time.synced,
                        self.now_ms,
                    ])?;
                    self.last_id = cursor;
                    self.outcome.delivered += 1;
                    1
                }
                None => self
                    .tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO held_readings (device_id, seq, series_id, value, wall_ms, mono_ms,
                         boot_id, arrived_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        id,
                        seq,
                        series,
                        r.value,
                        r.time.wall_ms,
                        mono,
                        &r.time.boot_id.0[..],
                        self.now_ms
                    ])?,
            };
            stored += inserted as u64;
        }
        drop(deliverable);
        self.outcome.stored += stored;
        self.devices[at].stored += stored;
        Ok(())
    }

    fn dropped(&mut self, device: &DeviceId, ranges: &[SeqRange]) -> Result<(), StoreError> {
        let t = self.device(device)?;
        for r in ranges {
            t.dropped += t.progress.mark(*r);
        }
        Ok(())
    }

    /// Records a boot's clock offset (the first one wins) and delivers that boot's held
    /// readings with corrected times.
    fn clock_synced(&mut self, device: &DeviceId, boot: BootId, offset_ms: i64) -> Result<(), StoreError> {
        let id = self.device(device)?.id;
        self.tx.execute(
            "INSERT OR IGNORE INTO clock_offsets (device_id, boot_id, offset_ms) VALUES (?1, ?2, ?3)",
            params![id, &boot.0[..], offset_ms],
        )?;
        self.offsets.remove(&(id, boot));
        let Some(offset) = self.offset(id, boot)? else { return Ok(()) };
        let held = HeldSelection::Boot { device_id: id, boot };
        self.last_id =
            deliver_held(&self.tx, held, self.last_id, Some(offset), &mut self.outcome.delivered, &mut self.minutes)?;
        Ok(())
    }

    /// Writes back each device's progress and counts, the delivery counter, and commits.
    fn finish(mut self) -> Result<CommitOutcome, StoreError> {
        for t in &self.devices {
            self.tx
                .prepare_cached(
                    "UPDATE devices SET watermark = ?2, stored = stored + ?3, dropped = dropped + ?4,
                     last_seen_ms = ?5 WHERE id = ?1",
                )?
                .execute(params![
                    t.id,
                    to_i64(t.progress.watermark)?,
                    to_i64(t.stored)?,
                    to_i64(t.dropped)?,
                    self.now_ms
                ])?;
            if t.progress.above != t.ranges_read {
                self.tx.prepare_cached("DELETE FROM device_ranges WHERE device_id = ?1")?.execute([t.id])?;
                for r in &t.progress.above {
                    self.tx
                        .prepare_cached("INSERT INTO device_ranges (device_id, first, last) VALUES (?1, ?2, ?3)")?
                        .execute(params![t.id, to_i64(r.first)?, to_i64(r.last)?])?;
                }
            }
            if t.acked {
                self.outcome.acks.push((t.name.clone(), t.progress.watermark));
            }
        }
        self.tx.execute("UPDATE delivery_counter SET last_id = ?1 WHERE one = 1", [self.last_id])?;
        std::mem::take(&mut self.minutes).write(&self.tx)?;
        self.tx.commit()?;
        Ok(self.outcome)
    }
}

/// Which held readings to deliver.
#[derive(Clone, Copy)]
enum HeldSelection {
    /// One boot of one device (its clock offset arrived).
    Boot { device_id: i64, boot: BootId },
    /// Every reading that arrived at or before this time (the hold timed out).
    ArrivedBy(i64),
}

/// Moves held readings into `readings` with the next cursors, in arrival then seq order:
/// corrected by `offset` when given, as the box's own time otherwise. Returns the last
/// cursor given.
fn deliver_held(
    tx: &Transaction<'_>,
    which: HeldSelection,
    mut last_id: i64,
    offset: Option<i64>,
    delivered: &mut u64,
    minutes: &mut Minutes,
) -> Result<i64, StoreError> {
    const COLUMNS: &str = "device_id, seq, series_id, value, wall_ms, mono_ms, arrived_ms";
    type Row = (i64, i64, i64, Option<f64>, i64, i64, i64);
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
    };
    let rows: Vec<Row> = match which {
        HeldSelection::Boot { device_id, boot } => tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM held_readings WHERE device_id = ?1 AND boot_id = ?2 ORDER BY arrived_ms, seq"
            ))?
            .query_map(params![device_id, &boot.0[..]], row)?
            .collect::<Result<_, _>>()?,
        HeldSelection::ArrivedBy(by) => tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM held_readings WHERE arrived_ms <= ?1 ORDER BY arrived_ms, device_id, seq"
            ))?
            .query_map([by], row)?
            .collect::<Result<_, _>>()?,
    };
    for (device_id, seq, series_id, value, wall_ms, mono_ms, arrived_ms) in rows {
        last_id += 1;
        let time_ms = wall_ms.saturating_add(offset.unwrap_or(0));
        minutes.add(series_id, time_ms, value.unwrap_or(f64::NAN));
        tx.prepare_cached(
            "INSERT INTO readings (cursor, device_id, seq, series_id, value, time_ms, wall_ms, mono_ms, synced,
             time_corrected, arrived_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
        )?
        .execute(params![
            last_id,
            device_id,
            seq,
            series_id,
            value,
            time_ms,
            wall_ms,
            mono_ms,
            offset.is_some(),
            arrived_ms
        ])?;
        tx.prepare_cached("DELETE FROM held_readings WHERE device_id = ?1 AND seq = ?2")?.execute([device_id, seq])?;
        *delivered += 1;
    }
    Ok(last_id)
}

/// Releases held readings that arrived at or before `arrived_by_ms`, uncorrected.
pub fn release_held(conn: &mut Connection, arrived_by_ms: i64) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_id: i64 = tx.query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
    let mut delivered = 0;
    let mut minutes = Minutes::default();
    let held = HeldSelection::ArrivedBy(arrived_by_ms);
    let last_id = deliver_held(&tx, held, last_id, None, &mut delivered, &mut minutes)?;
    tx.execute("UPDATE delivery_counter SET last_id = ?1 WHERE one = 1", [last_id])?;
    minutes.write(&tx)?;
    tx.commit()?;
    Ok(delivered)
}
