//! What the store keeps of device health: the latest heartbeat per device (with the
//! fields the device list shows pulled out), the heartbeat history, and device events.
//! docs/design/fleet-health.md says how they are used.

use serde::Serialize;
use simpul_protocol::control::{Event, Heartbeat, SensorState};

use super::StoreError;

/// The metric the water-level alert watches (`[alerts] level_thresholds`).
pub const LEVEL_METRIC: &str = "level";

/// One device in the fleet's device list: what it last said about itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceOverview {
    pub device: String,
    /// The last status it published (its last will says `false`), if any.
    pub status_online: Option<bool>,
    /// When the fleet last received anything from it (fleet clock, ms since the epoch).
    pub last_seen_ms: Option<i64>,
    /// Its latest heartbeat, if it ever sent one.
    pub health: Option<HealthSummary>,
}

/// The fields of a device's latest heartbeat that the device list and the alerts use.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthSummary {
    /// When the fleet received the heartbeat (fleet clock, ms since the epoch).
    pub received_at_ms: i64,
    /// The agent's version.
    pub version: String,
    /// The desired-config version the agent runs.
    pub config_version: Option<u64>,
    /// Readings in the agent's buffer not yet acknowledged.
    pub buffer_depth: Option<u64>,
    /// Age in seconds of the oldest reading not yet acknowledged.
    pub oldest_unsent_age_s: Option<u64>,
    /// SoC temperature, degrees Celsius.
    pub soc_temp_c: Option<f64>,
    /// Any of the Pi's throttle flags set now (under-voltage, frequency capped, throttled,
    /// soft temperature limit); absent when the box cannot tell.
    pub throttled: Option<bool>,
    /// Sensors configured.
    pub sensors: u32,
    /// Sensors whose state is `failing` or `disconnected`.
    pub sensors_failing: u32,
    /// The last `level` value of each sensor that reported one (the water-level alert).
    pub levels: std::collections::BTreeMap<String, f64>,
}

impl HealthSummary {
    /// The summary of `heartbeat`, received at `received_at_ms`.
    pub fn of(heartbeat: &Heartbeat, received_at_ms: i64) -> HealthSummary {
        let failing = heartbeat
            .sensors
            .values()
            .filter(|s| matches!(s.state, SensorState::Failing | SensorState::Disconnected))
            .count();
        let throttled = heartbeat
            .system
            .throttled
            .map(|t| t.under_voltage_now || t.freq_capped_now || t.throttled_now || t.soft_temp_limit_now);
        HealthSummary {
            received_at_ms,
            version: heartbeat.version.clone(),
            config_version: heartbeat.config_version,
            buffer_depth: heartbeat.buffer_depth,
            oldest_unsent_age_s: heartbeat.oldest_unsent_age_s,
            soc_temp_c: heartbeat.system.soc_temp_c,
            throttled,
            sensors: u32::try_from(heartbeat.sensors.len()).unwrap_or(u32::MAX),
            sensors_failing: u32::try_from(failing).unwrap_or(u32::MAX),
            levels: heartbeat
                .sensors
                .iter()
                .filter_map(|(name, s)| Some((name.clone(), *s.last_values.get(LEVEL_METRIC)?)))
                .filter(|(_, v)| v.is_finite())
                .collect(),
        }
    }
}

/// One heartbeat of a device's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthPoint {
    /// When the fleet received it (ms since the epoch).
    pub at_ms: i64,
    pub heartbeat: Heartbeat,
}

/// One event a device reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceEvent {
    /// Its number on the fleet (for accepting a proposal).
    pub id: i64,
    /// When the fleet received it (ms since the epoch).
    pub at_ms: i64,
    /// The event's tag, e.g. `sensor_proposed`.
    pub kind: String,
    pub event: Event,
    /// For a sensor proposal ops accepted: into which version, by whom, under which id.
    pub accepted: Option<Acceptance>,
}

/// A sensor proposal ops accepted into a device's desired config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acceptance {
    /// The id the sensor got in the config.
    pub sensor_id: String,
    /// The desired version it went into.
    pub version: u64,
    pub author: String,
    pub at_ms: i64,
}

