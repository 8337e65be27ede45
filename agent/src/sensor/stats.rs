//! Per-sensor counters: what the status page, the heartbeat and the tests look at.
//!
//! Every counter is an atomic, bumped by the driver task and read by anyone; the last
//! values sit behind a mutex held only for a copy. Each change also ticks a
//! [`tokio::sync::watch`] so a waiter ([`SensorStats::wait_for`]) wakes on the event
//! instead of polling.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use simpul_protocol::ReadingTime;
use tokio::sync::watch;

/// The kinds of trouble a sensor meets, each counted on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Bytes that made no reading: an unparseable or over-long line, an unexpected reply.
    Garbage,
    /// A Modbus reply that arrived but was corrupt (bad CRC), seen as bytes then silence.
    Crc,
    /// A request with no reply at all.
    Timeout,
    /// The port could not be opened, or a read or write failed (unplugged).
    Io,
    /// A Modbus exception reply (illegal address, device busy...).
    Exception,
}

/// Live counters of one sensor, shared between its driver and readers.
#[derive(Debug)]
pub struct SensorStats {
    kind: &'static str,
    connected: AtomicBool,
    frames_ok: AtomicU64,
    garbage: AtomicU64,
    crc_errors: AtomicU64,
    timeouts: AtomicU64,
    io_errors: AtomicU64,
    exceptions: AtomicU64,
    reconnects: AtomicU64,
    last: Mutex<Last>,
    events: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Last {
    values: BTreeMap<String, f64>,
    seen: Option<ReadingTime>,
    error: Option<String>,
}

/// A copy of [`SensorStats`] at one moment, for the status page and heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorSnapshot {
    /// `ascii`, `modbus` or `simulated`.
    pub kind: &'static str,
    /// Port open (and, for Modbus, the slave answered its last poll).
    pub connected: bool,
    /// Frames (lines, Modbus replies, simulated ticks) that gave readings.
    pub frames_ok: u64,
    /// Unparseable lines, over-long runs, unexpected replies.
    pub garbage: u64,
    /// Modbus replies that arrived corrupt.
    pub crc_errors: u64,
    /// Modbus requests with no reply.
    pub timeouts: u64,
    /// Failed opens, reads and writes.
    pub io_errors: u64,
    /// Modbus exception replies.
    pub exceptions: u64,
    /// Successful opens after the first one.
    pub reconnects: u64,
    /// The last value of each metric.
    pub last_values: BTreeMap<String, f64>,
    /// When the last reading was taken.
    pub last_seen: Option<ReadingTime>,
    /// The last error, as text.
    pub last_error: Option<String>,
}

impl SensorStats {
    /// Fresh counters for a sensor of `kind`.
    pub fn new(kind: &'static str) -> SensorStats {
        SensorStats {
            kind,
            connected: AtomicBool::new(false),
            frames_ok: AtomicU64::new(0),
            garbage: AtomicU64::new(0),
            crc_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            io_errors: AtomicU64::new(0),
            exceptions: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last: Mutex::new(Last::default()),
            events: watch::Sender::new(0),
        }
    }

    /// A consistent-enough copy of the counters (each read on its own).
    pub fn snapshot(&self) -> SensorSnapshot {
        let last = self.lock();
        SensorSnapshot {
            kind: self.kind,
            connected: self.connected.load(Ordering::Relaxed),
            frames_ok: self.frames_ok.load(Ordering::Relaxed),
            garbage: self.garbage.load(Ordering::Relaxed),
            crc_errors: self.crc_errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            io_errors: self.io_errors.load(Ordering::Relaxed),
            exceptions: self.exceptions.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_values: last.values.clone(),
            last_seen: last.seen,
            last_error: last.error.clone(),
        }
    }

    /// Waits until `pred` holds for a snapshot, and returns that snapshot. Wakes on every
    /// change rather than polling; wrap it in a timeout.
    pub async fn wait_for(&self, pred: impl Fn(&SensorSnapshot) -> bool) -> SensorSnapshot {
        let mut rx = self.events.subscribe();
        loop {
            let snap = self.snapshot();
            if pred(&snap) {
                return snap;
            }
            // The sender lives in `self`, so `changed` cannot fail while we borrow it.
            if rx.changed().await.is_err() {
                return snap;
            }
        }
    }

    /// Marks the port open or closed; an open after an earlier one counts as a reconnect.
    pub(crate) fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Ordering::Relaxed);
        if was != connected {
            self.bump();
        }
    }

    /// Counts a successful (re)open of the port.
    pub(crate) fn opened(&self, first: bool) {
        if !first {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.set_connected(true);
        self.bump();
    }

    /// Counts one frame that gave readings.
    pub(crate) fn frame_ok(&self) {
        self.frames_ok.fetch_add(1, Ordering::Relaxed);
        self.bump();
    }

    /// Counts one trouble of `kind`, keeping `error` as the last error.
    pub(crate) fn trouble(&self, kind: Trouble, error: impl std::fmt::Display) {
        let counter = match kind {
            Trouble::Garbage => &self.garbage,
            Trouble::Crc => &self.crc_errors,
            Trouble::Timeout => &self.timeouts,
            Trouble::Io => &self.io_errors,
            Trouble::Exception => &self.exceptions,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.lock().error = Some(error.to_string());
        self.bump();
    }

    /// Remembers the last value of `metric` and when it was taken.
    pub(crate) fn record(&self, metric: &str, value: f64, time: ReadingTime) {
        let mut last = self.lock();
        match last.values.get_mut(metric) {
            Some(v) => *v = value,
            None => {
                last.values.insert(metric.to_owned(), value);
            }
        }
        last.seen = Some(time);
        drop(last);
        self.bump();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Last> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_open_is_not_a_reconnect_but_later_ones_are() {
        let s = SensorStats::new("ascii");
        s.opened(true);
        s.set_connected(false);
        s.opened(false);
        let snap = s.snapshot();
        assert!(snap.connected);
        assert_eq!(snap.reconnects, 1);
    }

    #[test]
    fn each_trouble_has_its_own_counter_and_keeps_the_last_error() {
        let s = SensorStats::new("modbus");
        s.trouble(Trouble::Crc, "bad crc");
        s.trouble(Trouble::Timeout, "no reply");
        let snap = s.snapshot();
        assert_eq!((snap.crc_errors, snap.timeouts, snap.garbage), (1, 1, 0));
        assert_eq!(snap.last_error.as_deref(), Some("no reply"));
    }
}
