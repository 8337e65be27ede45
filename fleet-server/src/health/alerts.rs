//! What the device list flags, from a device's latest heartbeat and the time.

use serde::Serialize;

use crate::config::AlertsConfig;
use crate::store::HealthSummary;

/// Which problem an alert names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The fleet's data from the device is old: no heartbeat for `stale_after` (or never),
    /// or the oldest unsent reading on the box is older than that.
    StaleData,
    /// More than `buffer_depth_over` readings wait on the box.
    GrowingBuffer,
    /// The SoC is at or above `soc_temp_c_at_least`.
    Heat,
    /// One of the Pi's throttle flags is set now (under-voltage, capped, throttled, soft limit).
    Throttling,
    /// A sensor is failing or disconnected.
    SensorErrors,
    /// A sensor's last water level (metric `level` in the heartbeat) is above its
    /// `level_thresholds` entry.
    WaterLevel,
}

/// One alert on a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub kind: AlertKind,
    /// What is wrong, for people.
    pub message: String,
}

/// The alerts of `device`, whose latest heartbeat is `health` (none if it never sent one),
/// at `now_ms` (fleet clock). The other alerts come from the latest heartbeat however old
/// it is; `stale_data` says when it is old.
pub fn alerts(device: &str, health: Option<&HealthSummary>, now_ms: i64, config: &AlertsConfig) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut alert = |kind, message: String| out.push(Alert { kind, message });
    let stale_s = config.stale_after.as_secs();
    let Some(h) = health else {
        alert(AlertKind::StaleData, "no heartbeat received".to_owned());
        return out;
    };
    let age_s = u64::try_from(now_ms.saturating_sub(h.received_at_ms) / 1000).unwrap_or(0);
    if age_s > stale_s {
        alert(AlertKind::StaleData, format!("no heartbeat for {}", minutes(age_s)));
    } else if let Some(oldest) = h.oldest_unsent_age_s.filter(|&o| o > stale_s) {
        alert(AlertKind::StaleData, format!("the oldest unsent reading is {} old", minutes(oldest)));
    }
    if let Some(depth) = h.buffer_depth.filter(|&d| d > config.buffer_depth_over) {
        alert(
            AlertKind::GrowingBuffer,
            format!("{depth} readings wait in the buffer (over {})", config.buffer_depth_over),
        );
    }
    if let Some(t) = h.soc_temp_c.filter(|&t| t >= config.soc_temp_c_at_least) {
        alert(AlertKind::Heat, format!("SoC at {t:.1} °C (alert at {:.1} °C)", config.soc_temp_c_at_least));
    }
    if h.throttled == Some(true) {
        alert(AlertKind::Throttling, "the Pi is throttled or under-voltage now".to_owned());
    }
    if h.sensors_failing > 0 {
        alert(
            AlertKind::SensorErrors,
            format!("{} of {} sensors failing or disconnected", h.sensors_failing, h.sensors),
        );
    }
    for (sensor, level) in &h.levels {
        let Some(&limit) = config.level_thresholds.get(&format!("{device}/{sensor}")) else { continue };
        if *level > limit {
            alert(AlertKind::WaterLevel, format!("{sensor}: level {level} above {limit}"));
        }
    }
    out
}

