//! The ingest transaction's working state and decisions, backend-neutral: which devices it
//! touched and their progress (watermark and done ranges, `crate::watermark`), the series
//! and clock offsets it looked up, and the readings it made deliverable, with their cursors
//! and per-minute aggregates. Each backend reads and writes the rows; the decisions are here.

use std::collections::HashMap;

use simpul_protocol::control::{Event, Heartbeat, ReportedConfig};
use simpul_protocol::{BootId, DeviceId, Reading, SeqRange};

use super::series::Minutes;
use super::sqlite::{to_i64, to_u64};
use super::{CommitOutcome, Inbound, StoreError};
use crate::watermark::Progress;

/// A device row as read: its id, watermark and done ranges above it (first, last).
pub(crate) type DeviceRow = (i64, i64, Vec<(i64, i64)>);

/// What a backend does inside its ingest transaction: read and write rows. [`Ingest`]
/// decides what to read and write.
pub(crate) trait IngestTx: Sized {
    /// The device's row id, watermark and done ranges above it (first, last), its row
    /// created when new.
    fn load_device(&mut self, device: &DeviceId) -> Result<DeviceRow, StoreError>;
    /// The id of a reading's series, created when new.
    fn series_id(&mut self, device_id: i64, r: &Reading) -> Result<i64, StoreError>;
    /// The clock offset of a boot, if the device reported one.
    fn clock_offset(&mut self, device_id: i64, boot: BootId) -> Result<Option<i64>, StoreError>;
    /// Records a boot's clock offset; the first one recorded wins.
    fn record_offset(&mut self, device_id: i64, boot: BootId, offset_ms: i64) -> Result<(), StoreError>;
    /// Stores a reading made deliverable.
    fn deliverable(&mut self, row: NewReading) -> Result<(), StoreError>;
    /// Holds a reading until its boot's clock offset is known; how many readings this
    /// stored now (0 when a repeat, or when counted later by [`IngestTx::flush`]).
    fn held(&mut self, row: HeldRow, boot: BootId) -> Result<u64, StoreError>;
    /// Writes what was gathered and not yet written; the held readings this stored, added to
    /// their devices' counts.
    fn flush(&mut self, _devices: &mut Devices) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Removes and returns a boot's held readings, in arrival then seq order.
    fn take_held(&mut self, device_id: i64, boot: BootId) -> Result<Vec<HeldRow>, StoreError>;
    /// Sets the device's status unless the one stored was received later.
    fn status(&mut self, device_id: i64, online: bool, received_ms: i64) -> Result<(), StoreError>;
    fn heartbeat(&mut self, device_id: i64, heartbeat: &Heartbeat, now_ms: i64) -> Result<(), StoreError>;
    fn event(&mut self, device_id: i64, event: &Event, now_ms: i64) -> Result<(), StoreError>;
    fn reported(&mut self, device_id: i64, report: &ReportedConfig, now_ms: i64) -> Result<(), StoreError>;
    /// Counts a malformed payload of the device and records a protocol event.
    fn malformed(&mut self, device_id: i64, device: &DeviceId, detail: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Writes back a device's progress (watermark, added counts, last seen at `now_ms`) and,
    /// when `ranges` is given, its done ranges above the watermark.
    fn write_device(&mut self, t: &Touched, ranges: Option<Vec<(i64, i64)>>, now_ms: i64) -> Result<(), StoreError>;
    /// Writes the delivery counter and the per-minute aggregates, and commits.
    fn commit(self, last_id: i64, minutes: Minutes) -> Result<(), StoreError>;
}

/// The ingest transaction: applies inbound messages in order through a backend's
/// [`IngestTx`], then writes back progress and counts once.
pub(crate) struct Ingest<B> {
    backend: B,
    now_ms: i64,
    devices: Devices,
    offsets: Offsets,
    series: SeriesCache,
    deliveries: Deliveries,
    stored: u64,
}

impl<B: IngestTx> Ingest<B> {
    /// Starts after delivery cursor `last_id`, read by the backend under its lock.
    pub fn new(backend: B, now_ms: i64, last_id: i64) -> Ingest<B> {
        Ingest {
            backend,
            now_ms,
            devices: Devices::default(),
            offsets: Offsets::new(),
            series: SeriesCache::default(),
            deliveries: Deliveries::after(last_id),
            stored: 0,
        }
    }

