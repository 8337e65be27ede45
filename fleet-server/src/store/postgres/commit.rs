//! The ingest transaction on PostgreSQL: readings, dropped ranges, clock offsets,
//! statuses and malformed payloads of many devices, applied in arrival order in one
//! transaction. The decisions (new or repeat, held or deliverable, cursors, aggregates)
//! are in `store::commit_state`, shared with SQLite; this file reads and writes the rows.
//!
//! Several fleet processes may commit at once. Every transaction that gives delivery ids
//! (this commit, the hold release) begins with `SELECT … FROM delivery_counter … FOR
//! UPDATE` and keeps that row lock to COMMIT: they run one at a time across processes, so
//! cursors increase in commit order and the progress read here is never stale.
//!
//! No round trip per reading: readings made deliverable and readings held are gathered in
//! memory and inserted with one `unnest` statement each when the transaction ends (held
//! readings also before a clock sync moves a boot's held readings, so those of this very
//! transaction move too).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Row, Transaction};
use simpul_protocol::control::{Event, Heartbeat, ReportedConfig};
use simpul_protocol::{BootId, DeviceId, Reading};

use super::to_i64;
use crate::store::commit_state::{Deliveries, DeviceRow, Devices, HeldRow, Ingest, IngestTx, NewReading, Touched};
use crate::store::series::Minutes;
use crate::store::{CommitOutcome, Inbound, StoreError};

/// The first statement of every transaction that gives delivery ids.
const LOCK_COUNTER: &str = "SELECT last_id FROM delivery_counter WHERE one = 1 FOR UPDATE";

/// The ingest transaction's rows on PostgreSQL: lookups as they come, readings gathered
/// and inserted in bulk.
struct PgIngest<'t> {
    tx: Transaction<'t>,
    history_every_ms: i64,
    /// Readings made deliverable, not yet inserted.
    deliverable: Vec<NewReading>,
    /// Readings held until their boot's clock offset is known, not yet inserted.
    held: Vec<(HeldRow, BootId)>,
}

pub fn commit(
    client: &mut Client,
    items: &[Inbound],
    now_ms: i64,
    history_every_ms: i64,
) -> Result<CommitOutcome, StoreError> {
    let mut tx = client.transaction()?;
    let last_id: i64 = tx.query_one(LOCK_COUNTER, &[])?.try_get(0)?;
    let backend = PgIngest { tx, history_every_ms, deliverable: Vec::new(), held: Vec::new() };
    Ingest::new(backend, now_ms, last_id).run(items)
}

