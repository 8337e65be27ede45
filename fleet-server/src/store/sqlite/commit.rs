//! The ingest transaction: readings, dropped ranges, clock offsets, statuses and
//! malformed payloads of many devices, applied in arrival order in one transaction.
//! Transactions begin IMMEDIATE: they read progress and the delivery counter and then
//! write them, so taking the write lock first avoids a busy upgrade with another writer.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use simpul_protocol::{BootId, DeviceId, Reading, SeqRange};

use super::{to_i64, to_u64};
use crate::store::{CommitOutcome, Inbound, StoreError};
use crate::watermark::Progress;

/// A device's state while the transaction runs; written back once at the end.
struct Touched {
    id: i64,
    progress: Progress,
    stored: u64,
    dropped: u64,
    acked: bool,
}

/// The transaction's working state.
struct Commit<'t> {
    tx: Transaction<'t>,
    now_ms: i64,
    last_id: i64,
    devices: BTreeMap<DeviceId, Touched>,
    offsets: HashMap<(i64, BootId), Option<i64>>,
    outcome: CommitOutcome,
}

pub fn commit(conn: &mut Connection, items: &[Inbound], now_ms: i64) -> Result<CommitOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_id = tx.query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
    let mut c =
        Commit { tx, now_ms, last_id, devices: BTreeMap::new(), offsets: HashMap::new(), outcome: Default::default() };
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
                c.tx.execute("UPDATE devices SET online = ?2 WHERE id = ?1", params![id, online])?;
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
        if !self.devices.contains_key(device) {
            self.tx.execute("INSERT OR IGNORE INTO devices (name) VALUES (?1)", [device.as_str()])?;
            let (id, watermark): (i64, i64) =
                self.tx.query_row("SELECT id, watermark FROM devices WHERE name = ?1", [device.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let mut stmt = self.tx.prepare_cached("SELECT first, last FROM device_ranges WHERE device_id = ?1")?;
            let ranges = stmt
                .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                .map(|r| {
                    let (first, last) = r?;
                    Ok(SeqRange { first: to_u64(first)?, last: to_u64(last)? })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            drop(stmt);
            let progress = Progress::new(to_u64(watermark)?, ranges);
            self.devices.insert(device.clone(), Touched { id, progress, stored: 0, dropped: 0, acked: false });
        }
        self.devices.get_mut(device).ok_or_else(|| StoreError::Corrupt("device vanished".to_owned()))
    }

    /// The clock offset a device reported for a boot, if any.
    fn offset(&mut self, device_id: i64, boot: BootId) -> Result<Option<i64>, StoreError> {
        if let Some(o) = self.offsets.get(&(device_id, boot)) {
            return Ok(*o);
        }
        let o = self
            .tx
            .query_row(
                "SELECT offset_ms FROM clock_offsets WHERE device_id = ?1 AND boot_id = ?2",
                params![device_id, &boot.0[..]],
                |r| r.get(0),
            )
            .optional()?;
        self.offsets.insert((device_id, boot), o);
        Ok(o)
    }

    fn next_delivery_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    fn readings(&mut self, device: &DeviceId, readings: &[Reading]) -> Result<(), StoreError> {
        let id = self.device(device)?.id;
        for r in readings {
            if r.seq == 0 {
                continue; // seqs start at 1; 0 is never valid
            }
            let offset = if r.time.synced { Some(0) } else { self.offset(id, r.time.boot_id)? };
            let candidate = self.last_id + 1;
            let inserted = self
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO readings (device_id, seq, sensor, metric, unit, value, wall_ms, synced,
                     boot_id, mono_ms, time_ms, time_corrected, arrived_ms, delivery_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )?
                .execute(params![
                    id,
                    to_i64(r.seq)?,
                    r.sensor,
                    r.metric,
                    r.unit,
                    r.value,
                    r.time.wall_ms,
                    r.time.synced,
                    &r.time.boot_id.0[..],
                    to_i64(r.time.mono_ms)?,
                    r.time.wall_ms.saturating_add(offset.unwrap_or(0)),
                    !r.time.synced && offset.is_some(),
                    self.now_ms,
                    offset.map(|_| candidate),
                ])?;
            if inserted == 1 {
                self.outcome.stored += 1;
                if offset.is_some() {
                    self.next_delivery_id();
                    self.outcome.delivered += 1;
                }
            }
            let t = self.device(device)?;
            t.stored += inserted as u64;
            t.progress.mark_seq(r.seq);
        }
        Ok(())
    }

    fn dropped(&mut self, device: &DeviceId, ranges: &[SeqRange]) -> Result<(), StoreError> {
        let t = self.device(device)?;
        for r in ranges {
            t.dropped += t.progress.mark(*r);
        }
        Ok(())
    }

    fn clock_synced(&mut self, device: &DeviceId, boot: BootId, offset_ms: i64) -> Result<(), StoreError> {
        let id = self.device(device)?.id;
        self.tx.execute(
            "INSERT OR IGNORE INTO clock_offsets (device_id, boot_id, offset_ms) VALUES (?1, ?2, ?3)",
            params![id, &boot.0[..], offset_ms],
        )?;
        self.offsets.remove(&(id, boot));
        let Some(offset) = self.offset(id, boot)? else { return Ok(()) };
        let seqs: Vec<i64> = self
            .tx
            .prepare_cached(
                "SELECT seq FROM readings WHERE device_id = ?1 AND boot_id = ?2 AND delivery_id IS NULL ORDER BY seq",
            )?
            .query_map(params![id, &boot.0[..]], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for seq in seqs {
            let delivery = self.next_delivery_id();
            self.tx
                .prepare_cached(
                    "UPDATE readings SET time_ms = wall_ms + ?3, time_corrected = 1, delivery_id = ?4
                     WHERE device_id = ?1 AND seq = ?2",
                )?
                .execute(params![id, seq, offset, delivery])?;
            self.outcome.delivered += 1;
        }
        Ok(())
    }

    /// Writes back each device's progress and counts, the delivery counter, and commits.
    fn finish(mut self) -> Result<CommitOutcome, StoreError> {
        for (name, t) in &self.devices {
            self.tx.execute(
                "UPDATE devices SET watermark = ?2, stored = stored + ?3, dropped = dropped + ?4 WHERE id = ?1",
                params![t.id, to_i64(t.progress.watermark)?, to_i64(t.stored)?, to_i64(t.dropped)?],
            )?;
            self.tx.execute("DELETE FROM device_ranges WHERE device_id = ?1", [t.id])?;
            for r in &t.progress.above {
                self.tx.execute(
                    "INSERT INTO device_ranges (device_id, first, last) VALUES (?1, ?2, ?3)",
                    params![t.id, to_i64(r.first)?, to_i64(r.last)?],
                )?;
            }
            if t.acked {
                self.outcome.acks.push((name.clone(), t.progress.watermark));
            }
        }
        self.tx.execute("UPDATE delivery_counter SET last_id = ?1 WHERE one = 1", [self.last_id])?;
        self.tx.commit()?;
        Ok(self.outcome)
    }
}

/// Releases held readings that arrived at or before `arrived_by_ms`, uncorrected.
pub fn release_held(conn: &mut Connection, arrived_by_ms: i64) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut last_id: i64 = tx.query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
    let keys: Vec<(i64, i64)> = tx
        .prepare(
            "SELECT device_id, seq FROM readings WHERE delivery_id IS NULL AND arrived_ms <= ?1
             ORDER BY arrived_ms, device_id, seq",
        )?
        .query_map([arrived_by_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (device_id, seq) in &keys {
        last_id += 1;
        tx.prepare_cached(
            "UPDATE readings SET time_ms = wall_ms, time_corrected = 0, delivery_id = ?3
             WHERE device_id = ?1 AND seq = ?2",
        )?
        .execute(params![device_id, seq, last_id])?;
    }
    tx.execute("UPDATE delivery_counter SET last_id = ?1 WHERE one = 1", [last_id])?;
    tx.commit()?;
    Ok(keys.len() as u64)
}