    /// Applies `items` in order, writes back and commits.
    pub fn run(mut self, items: &[Inbound]) -> Result<CommitOutcome, StoreError> {
        let now_ms = self.now_ms;
        for item in items {
            match item {
                Inbound::Readings { device, batch } => {
                    self.readings(device, &batch.readings)?;
                    let t = self.device(device)?;
                    t.mark_dropped(&batch.dropped);
                    t.acked = true;
                }
                Inbound::ClockSynced { device, boot_id, offset_ms } => {
                    self.clock_synced(device, *boot_id, *offset_ms)?;
                }
                Inbound::Status { device, online, received_ms } => {
                    let id = self.device(device)?.id;
                    self.backend.status(id, *online, *received_ms)?;
                }
                Inbound::Heartbeat { device, heartbeat } => {
                    let id = self.device(device)?.id;
                    self.backend.heartbeat(id, heartbeat, now_ms)?;
                }
                Inbound::Event { device, event } => {
                    let id = self.device(device)?.id;
                    self.backend.event(id, event, now_ms)?;
                }
                Inbound::ConfigReported { device, report } => {
                    let id = self.device(device)?.id;
                    self.backend.reported(id, report, now_ms)?;
                }
                Inbound::Malformed { device, channel, error, bytes } => {
                    let id = self.device(device)?.id;
                    let detail = format!("{channel}: {bytes} bytes: {error}");
                    self.backend.malformed(id, device, &detail, now_ms)?;
                }
            }
        }
        self.finish()
    }

    /// The device's working state, loading it on first sight.
    fn device(&mut self, device: &DeviceId) -> Result<&mut Touched, StoreError> {
        let i = self.device_at(device)?;
        self.devices.at(i)
    }

    /// Where the device's working state is in `devices`, loading it on first sight.
    fn device_at(&mut self, device: &DeviceId) -> Result<usize, StoreError> {
        if let Some(i) = self.devices.find(device) {
            return Ok(i);
        }
        let (id, watermark, ranges) = self.backend.load_device(device)?;
        Ok(self.devices.add(Touched::new(device.clone(), id, watermark, ranges)?))
    }

    /// The id of a reading's series, looked up once per transaction.
    fn series_id(&mut self, device_id: i64, r: &Reading) -> Result<i64, StoreError> {
        if let Some(id) = self.series.find(device_id, r) {
            return Ok(id);
        }
        let id = self.backend.series_id(device_id, r)?;
        self.series.insert(device_id, r, id);
        Ok(id)
    }

    /// The clock offset a device reported for a boot, looked up once per transaction.
    fn offset(&mut self, device_id: i64, boot: BootId) -> Result<Option<i64>, StoreError> {
        if let Some(o) = self.offsets.get(&(device_id, boot)) {
            return Ok(*o);
        }
        let o = self.backend.clock_offset(device_id, boot)?;
        self.offsets.insert((device_id, boot), o);
        Ok(o)
    }

    /// Stores each reading not already done: deliverable at once when its time is known,
    /// held otherwise. A repeat (its seq already stored or dropped) is skipped without a
    /// write.
    fn readings(&mut self, device: &DeviceId, readings: &[Reading]) -> Result<(), StoreError> {
        let at = self.device_at(device)?;
        let id = self.devices.at(at)?.id;
        let mut stored = 0;
        for r in readings {
            if !self.devices.at(at)?.is_new(r.seq) {
                continue;
            }
            let series = self.series_id(id, r)?;
            let offset = if r.time.synced { Some(0) } else { self.offset(id, r.time.boot_id)? };
            let row = new_row(id, series, r, self.now_ms)?;
            stored += match offset {
                Some(offset) => {
                    self.backend.deliverable(self.deliveries.deliver(row, Some(offset), r.time.synced))?;
                    1
                }
                None => self.backend.held(row, r.time.boot_id)?,
            };
        }
        self.stored += stored;
        self.devices.at(at)?.stored += stored;
        Ok(())
    }

