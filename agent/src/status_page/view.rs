//! What the status page shows, as data: built from the live counters, rendered by
//! [`super::render`], and served as JSON at `/status.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::probe::ProbeView;
use crate::sensor::SensorSnapshot;
use crate::uplink::UplinkSnapshot;

/// The whole page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    /// The site's name (`[device] site`), if set.
    pub site: Option<String>,
    pub device: String,
    pub version: String,
    /// When the view was taken, UTC ms.
    pub now_ms: i64,
    pub link: LinkView,
    /// Readings in the buffer not yet acknowledged by the fleet (none if the buffer could
    /// not be read).
    pub waiting: Option<u64>,
    /// Wall time of the oldest of them, UTC ms.
    pub oldest_waiting_ms: Option<i64>,
    pub sensors: Vec<SensorView>,
    /// Serial ports plugged in that no sensor uses.
    pub new_ports: Vec<String>,
    /// Probes of new ports since the agent started, by port: running or their result.
    pub probes: BTreeMap<String, ProbeView>,
}

/// The link to the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkView {
    /// `[uplink] enabled = false`.
    Off,
    Connected,
    Disconnected,
}

/// One sensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorView {
    pub id: String,
    pub kind: String,
    pub state: SensorStateView,
    /// The last value of each metric, with the metric's unit when known.
    pub values: BTreeMap<String, f64>,
    /// When its last reading was taken, UTC ms (the box's clock).
    pub last_seen_ms: Option<i64>,
}

/// A sensor's state in the staff's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorStateView {
    /// Giving readings.
    Ok,
    /// Its port is gone or never opened.
    Disconnected,
    /// Connected, but errors since its last reading.
    Failing,
    /// Connected, no reading yet.
    Starting,
}

impl SensorView {
    /// A sensor's view from its counters: ok while its last reading is at most `stale_ms`
    /// old; disconnected while its port is closed; failing when connected but its
    /// readings stopped or only errors came; starting when connected with neither yet.
    pub fn from_snapshot(id: &str, s: &SensorSnapshot, now_ms: i64, stale_ms: i64) -> SensorView {
        let last_seen_ms = s.last_seen.map(|t| t.wall_ms);
        let fresh = last_seen_ms.is_some_and(|t| now_ms.saturating_sub(t) <= stale_ms);
        let state = if !s.connected {
            SensorStateView::Disconnected
        } else if fresh {
            SensorStateView::Ok
        } else if s.last_error.is_some() || last_seen_ms.is_some() {
            SensorStateView::Failing
        } else {
            SensorStateView::Starting
        };
        SensorView { id: id.to_owned(), kind: s.kind.to_owned(), state, values: s.last_values.clone(), last_seen_ms }
    }
}

impl LinkView {
    /// The link from the uplink's counters (`None`: the uplink is off).
    pub fn from_uplink(u: Option<&UplinkSnapshot>) -> LinkView {
        match u {
            None => LinkView::Off,
            Some(u) if u.connected => LinkView::Connected,
            Some(_) => LinkView::Disconnected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(connected: bool, seen_ms: Option<i64>, error: Option<&str>) -> SensorSnapshot {
        SensorSnapshot {
            kind: "ascii",
            connected,
            frames_ok: 0,
            garbage: 0,
            crc_errors: 0,
            timeouts: 0,
            io_errors: 0,
            exceptions: 0,
            reconnects: 0,
            last_values: BTreeMap::new(),
            last_seen: seen_ms.map(|wall_ms| simpul_protocol::ReadingTime {
                wall_ms,
                synced: true,
                boot_id: simpul_protocol::BootId([0; 16]),
                mono_ms: 0,
            }),
            last_error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_sensor_is_ok_while_its_readings_are_fresh_and_failing_after() {
        let now = 100_000;
        let stale = 30_000;
        let state = |s: &SensorSnapshot| SensorView::from_snapshot("a", s, now, stale).state;
        assert_eq!(state(&snap(true, Some(now - 1_000), None)), SensorStateView::Ok);
        assert_eq!(state(&snap(true, Some(now - 60_000), None)), SensorStateView::Failing);
        assert_eq!(state(&snap(true, None, Some("garbage"))), SensorStateView::Failing);
        assert_eq!(state(&snap(true, None, None)), SensorStateView::Starting);
        assert_eq!(state(&snap(false, Some(now), None)), SensorStateView::Disconnected);
    }
}
