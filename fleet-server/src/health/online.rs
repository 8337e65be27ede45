//! The online/offline rule.

use std::time::Duration;

/// Whether a device is shown online at `now_ms`: its last status said online (the agent
/// publishes `online: true` on connect; its MQTT last will says `false`) **and** its last
/// heartbeat arrived no more than `offline_after` ago. A device that never sent either is
/// offline. Times are the fleet's clock, ms since the epoch.
///
/// Both are needed: the last will fires only when the broker notices the connection is
/// gone (a keep-alive or more), and a device behind a half-open NAT may look connected for
/// much longer; the heartbeat age catches that. A status of online alone, without
/// heartbeats, is an agent that connects but is otherwise stuck.
pub fn is_online(
    status_online: Option<bool>,
    last_heartbeat_ms: Option<i64>,
    now_ms: i64,
    offline_after: Duration,
) -> bool {
    let limit = i64::try_from(offline_after.as_millis()).unwrap_or(i64::MAX);
    let fresh = last_heartbeat_ms.is_some_and(|at| now_ms.saturating_sub(at) <= limit);
    status_online == Some(true) && fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_MIN: Duration = Duration::from_secs(180);
    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_device_online_with_a_recent_heartbeat_is_online() {
        assert!(is_online(Some(true), Some(NOW - 60_000), NOW, THREE_MIN));
        assert!(is_online(Some(true), Some(NOW - 180_000), NOW, THREE_MIN), "exactly offline_after is still online");
    }

    #[test]
    fn a_device_whose_heartbeat_is_older_than_offline_after_is_offline() {
        assert!(!is_online(Some(true), Some(NOW - 180_001), NOW, THREE_MIN));
        assert!(!is_online(Some(true), None, NOW, THREE_MIN), "never sent a heartbeat");
    }

    #[test]
    fn a_device_whose_last_will_fired_is_offline_even_with_a_recent_heartbeat() {
        assert!(!is_online(Some(false), Some(NOW - 1000), NOW, THREE_MIN));
        assert!(!is_online(None, Some(NOW - 1000), NOW, THREE_MIN), "never said it is online");
    }

    #[test]
    fn a_heartbeat_stamped_after_now_counts_as_fresh() {
        // Another fleet server's clock may run slightly ahead of this one's.
        assert!(is_online(Some(true), Some(NOW + 5000), NOW, THREE_MIN));
    }
}
