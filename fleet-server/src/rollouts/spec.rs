//! What ops ask for when they start a rollout, with the defaults and the checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most waves after the canaries.
pub const MAX_WAVES: usize = 10;

/// A rollout as asked for (`POST /api/v1/rollouts`, `simpul-fleet rollouts start`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// A published release version (each box takes its own target).
    pub version: String,
    /// Only the devices of this config group; all devices when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Devices in the first wave. Default 2.
    #[serde(default = "defaults::canary")]
    pub canary: u32,
    /// Each later wave's cumulative share of the devices, in per cent, growing, the last
    /// 100. Default `[10, 50, 100]`.
    #[serde(default = "defaults::waves")]
    pub waves: Vec<u8>,
    /// How long a device must run the new version, online, before it counts as
    /// succeeded (the health gate between waves). Default 10m.
    #[serde(default = "defaults::gate", with = "humantime_serde")]
    #[schema(value_type = String, example = "10m")]
    pub gate: Duration,
    /// More than this share (per cent) of a wave failed or rolled back pauses the
    /// rollout. Default 20.
    #[serde(default = "defaults::failure_threshold")]
    pub failure_threshold: u8,
    /// How long an ordered device may take to report the new version before it counts
    /// as unreachable (settled, not a failure). Default 1h.
    #[serde(default = "defaults::deadline", with = "humantime_serde")]
    #[schema(value_type = String, example = "1h")]
    pub deadline: Duration,
}

impl RolloutSpec {
    /// A spec of `version` with every default.
    pub fn of(version: &str) -> RolloutSpec {
        RolloutSpec {
            version: version.to_owned(),
            group: None,
            canary: defaults::canary(),
            waves: defaults::waves(),
            gate: defaults::gate(),
            failure_threshold: defaults::failure_threshold(),
            deadline: defaults::deadline(),
        }
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        if let Err(e) = simpul_protocol::release::parse_version(&self.version) {
            return Some(e.to_string());
        }
        if self.canary == 0 {
            return Some("canary must be at least 1: a bad release must stop at a few boxes".to_owned());
        }
        if self.waves.is_empty() || self.waves.len() > MAX_WAVES {
            return Some(format!("waves: 1 to {MAX_WAVES} percentages, the last 100"));
        }
        if self.waves.windows(2).any(|w| w[0] >= w[1]) || self.waves.first().is_some_and(|p| *p == 0) {
            return Some(format!("waves must grow from more than 0 to 100: {:?}", self.waves));
        }
        if self.waves.last() != Some(&100) {
            return Some(format!("the last wave must be 100 (every device): {:?}", self.waves));
        }
        if self.failure_threshold > 100 {
            return Some(format!("failure_threshold is a percentage (0-100): {}", self.failure_threshold));
        }
        None
    }
}

mod defaults {
    use std::time::Duration;

    pub fn canary() -> u32 {
        2
    }
    pub fn waves() -> Vec<u8> {
        vec![10, 50, 100]
    }
    pub fn gate() -> Duration {
        Duration::from_secs(600)
    }
    pub fn failure_threshold() -> u8 {
        20
    }
    pub fn deadline() -> Duration {
        Duration::from_secs(3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_two_canaries_then_ten_fifty_and_all() {
        let spec: RolloutSpec = serde_json::from_str(r#"{"version": "1.2.0"}"#).unwrap_or_else(|_| RolloutSpec::of(""));
        assert_eq!(spec, RolloutSpec::of("1.2.0"));
        assert_eq!((spec.canary, spec.waves.as_slice(), spec.failure_threshold), (2, &[10, 50, 100][..], 20));
        assert_eq!(spec.problem(), None);
    }

    #[test]
    fn waves_that_do_not_grow_to_one_hundred_or_no_canary_are_refused_with_the_reason() {
        let with = |waves: Vec<u8>| RolloutSpec { waves, ..RolloutSpec::of("1.2.0") }.problem();
        assert!(with(vec![50, 10, 100]).is_some_and(|p| p.contains("grow")));
        assert!(with(vec![10, 50]).is_some_and(|p| p.contains("last wave must be 100")));
        assert!(with(vec![]).is_some());
        assert!(with(vec![0, 100]).is_some());
        assert!(RolloutSpec { canary: 0, ..RolloutSpec::of("1.2.0") }.problem().is_some_and(|p| p.contains("canary")));
        assert!(RolloutSpec::of("latest").problem().is_some());
        let typo = serde_json::from_str::<RolloutSpec>(r#"{"version": "1.2.0", "canaries": 3}"#);
        assert!(typo.is_err(), "an unknown field is an error, not ignored");
    }
}