/// Seconds as whole minutes, for messages.
fn minutes(s: u64) -> String {
    if s < 120 { format!("{s}s") } else { format!("{}m", s / 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn healthy() -> HealthSummary {
        HealthSummary {
            received_at_ms: NOW - 30_000,
            version: "1.0.0".to_owned(),
            config_version: Some(1),
            buffer_depth: Some(3),
            oldest_unsent_age_s: Some(2),
            soc_temp_c: Some(51.0),
            throttled: Some(false),
            sensors: 2,
            sensors_failing: 0,
            levels: [("river".to_owned(), 120.0)].into(),
        }
    }

    fn kinds(h: Option<&HealthSummary>) -> Vec<AlertKind> {
        alerts("kel-a", h, NOW, &AlertsConfig::default()).iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_healthy_device_has_no_alerts() {
        assert_eq!(kinds(Some(&healthy())), []);
    }

    #[test]
    fn a_device_without_a_heartbeat_has_stale_data() {
        assert_eq!(kinds(None), [AlertKind::StaleData]);
        let h = HealthSummary { received_at_ms: NOW - 16 * 60_000, ..healthy() };
        assert_eq!(kinds(Some(&h)), [AlertKind::StaleData]);
    }

    #[test]
    fn an_old_unsent_reading_is_stale_data() {
        let h = HealthSummary { oldest_unsent_age_s: Some(15 * 60 + 1), ..healthy() };
        assert_eq!(kinds(Some(&h)), [AlertKind::StaleData]);
        let h = HealthSummary { oldest_unsent_age_s: Some(15 * 60), ..healthy() };
        assert_eq!(kinds(Some(&h)), [], "exactly stale_after is not stale");
    }

    #[test]
    fn a_buffer_deeper_than_the_threshold_is_growing() {
        let h = HealthSummary { buffer_depth: Some(10_001), ..healthy() };
        assert_eq!(kinds(Some(&h)), [AlertKind::GrowingBuffer]);
        let h = HealthSummary { buffer_depth: Some(10_000), ..healthy() };
        assert_eq!(kinds(Some(&h)), []);
    }

    #[test]
    fn a_soc_at_75_degrees_is_heat() {
        let h = HealthSummary { soc_temp_c: Some(75.0), ..healthy() };
        assert_eq!(kinds(Some(&h)), [AlertKind::Heat]);
        let h = HealthSummary { soc_temp_c: Some(74.9), ..healthy() };
        assert_eq!(kinds(Some(&h)), []);
        let h = HealthSummary { soc_temp_c: None, ..healthy() };
        assert_eq!(kinds(Some(&h)), [], "unmeasured is not hot");
    }

    #[test]
    fn throttling_now_is_an_alert() {
        let h = HealthSummary { throttled: Some(true), ..healthy() };
        assert_eq!(kinds(Some(&h)), [AlertKind::Throttling]);
    }

    #[test]
    fn a_failing_or_disconnected_sensor_is_a_sensor_error() {
        let h = HealthSummary { sensors_failing: 1, ..healthy() };
        let a = alerts("kel-a", Some(&h), NOW, &AlertsConfig::default());
        assert_eq!(a.iter().map(|a| a.kind).collect::<Vec<_>>(), [AlertKind::SensorErrors]);
        assert_eq!(a[0].message, "1 of 2 sensors failing or disconnected");
    }

    #[test]
    fn thresholds_come_from_the_config() {
        let config = AlertsConfig { buffer_depth_over: 2, soc_temp_c_at_least: 50.0, ..AlertsConfig::default() };
        let got: Vec<AlertKind> = alerts("kel-a", Some(&healthy()), NOW, &config).iter().map(|a| a.kind).collect();
        assert_eq!(got, [AlertKind::GrowingBuffer, AlertKind::Heat]);
    }

    #[test]
    fn a_level_above_the_sensors_threshold_is_a_water_level_alert() {
        let config = |limit: f64| AlertsConfig {
            level_thresholds: [("kel-a/river".to_owned(), limit)].into(),
            ..AlertsConfig::default()
        };
        let a = alerts("kel-a", Some(&healthy()), NOW, &config(100.0));
        assert_eq!(a.iter().map(|a| a.kind).collect::<Vec<_>>(), [AlertKind::WaterLevel]);
        assert_eq!(a[0].message, "river: level 120 above 100");
        assert_eq!(alerts("kel-a", Some(&healthy()), NOW, &config(120.0)), [], "at the threshold is not above");
        assert_eq!(alerts("kel-b", Some(&healthy()), NOW, &config(100.0)), [], "another device's threshold");
        assert_eq!(kinds(Some(&healthy())), [], "no threshold, no alert");
    }
}