/// An event's tag as its JSON writes it (`{"event": "sensor_proposed", ...}`).
pub fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::ClockSynced { .. } => "clock_synced",
        Event::SensorDisconnected { .. } => "sensor_disconnected",
        Event::SensorConnected { .. } => "sensor_connected",
        Event::BufferEvicted { .. } => "buffer_evicted",
        Event::SensorProposed { .. } => "sensor_proposed",
        Event::ConfigRolledBack { .. } => "config_rolled_back",
        Event::UpdateApplied { .. } => "update_applied",
        Event::UpdateRolledBack { .. } => "update_rolled_back",
        Event::UpdateRefused { .. } => "update_refused",
        Event::Unknown => "unknown",
    }
}

/// Most history rows one prune statement deletes, so no statement (or SQLite's write lock)
/// is held long.
pub(crate) const PRUNE_CHUNK: i64 = 5000;

/// Runs `chunk` (deleting up to [`PRUNE_CHUNK`] history rows, each call on its own, so
/// ingest commits go on in between) until a call deletes fewer; how many in all.
pub(crate) fn prune_in_chunks(mut chunk: impl FnMut() -> Result<u64, StoreError>) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = chunk()?;
        total += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// A heartbeat as the store writes it: its summary, its JSON and its levels' JSON.
pub(crate) struct EncodedHeartbeat {
    pub summary: HealthSummary,
    pub json: String,
    pub levels: String,
    pub config_version: Option<i64>,
    pub buffer_depth: Option<i64>,
    pub oldest_unsent_age_s: Option<i64>,
}

impl EncodedHeartbeat {
    /// `heartbeat`, received at `now_ms`, in the store's columns.
    pub fn of(heartbeat: &Heartbeat, now_ms: i64) -> Result<EncodedHeartbeat, StoreError> {
        let json = serde_json::to_string(heartbeat).map_err(json_error)?;
        let summary = HealthSummary::of(heartbeat, now_ms);
        let levels = serde_json::to_string(&summary.levels).map_err(json_error)?;
        Ok(EncodedHeartbeat {
            config_version: opt_i64(summary.config_version)?,
            buffer_depth: opt_i64(summary.buffer_depth)?,
            oldest_unsent_age_s: opt_i64(summary.oldest_unsent_age_s)?,
            summary,
            json,
            levels,
        })
    }

    /// Whether this heartbeat goes into the history, and the device's history time after
    /// it: when the last one there is `every_ms` old or more, or the failing sensors or
    /// throttling changed since the latest (so the history never misses a change of
    /// state, whatever the sampling). `before` is the latest row's (history_at_ms,
    /// sensors_failing, throttled_now), if the device has one.
    pub fn history(
        &self,
        before: Option<(Option<i64>, Option<i64>, Option<bool>)>,
        now_ms: i64,
        every_ms: i64,
    ) -> (bool, Option<i64>) {
        let s = &self.summary;
        let keep = match before {
            Some((Some(at), failing, throttled)) => {
                now_ms.saturating_sub(at) >= every_ms
                    || failing != Some(i64::from(s.sensors_failing))
                    || throttled != s.throttled
            }
            _ => true,
        };
        let history_at = if keep { Some(now_ms) } else { before.and_then(|b| b.0) };
        (keep, history_at)
    }
}

/// The latest-heartbeat columns of a device, as read (all NULL when it never sent one).
pub(crate) struct HealthColumns {
    pub received_at_ms: Option<i64>,
    pub version: Option<String>,
    pub config_version: Option<i64>,
    pub buffer_depth: Option<i64>,
    pub oldest_unsent_age_s: Option<i64>,
    pub soc_temp_c: Option<f64>,
    pub throttled: Option<bool>,
    pub sensors: Option<i64>,
    pub sensors_failing: Option<i64>,
    pub levels: Option<String>,
}

