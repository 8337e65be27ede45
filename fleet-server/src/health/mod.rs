//! Device health on the fleet: when a device counts as online ([`online`]) and what the
//! device list flags ([`alerts`]). Both are pure functions of what the store holds and the
//! time, which the caller passes in. Design: docs/design/fleet-health.md.

pub mod alerts;
pub mod online;

use std::time::Duration;

use crate::config::AlertsConfig;

pub use alerts::{Alert, AlertKind, alerts};
pub use online::is_online;

/// What the API needs to judge health: the online rule's limit and the alert thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSettings {
    /// `[health] offline_after`.
    pub offline_after: Duration,
    /// `[alerts]`.
    pub alerts: AlertsConfig,
}
