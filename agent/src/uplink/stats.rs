//! What the uplink is doing, for the heartbeat, the status page and the tests.
//!
//! The state is one [`UplinkSnapshot`] in a [`tokio::sync::watch`]: the uplink task
//! changes it, anyone copies it, and a waiter ([`UplinkStats::wait_for`]) wakes on each
//! change instead of polling.

use serde::Serialize;
use tokio::sync::watch;

/// Live state of the uplink, shared between its task and readers.
#[derive(Debug)]
pub struct UplinkStats {
    state: watch::Sender<UplinkSnapshot>,
}

/// A copy of [`UplinkStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UplinkSnapshot {
    /// Connected to the broker (CONNACK received, connection not yet lost).
    pub connected: bool,
    /// Successful connects since the agent started.
    pub connects: u64,
    /// The last watermark the fleet acknowledged, if any.
    pub watermark: Option<u64>,
    /// Reading batches published (each resend counts again).
    pub batches_sent: u64,
    /// Readings published (each resend counts again).
    pub readings_sent: u64,
    /// Batches published that start at or below a seq already published before:
    /// resends after a reconnect, because only the fleet's watermark counts as delivery.
    pub resends: u64,
    /// PUBACKs received (they free an in-flight slot, nothing more).
    pub pubacks: u64,
    /// Times a PUBACKed batch went unacknowledged for `ack_timeout` and everything above
    /// the watermark was sent again.
    pub ack_timeouts: u64,
    /// Readings deleted from the buffer after an acknowledgement.
    pub deleted: u64,
    /// MQTT messages that did not decode or made no sense (an impossible watermark).
    pub bad_messages: u64,
    /// Events (`clock_synced`) the broker confirmed.
    pub events_sent: u64,
    /// Notices (heartbeats) published while connected.
    pub notices_sent: u64,
    /// The last connection or buffer error, as text.
    pub last_error: Option<String>,
}

impl Default for UplinkStats {
    fn default() -> Self {
        UplinkStats::new()
    }
}

impl UplinkStats {
    /// Zeroed counters.
    pub fn new() -> UplinkStats {
        UplinkStats { state: watch::Sender::new(UplinkSnapshot::default()) }
    }

    /// A copy of the state now.
    pub fn snapshot(&self) -> UplinkSnapshot {
        self.state.borrow().clone()
    }

    /// Waits until `pred` holds and returns that state. Wakes on every change; wrap it in
    /// a timeout.
    pub async fn wait_for(&self, pred: impl Fn(&UplinkSnapshot) -> bool) -> UplinkSnapshot {
        let mut rx = self.state.subscribe();
        // The sender lives in `self`, so the channel cannot close while we borrow it.
        match rx.wait_for(|s| pred(s)).await {
            Ok(s) => s.clone(),
            Err(_) => self.snapshot(),
        }
    }

    fn change(&self, f: impl FnOnce(&mut UplinkSnapshot)) {
        self.state.send_modify(f);
    }

    pub(super) fn set_connected(&self, connected: bool) {
        self.change(|s| {
            s.connects += u64::from(connected && !s.connected);
            s.connected = connected;
        });
    }

    pub(super) fn acknowledged(&self, watermark: u64, deleted: u64) {
        self.change(|s| {
            s.watermark = Some(watermark);
            s.deleted += deleted;
        });
    }

    pub(super) fn batch_sent(&self, readings: usize, resend: bool) {
        self.change(|s| {
            s.batches_sent += 1;
            s.readings_sent += u64::try_from(readings).unwrap_or(u64::MAX);
            s.resends += u64::from(resend);
        });
    }

    pub(super) fn puback(&self, event_confirmed: bool) {
        self.change(|s| {
            s.pubacks += 1;
            s.events_sent += u64::from(event_confirmed);
        });
    }

    pub(super) fn ack_timed_out(&self) {
        self.change(|s| s.ack_timeouts += 1);
    }

    pub(super) fn notice_sent(&self) {
        self.change(|s| s.notices_sent += 1);
    }

    pub(super) fn bad_message(&self, error: impl std::fmt::Display) {
        self.change(|s| {
            s.bad_messages += 1;
            s.last_error = Some(error.to_string());
        });
    }

    pub(super) fn error(&self, error: impl std::fmt::Display) {
        self.change(|s| s.last_error = Some(error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_none_until_the_first_ack_and_zero_is_a_watermark() {
        let s = UplinkStats::new();
        assert_eq!(s.snapshot().watermark, None);
        s.acknowledged(0, 0);
        assert_eq!(s.snapshot().watermark, Some(0));
        s.acknowledged(41, 3);
        assert_eq!((s.snapshot().watermark, s.snapshot().deleted), (Some(41), 3));
    }
}