impl HealthColumns {
    /// The summary these columns hold, if the device ever sent a heartbeat.
    pub fn summary(self) -> Result<Option<HealthSummary>, StoreError> {
        let (Some(received_at_ms), Some(version)) = (self.received_at_ms, self.version) else { return Ok(None) };
        let count = |n: Option<i64>| u32::try_from(n.unwrap_or(0)).unwrap_or(u32::MAX);
        Ok(Some(HealthSummary {
            received_at_ms,
            version,
            config_version: opt_u64(self.config_version)?,
            buffer_depth: opt_u64(self.buffer_depth)?,
            oldest_unsent_age_s: opt_u64(self.oldest_unsent_age_s)?,
            soc_temp_c: self.soc_temp_c,
            throttled: self.throttled,
            sensors: count(self.sensors),
            sensors_failing: count(self.sensors_failing),
            levels: serde_json::from_str(self.levels.as_deref().unwrap_or("{}")).map_err(json_error)?,
        }))
    }
}

/// A history row as a [`HealthPoint`].
pub(crate) fn health_point(at_ms: i64, json: &str) -> Result<HealthPoint, StoreError> {
    Ok(HealthPoint { at_ms, heartbeat: serde_json::from_str(json).map_err(json_error)? })
}

/// An event as stored: its JSON.
pub(crate) fn event_json(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(json_error)
}

/// An event row, with its acceptance (sensor id, version, author, at) if one was joined.
pub(crate) fn device_event(
    id: i64,
    at_ms: i64,
    kind: String,
    json: &str,
    accepted: Option<(String, i64, String, i64)>,
) -> Result<DeviceEvent, StoreError> {
    let accepted = match accepted {
        Some((sensor_id, version, author, at_ms)) => {
            Some(Acceptance { sensor_id, version: super::sqlite::to_u64(version)?, author, at_ms })
        }
        None => None,
    };
    let event = serde_json::from_str(json).map_err(json_error)?;
    Ok(DeviceEvent { id, at_ms, kind, event, accepted })
}

fn json_error(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("health JSON: {e}"))
}

fn opt_i64(v: Option<u64>) -> Result<Option<i64>, StoreError> {
    v.map(super::sqlite::to_i64).transpose()
}

fn opt_u64(v: Option<i64>) -> Result<Option<u64>, StoreError> {
    v.map(super::sqlite::to_u64).transpose()
}

#[cfg(test)]
mod tests {
    use simpul_protocol::control::{SensorHealth, Throttled};

    use super::*;

    #[test]
    fn a_summary_counts_failing_and_disconnected_sensors_and_reads_throttling_now() {
        let mut hb = Heartbeat { version: "1.2.3".to_owned(), buffer_depth: Some(7), ..Default::default() };
        for (id, state) in [("a", SensorState::Ok), ("b", SensorState::Failing), ("c", SensorState::Disconnected)] {
            hb.sensors.insert(id.to_owned(), SensorHealth { state, ..Default::default() });
        }
        hb.system.throttled = Some(Throttled::from_raw(1 << 18)); // throttled since boot only
        let s = HealthSummary::of(&hb, 42);
        assert_eq!((s.sensors, s.sensors_failing, s.throttled), (3, 2, Some(false)));
        assert_eq!((s.received_at_ms, s.buffer_depth, s.version.as_str()), (42, Some(7), "1.2.3"));
        hb.system.throttled = Some(Throttled::from_raw(1));
        assert_eq!(HealthSummary::of(&hb, 0).throttled, Some(true));
    }

    #[test]
    fn event_kinds_match_the_json_tag() {
        for ev in [
            Event::ConfigRolledBack { version: 3, running: Some(2), reason: "no broker".to_owned() },
            Event::UpdateApplied { from: "1.0.0".to_owned(), to: "1.1.0".to_owned() },
            Event::UpdateRolledBack { version: "1.1.0".to_owned(), reason: "crashed".to_owned() },
            Event::UpdateRefused { version: "1.1.0".to_owned(), reason: "unsigned".to_owned() },
        ] {
            let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&ev).unwrap_or_default())
                .unwrap_or(serde_json::Value::Null);
            assert_eq!(json["event"], event_kind(&ev));
        }
    }
}