    /// Records a boot's clock offset (the first one wins) and delivers that boot's held
    /// readings with corrected times.
    fn clock_synced(&mut self, device: &DeviceId, boot: BootId, offset_ms: i64) -> Result<(), StoreError> {
        let id = self.device(device)?.id;
        self.backend.record_offset(id, boot, offset_ms)?;
        self.offsets.remove(&(id, boot));
        let Some(offset) = self.offset(id, boot)? else { return Ok(()) };
        // Readings held earlier in this transaction move too.
        self.stored += self.backend.flush(&mut self.devices)?;
        for held in self.backend.take_held(id, boot)? {
            self.backend.deliverable(self.deliveries.deliver(held, Some(offset), false))?;
        }
        Ok(())
    }

    /// Writes back each device's progress and counts, the delivery counter, and commits.
    fn finish(mut self) -> Result<CommitOutcome, StoreError> {
        self.stored += self.backend.flush(&mut self.devices)?;
        for t in self.devices.iter() {
            self.backend.write_device(t, t.changed_ranges()?, self.now_ms)?;
        }
        let Deliveries { last_id, minutes, delivered } = self.deliveries;
        self.backend.commit(last_id, minutes)?;
        Ok(CommitOutcome { acks: self.devices.acks(), delivered, stored: self.stored })
    }
}

/// A device's state while the transaction runs; written back once at the end.
pub(crate) struct Touched {
    pub name: DeviceId,
    pub id: i64,
    pub progress: Progress,
    /// The ranges above the watermark as read, so the backend rewrites them only if they changed.
    ranges_read: Vec<SeqRange>,
    pub stored: u64,
    pub dropped: u64,
    pub acked: bool,
}

impl Touched {
    /// A device as read: its row id, watermark and done ranges above it, (first, last).
    pub fn new(name: DeviceId, id: i64, watermark: i64, ranges: Vec<(i64, i64)>) -> Result<Touched, StoreError> {
        let ranges = ranges
            .into_iter()
            .map(|(first, last)| Ok(SeqRange { first: to_u64(first)?, last: to_u64(last)? }))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let progress = Progress::new(to_u64(watermark)?, ranges.iter().copied());
        Ok(Touched { name, id, progress, ranges_read: ranges, stored: 0, dropped: 0, acked: false })
    }

    /// The ranges above the watermark as (first, last), if they changed since read.
    pub fn changed_ranges(&self) -> Result<Option<Vec<(i64, i64)>>, StoreError> {
        if self.progress.above == self.ranges_read {
            return Ok(None);
        }
        let ranges = self.progress.above.iter().map(|r| Ok((to_i64(r.first)?, to_i64(r.last)?)));
        Ok(Some(ranges.collect::<Result<_, StoreError>>()?))
    }

    /// Marks seqs the agent reported dropped.
    pub fn mark_dropped(&mut self, ranges: &[SeqRange]) {
        for r in ranges {
            self.dropped += self.progress.mark(*r);
        }
    }

    /// Marks a reading's seq; whether it is new (seqs start at 1; 0 is never valid).
    pub fn is_new(&mut self, seq: u64) -> bool {
        seq != 0 && self.progress.mark_seq(seq)
    }
}

/// The devices a transaction touched, in first-touch order.
#[derive(Default)]
pub(crate) struct Devices {
    list: Vec<Touched>,
    index: HashMap<DeviceId, usize>,
}

impl Devices {
    /// Where `device` is, if touched already.
    pub fn find(&self, device: &DeviceId) -> Option<usize> {
        self.index.get(device).copied()
    }

    /// Adds a device read for the first time; where it is.
    pub fn add(&mut self, t: Touched) -> usize {
        self.index.insert(t.name.clone(), self.list.len());
        self.list.push(t);
        self.list.len() - 1
    }