impl IngestTx for PgIngest<'_> {
    /// Another process (or a control-plane write) may create the same name at once: the
    /// insert then does nothing and the select finds theirs.
    fn load_device(&mut self, device: &DeviceId) -> Result<DeviceRow, StoreError> {
        const FIND: &str = "SELECT id, watermark FROM devices WHERE name = $1";
        let name = device.as_str();
        let row = match self.tx.query_opt(FIND, &[&name])? {
            Some(row) => row,
            None => {
                self.tx.execute("INSERT INTO devices (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[&name])?;
                self.tx.query_one(FIND, &[&name])?
            }
        };
        let (id, watermark): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let ranges = self
            .tx
            .query("SELECT first, last FROM device_ranges WHERE device_id = $1 ORDER BY first", &[&id])?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((id, watermark, ranges))
    }

    fn series_id(&mut self, device_id: i64, r: &Reading) -> Result<i64, StoreError> {
        const FIND: &str = "SELECT id FROM series WHERE device_id = $1 AND sensor = $2 AND metric = $3 AND unit = $4";
        let args: [&(dyn ToSql + Sync); 4] = [&device_id, &r.sensor, &r.metric, &r.unit];
        let row = match self.tx.query_opt(FIND, &args)? {
            Some(row) => row,
            None => {
                self.tx.execute(
                    "INSERT INTO series (device_id, sensor, metric, unit) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (device_id, sensor, metric, unit) DO NOTHING",
                    &args,
                )?;
                self.tx.query_one(FIND, &args)?
            }
        };
        Ok(row.try_get(0)?)
    }

    fn clock_offset(&mut self, device_id: i64, boot: BootId) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .query_opt(
                "SELECT offset_ms FROM clock_offsets WHERE device_id = $1 AND boot_id = $2",
                &[&device_id, &&boot.0[..]],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn record_offset(&mut self, device_id: i64, boot: BootId, offset_ms: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO clock_offsets (device_id, boot_id, offset_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&device_id, &&boot.0[..], &offset_ms],
        )?;
        Ok(())
    }

    fn deliverable(&mut self, row: NewReading) -> Result<(), StoreError> {
        self.deliverable.push(row);
        Ok(())
    }

    fn held(&mut self, row: HeldRow, boot: BootId) -> Result<u64, StoreError> {
        // Counted when inserted (`flush`).
        self.held.push((row, boot));
        Ok(0)
    }

    /// Inserts the held readings gathered so far (a repeat of one already held is ignored)
    /// and counts those stored.
    fn flush(&mut self, devices: &mut Devices) -> Result<u64, StoreError> {
        if self.held.is_empty() {
            return Ok(0);
        }
        let held = std::mem::take(&mut self.held);
        let mut cols = Columns::default();
        let mut boots = Vec::with_capacity(held.len());
        for (row, boot) in &held {
            cols.push(row);
            boots.push(boot.0.to_vec());
        }
        let inserted = self.tx.query(
            "INSERT INTO held_readings (device_id, seq, series_id, value, wall_ms, mono_ms, arrived_ms, boot_id)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::bigint[],
                                  $6::bigint[], $7::bigint[], $8::bytea[])
             ON CONFLICT DO NOTHING RETURNING device_id",
            &cols.params(&[&boots]),
        )?;
        let mut per_device: HashMap<i64, u64> = HashMap::new();
        for r in &inserted {
            *per_device.entry(r.try_get(0)?).or_default() += 1;
        }
        for t in devices.iter_mut() {
            t.stored += per_device.get(&t.id).copied().unwrap_or(0);
        }
        Ok(inserted.len() as u64)
    }

    fn take_held(&mut self, device_id: i64, boot: BootId) -> Result<Vec<HeldRow>, StoreError> {
        let rows = self.tx.query(
            &format!("DELETE FROM held_readings WHERE device_id = $1 AND boot_id = $2 RETURNING {HELD_COLUMNS}"),
            &[&device_id, &&boot.0[..]],
        )?;
        let mut rows = held_rows(&rows)?;
        rows.sort_unstable_by_key(|h| (h.arrived_ms, h.seq));
        Ok(rows)
    }

    fn status(&mut self, device_id: i64, online: bool, received_ms: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE devices SET online = $2, status_ms = $3 WHERE id = $1 AND status_ms <= $3",
            &[&device_id, &online, &received_ms],
        )?;
        Ok(())
    }

    fn heartbeat(&mut self, device_id: i64, heartbeat: &Heartbeat, now_ms: i64) -> Result<(), StoreError> {
        super::health::record_heartbeat(&mut self.tx, device_id, heartbeat, now_ms, self.history_every_ms)
    }

    fn event(&mut self, device_id: i64, event: &Event, now_ms: i64) -> Result<(), StoreError> {
        super::health::record_event(&mut self.tx, device_id, event, now_ms)
    }

    fn reported(&mut self, device_id: i64, report: &ReportedConfig, now_ms: i64) -> Result<(), StoreError> {
        super::config::record_reported(&mut self.tx, device_id, report, now_ms)
    }

    fn malformed(&mut self, device_id: i64, device: &DeviceId, detail: &str, now_ms: i64) -> Result<(), StoreError> {
        self.tx.execute("UPDATE devices SET malformed = malformed + 1 WHERE id = $1", &[&device_id])?;
        self.tx.execute(
            "INSERT INTO protocol_events (device, at_ms, kind, detail) VALUES ($1, $2, 'malformed_payload', $3)",
            &[&device.as_str(), &now_ms, &detail],
        )?;
        Ok(())
    }

    fn write_device(&mut self, t: &Touched, ranges: Option<Vec<(i64, i64)>>, now_ms: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE devices SET watermark = $2, stored = stored + $3, dropped = dropped + $4,
             last_seen_ms = $5 WHERE id = $1",
            &[&t.id, &to_i64(t.progress.watermark)?, &to_i64(t.stored)?, &to_i64(t.dropped)?, &now_ms],
        )?;
        if let Some(ranges) = ranges {
            let (first, last): (Vec<i64>, Vec<i64>) = ranges.into_iter().unzip();
            self.tx.execute("DELETE FROM device_ranges WHERE device_id = $1", &[&t.id])?;
            if !first.is_empty() {
                self.tx.execute(
                    "INSERT INTO device_ranges (device_id, first, last)
                     SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[])",
                    &[&t.id, &first, &last],
                )?;
            }
        }
        Ok(())
    }

    fn commit(mut self, last_id: i64, minutes: Minutes) -> Result<(), StoreError> {
        insert_deliverable(&mut self.tx, &self.deliverable)?;
        self.tx.execute("UPDATE delivery_counter SET last_id = $1 WHERE one = 1", &[&last_id])?;
        write_minutes(&mut self.tx, minutes)?;
        self.tx.commit()?;
        Ok(())
    }
}

/// The columns of `held_readings` a delivery moves, as [`held_rows`] reads them.
const HELD_COLUMNS: &str = "device_id, seq, series_id, value, wall_ms, mono_ms, arrived_ms";

