//! The ingest transaction: readings, dropped ranges, clock offsets, statuses and
//! malformed payloads of many devices, applied in arrival order in one transaction.
//! Transactions begin IMMEDIATE: they read progress and the delivery counter and then
//! write them, so taking the write lock first avoids a busy upgrade with another writer.
//! The decisions (new or repeat, held or deliverable, cursors, aggregates) are
//! `store::commit_state::Ingest`'s; this file reads and writes the rows.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use simpul_protocol::control::{Event, Heartbeat, ReportedConfig};
use simpul_protocol::{BootId, DeviceId, Reading};

use crate::store::commit_state::{Deliveries, DeviceRow, HeldRow, Ingest, IngestTx, NewReading, Touched};
use crate::store::series::Minutes;
use crate::store::{CommitOutcome, Inbound, StoreError};

/// The ingest transaction's rows on SQLite: each written as it comes (SQLite is in-process,
/// a statement costs no round trip).
struct SqliteIngest<'t> {
    tx: Transaction<'t>,
    history_every_ms: i64,
}

/// Upserts the (series, minute) aggregates a transaction gathered.
fn write_minutes(minutes: Minutes, tx: &Transaction<'_>) -> Result<(), StoreError> {
    let rows = minutes.into_sorted();
    if rows.is_empty() {
        return Ok(());
    }
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

/// Inserts a reading made deliverable.
fn insert_deliverable(tx: &Transaction<'_>, r: &NewReading) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO readings (cursor, device_id, seq, series_id, value, time_ms, wall_ms, mono_ms,
         synced, time_corrected, arrived_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.cursor,
        r.device_id,
        r.seq,
        r.series_id,
        r.value,
        r.time_ms,
        r.wall_ms,
        r.mono_ms,
        r.synced,
        r.time_corrected,
        r.arrived_ms,
    ])?;
    Ok(())
}

const HELD_COLUMNS: &str = "device_id, seq, series_id, value, wall_ms, mono_ms, arrived_ms";

fn held_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HeldRow> {
    Ok(HeldRow {
        device_id: r.get(0)?,
        seq: r.get(1)?,
        series_id: r.get(2)?,
        value: r.get(3)?,
        wall_ms: r.get(4)?,
        mono_ms: r.get(5)?,
        arrived_ms: r.get(6)?,
    })
}

pub fn commit(
    conn: &mut Connection,
    items: &[Inbound],
    now_ms: i64,
    history_every_ms: i64,
) -> Result<CommitOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_id = tx.query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
    Ingest::new(SqliteIngest { tx, history_every_ms }, now_ms, last_id).run(items)
}