    pub fn at(&mut self, i: usize) -> Result<&mut Touched, StoreError> {
        self.list.get_mut(i).ok_or_else(|| StoreError::Corrupt("device vanished".to_owned()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Touched> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Touched> {
        self.list.iter_mut()
    }

    /// The watermark of every device that sent readings, for the outcome.
    pub fn acks(&self) -> Vec<(DeviceId, u64)> {
        self.list.iter().filter(|t| t.acked).map(|t| (t.name.clone(), t.progress.watermark)).collect()
    }
}

/// A series id, by its device and names.
struct SeriesKey {
    device_id: i64,
    sensor: String,
    metric: String,
    unit: String,
}

/// Series ids seen in this transaction (a device has a handful).
#[derive(Default)]
pub(crate) struct SeriesCache(Vec<(SeriesKey, i64)>);

impl SeriesCache {
    pub fn find(&self, device_id: i64, r: &Reading) -> Option<i64> {
        let same = |k: &SeriesKey| {
            k.device_id == device_id && k.sensor == r.sensor && k.metric == r.metric && k.unit == r.unit
        };
        // Newest first: a batch's readings mostly repeat the series just seen.
        self.0.iter().rev().find(|(k, _)| same(k)).map(|(_, id)| *id)
    }

    pub fn insert(&mut self, device_id: i64, r: &Reading, id: i64) {
        let key = SeriesKey { device_id, sensor: r.sensor.clone(), metric: r.metric.clone(), unit: r.unit.clone() };
        self.0.push((key, id));
    }
}

/// Clock offsets by (device, boot) as looked up in this transaction (`None`: not known).
pub(crate) type Offsets = HashMap<(i64, BootId), Option<i64>>;

/// A reading made deliverable: the row `readings` gets.
#[derive(Clone, Debug)]
pub(crate) struct NewReading {
    pub cursor: i64,
    pub device_id: i64,
    pub seq: i64,
    pub series_id: i64,
    /// NaN as `None` (SQLite stores NaN as NULL).
    pub value: Option<f64>,
    pub time_ms: i64,
    pub wall_ms: i64,
    pub mono_ms: i64,
    pub synced: bool,
    pub time_corrected: bool,
    pub arrived_ms: i64,
}

/// A held reading: the row `held_readings` has (its boot aside).
#[derive(Clone, Debug)]
pub(crate) struct HeldRow {
    pub device_id: i64,
    pub seq: i64,
    pub series_id: i64,
    pub value: Option<f64>,
    pub wall_ms: i64,
    pub mono_ms: i64,
    pub arrived_ms: i64,
}

/// A new reading of `device_id` in `series_id`, arrived at `now_ms`, as a row.
pub(crate) fn new_row(device_id: i64, series_id: i64, r: &Reading, now_ms: i64) -> Result<HeldRow, StoreError> {
    Ok(HeldRow {
        device_id,
        seq: to_i64(r.seq)?,
        series_id,
        value: Some(r.value).filter(|v| !v.is_nan()),
        wall_ms: r.time.wall_ms,
        mono_ms: to_i64(r.time.mono_ms)?,
        arrived_ms: now_ms,
    })
}

/// The readings a transaction made deliverable, with the cursors they got and their
/// per-minute aggregates.
pub(crate) struct Deliveries {
    /// The last cursor given.
    pub last_id: i64,
    pub minutes: Minutes,
    pub delivered: u64,
}

impl Deliveries {
    /// Starting after cursor `last_id` (the delivery counter, read under its lock).
    pub fn after(last_id: i64) -> Deliveries {
        Deliveries { last_id, minutes: Minutes::default(), delivered: 0 }
    }

    /// Gives `row` the next cursor, at its wall time plus `offset` (`Some`: its boot's
    /// clock offset, `time_corrected` unless `synced`; `None`: released uncorrected).
    pub fn deliver(&mut self, row: HeldRow, offset: Option<i64>, synced: bool) -> NewReading {
        self.last_id += 1;
        self.delivered += 1;
        let time_ms = row.wall_ms.saturating_add(offset.unwrap_or(0));
        self.minutes.add(row.series_id, time_ms, row.value.unwrap_or(f64::NAN));
        NewReading {
            cursor: self.last_id,
            device_id: row.device_id,
            seq: row.seq,
            series_id: row.series_id,
            value: row.value,
            time_ms,
            wall_ms: row.wall_ms,
            mono_ms: row.mono_ms,
            synced,
            time_corrected: offset.is_some() && !synced,
            arrived_ms: row.arrived_ms,
        }
    }
}