fn held_rows(rows: &[Row]) -> Result<Vec<HeldRow>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(HeldRow {
                device_id: r.try_get(0)?,
                seq: r.try_get(1)?,
                series_id: r.try_get(2)?,
                value: r.try_get(3)?,
                wall_ms: r.try_get(4)?,
                mono_ms: r.try_get(5)?,
                arrived_ms: r.try_get(6)?,
            })
        })
        .collect()
}

/// Rows as columns, for `unnest`.
#[derive(Default)]
struct Columns {
    device_id: Vec<i64>,
    seq: Vec<i64>,
    series_id: Vec<i64>,
    value: Vec<Option<f64>>,
    wall_ms: Vec<i64>,
    mono_ms: Vec<i64>,
    arrived_ms: Vec<i64>,
}

impl Columns {
    fn push(&mut self, r: &HeldRow) {
        self.device_id.push(r.device_id);
        self.seq.push(r.seq);
        self.series_id.push(r.series_id);
        self.value.push(r.value);
        self.wall_ms.push(r.wall_ms);
        self.mono_ms.push(r.mono_ms);
        self.arrived_ms.push(r.arrived_ms);
    }

    /// The columns as parameters `$1` to `$7`, then `more`.
    fn params<'a>(&'a self, more: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.device_id,
            &self.seq,
            &self.series_id,
            &self.value,
            &self.wall_ms,
            &self.mono_ms,
            &self.arrived_ms,
        ];
        params.extend_from_slice(more);
        params
    }
}

/// Inserts readings made deliverable, in one statement. `UNIQUE (device_id, seq)` fails
/// the transaction rather than store a reading twice.
fn insert_deliverable(tx: &mut Transaction<'_>, rows: &[NewReading]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut cols = Columns::default();
    let (mut cursor, mut time_ms, mut synced, mut corrected) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        cols.push(&HeldRow {
            device_id: r.device_id,
            seq: r.seq,
            series_id: r.series_id,
            value: r.value,
            wall_ms: r.wall_ms,
            mono_ms: r.mono_ms,
            arrived_ms: r.arrived_ms,
        });
        cursor.push(r.cursor);
        time_ms.push(r.time_ms);
        synced.push(r.synced);
        corrected.push(r.time_corrected);
    }
    tx.execute(
        "INSERT INTO readings (device_id, seq, series_id, value, wall_ms, mono_ms, arrived_ms,
                              cursor, time_ms, synced, time_corrected)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::bigint[],
                              $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::boolean[],
                              $11::boolean[])",
        &cols.params(&[&cursor, &time_ms, &synced, &corrected]),
    )?;
    Ok(())
}

/// Upserts the (series, minute) aggregates a transaction gathered, in one statement (each
/// key once: they come from a map).
fn write_minutes(tx: &mut Transaction<'_>, minutes: Minutes) -> Result<(), StoreError> {
    let rows = minutes.into_sorted();
    if rows.is_empty() {
        return Ok(());
    }
    let (mut series, mut minute, mut n, mut min, mut max, mut sum) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((s, m), a) in rows {
        series.push(s);
        minute.push(m);
        n.push(a.n);
        min.push(a.min);
        max.push(a.max);
        sum.push(a.sum);
    }
    tx.execute(
        "INSERT INTO series_minutes (series_id, minute, n, min, max, sum)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[])
         ON CONFLICT (series_id, minute) DO UPDATE SET n = series_minutes.n + excluded.n,
         min = LEAST(series_minutes.min, excluded.min), max = GREATEST(series_minutes.max, excluded.max),
         sum = series_minutes.sum + excluded.sum",
        &[&series, &minute, &n, &min, &max, &sum],
    )?;
    Ok(())
}

/// Releases held readings that arrived at or before `arrived_by_ms`, uncorrected, in
/// arrival, device and seq order.
pub fn release_held(client: &mut Client, arrived_by_ms: i64) -> Result<u64, StoreError> {
    let mut tx = client.transaction()?;
    let last_id: i64 = tx.query_one(LOCK_COUNTER, &[])?.try_get(0)?;
    let rows = tx.query(
        &format!("DELETE FROM held_readings WHERE arrived_ms <= $1 RETURNING {HELD_COLUMNS}"),
        &[&arrived_by_ms],
    )?;
    let mut rows = held_rows(&rows)?;
    rows.sort_unstable_by_key(|h| (h.arrived_ms, h.device_id, h.seq));
    let mut deliveries = Deliveries::after(last_id);
    let delivered: Vec<NewReading> = rows.into_iter().map(|h| deliveries.deliver(h, None, false)).collect();
    insert_deliverable(&mut tx, &delivered)?;
    let Deliveries { last_id, minutes, delivered } = deliveries;
    tx.execute("UPDATE delivery_counter SET last_id = $1 WHERE one = 1", &[&last_id])?;
    write_minutes(&mut tx, minutes)?;
    tx.commit()?;
    Ok(delivered)
}