impl IngestTx for SqliteIngest<'_> {
    fn load_device(&mut self, device: &DeviceId) -> Result<DeviceRow, StoreError> {
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
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((id, watermark, ranges))
    }

    fn series_id(&mut self, device_id: i64, r: &Reading) -> Result<i64, StoreError> {
        let args = params![device_id, r.sensor, r.metric, r.unit];
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM series WHERE device_id = ?1 AND sensor = ?2 AND metric = ?3 AND unit = ?4")?
            .query_row(args, |row| row.get(0))
            .optional()?;
        Ok(match found {
            Some(id) => id,
            None => {
                self.tx
                    .prepare_cached("INSERT INTO series (device_id, sensor, metric, unit) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(args)?;
                self.tx.last_insert_rowid()
            }
        })
    }

    fn clock_offset(&mut self, device_id: i64, boot: BootId) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT offset_ms FROM clock_offsets WHERE device_id = ?1 AND boot_id = ?2")?
            .query_row(params![device_id, &boot.0[..]], |r| r.get(0))
            .optional()?)
    }

    fn record_offset(&mut self, device_id: i64, boot: BootId, offset_ms: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT OR IGNORE INTO clock_offsets (device_id, boot_id, offset_ms) VALUES (?1, ?2, ?3)",
            params![device_id, &boot.0[..], offset_ms],
        )?;
        Ok(())
    }

    fn deliverable(&mut self, row: NewReading) -> Result<(), StoreError> {
        insert_deliverable(&self.tx, &row)
    }

    fn held(&mut self, row: HeldRow, boot: BootId) -> Result<u64, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO held_readings (device_id, seq, series_id, value, wall_ms, mono_ms,
                 boot_id, arrived_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.device_id,
                row.seq,
                row.series_id,
                row.value,
                row.wall_ms,
                row.mono_ms,
                &boot.0[..],
                row.arrived_ms
            ])?;
        Ok(n as u64)
    }

    fn take_held(&mut self, device_id: i64, boot: BootId) -> Result<Vec<HeldRow>, StoreError> {
        let rows = self
            .tx
            .prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held_readings WHERE device_id = ?1 AND boot_id = ?2 ORDER BY arrived_ms, seq"
            ))?
            .query_map(params![device_id, &boot.0[..]], held_row)?
            .collect::<Result<_, _>>()?;
        self.tx
            .prepare_cached("DELETE FROM held_readings WHERE device_id = ?1 AND boot_id = ?2")?
            .execute(params![device_id, &boot.0[..]])?;
        Ok(rows)
    }

    fn status(&mut self, device_id: i64, online: bool, received_ms: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE devices SET online = ?2, status_ms = ?3 WHERE id = ?1 AND status_ms <= ?3")?
            .execute(params![device_id, online, received_ms])?;
        Ok(())
    }

    fn heartbeat(&mut self, device_id: i64, heartbeat: &Heartbeat, now_ms: i64) -> Result<(), StoreError> {
        super::health::record_heartbeat(&self.tx, device_id, heartbeat, now_ms, self.history_every_ms)
    }

    fn event(&mut self, device_id: i64, event: &Event, now_ms: i64) -> Result<(), StoreError> {
        super::health::record_event(&self.tx, device_id, event, now_ms)
    }

    fn reported(&mut self, device_id: i64, report: &ReportedConfig, now_ms: i64) -> Result<(), StoreError> {
        super::config::record_reported(&self.tx, device_id, report, now_ms)
    }

    fn malformed(&mut self, device_id: i64, device: &DeviceId, detail: &str, now_ms: i64) -> Result<(), StoreError> {
        self.tx.execute("UPDATE devices SET malformed = malformed + 1 WHERE id = ?1", [device_id])?;
        self.tx.execute(
            "INSERT INTO protocol_events (device, at_ms, kind, detail) VALUES (?1, ?2, 'malformed_payload', ?3)",
            params![device.as_str(), now_ms, detail],
        )?;
        Ok(())
    }

    fn write_device(&mut self, t: &Touched, ranges: Option<Vec<(i64, i64)>>, now_ms: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE devices SET watermark = ?2, stored = stored + ?3, dropped = dropped + ?4,
                 last_seen_ms = ?5 WHERE id = ?1",
            )?
            .execute(params![
                t.id,
                super::to_i64(t.progress.watermark)?,
                super::to_i64(t.stored)?,
                super::to_i64(t.dropped)?,
                now_ms
            ])?;
        if let Some(ranges) = ranges {
            self.tx.prepare_cached("DELETE FROM device_ranges WHERE device_id = ?1")?.execute([t.id])?;
            for (first, last) in ranges {
                self.tx
                    .prepare_cached("INSERT INTO device_ranges (device_id, first, last) VALUES (?1, ?2, ?3)")?
                    .execute(params![t.id, first, last])?;
            }
        }
        Ok(())
    }

    fn commit(self, last_id: i64, minutes: Minutes) -> Result<(), StoreError> {
        self.tx.execute("UPDATE delivery_counter SET last_id = ?1 WHERE one = 1", [last_id])?;
        write_minutes(minutes, &self.tx)?;
        self.tx.commit()?;
        Ok(())
    }
}

/// Releases held readings that arrived at or before `arrived_by_ms`, uncorrected, in
/// arrival, device and seq order.
pub fn release_held(conn: &mut Connection, arrived_by_ms: i64) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last_id: i64 = tx.query_row("SELECT last_id FROM delivery_counter WHERE one = 1", [], |r| r.get(0))?;
    let rows: Vec<HeldRow> = tx
        .prepare_cached(&format!(
            "SELECT {HELD_COLUMNS} FROM held_readings WHERE arrived_ms <= ?1 ORDER BY arrived_ms, device_id, seq"
        ))?
        .query_map([arrived_by_ms], held_row)?
        .collect::<Result<_, _>>()?;
    tx.prepare_cached("DELETE FROM held_readings WHERE arrived_ms <= ?1")?.execute([arrived_by_ms])?;
    let mut deliveries = Deliveries::after(last_id);
    for held in rows {
        insert_deliverable(&tx, &deliveries.deliver(held, None, false))?;
    }
    let Deliveries { last_id, minutes, delivered } = deliveries;
    tx.execute("UPDATE delivery_counter SET last_id = ?1 WHERE one = 1", [last_id])?;
    write_minutes(minutes, &tx)?;
    tx.commit()?;
    Ok(delivered)
}
