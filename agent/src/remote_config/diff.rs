//! A new config as typed changes against the running one: which sensors come, go or
//! change, which live-changeable sections changed, and which changes need a restart.
//!
//! Applied live: `[sensors.*]` (per sensor), `[sensor_retry]` (every sensor restarts),
//! `[uplink]` except `enabled` (the uplink reconnects with it), `[remote_config]` (read
//! at the next apply). Needing a restart, so rejected for now: `[device]` (the id is in
//! every topic and the client id), `[buffer]` (the writer holds the file and its
//! options), `[clock]`, `[log]` (the subscriber is set up once), `[health]` and
//! `[status_page]` and `[probe]` (their tasks and listeners are bound at start), `[uplink] enabled`
//! (turning the uplink off would cut the fleet off by design).

use std::collections::BTreeSet;

use crate::config::AgentConfig;

/// What differs between the running config and a new one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub sensors_added: Vec<String>,
    pub sensors_removed: Vec<String>,
    pub sensors_changed: Vec<String>,
    /// `[sensor_retry]` changed: every sensor restarts with it.
    pub sensor_retry: bool,
    /// `[uplink]` changed (not `enabled`): the uplink reconnects with it.
    pub uplink: bool,
    /// `[remote_config]` changed.
    pub remote_config: bool,
    /// Sections whose change needs a restart of the agent.
    pub needs_restart: Vec<&'static str>,
}

impl Changes {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self == &Changes::default()
    }

    /// Why the new config cannot be applied live, if it cannot.
    pub fn restart_error(&self) -> Option<String> {
        (!self.needs_restart.is_empty()).then(|| {
            format!(
                "changes to {} need a restart of the agent, which remote config does not do yet; \
                 change them in a local file or re-provision",
                self.needs_restart.join(", ")
            )
        })
    }
}

/// The typed changes from `old` to `new`.
pub fn diff(old: &AgentConfig, new: &AgentConfig) -> Changes {
    let old_ids: BTreeSet<&String> = old.sensors.keys().collect();
    let new_ids: BTreeSet<&String> = new.sensors.keys().collect();
    let mut c = Changes {
        sensors_added: new_ids.difference(&old_ids).map(|s| (*s).clone()).collect(),
        sensors_removed: old_ids.difference(&new_ids).map(|s| (*s).clone()).collect(),
        sensors_changed: new
            .sensors
            .iter()
            .filter(|(id, cfg)| old.sensors.get(*id).is_some_and(|o| o != *cfg))
            .map(|(id, _)| id.clone())
            .collect(),
        sensor_retry: old.sensor_retry != new.sensor_retry,
        remote_config: old.remote_config != new.remote_config,
        ..Changes::default()
    };
    let mut old_uplink = old.uplink.clone();
    old_uplink.enabled = new.uplink.enabled;
    c.uplink = old_uplink != new.uplink;
    let restart = [
        ("[device]", old.device != new.device),
        ("[buffer]", old.buffer != new.buffer),
        ("[clock]", old.clock != new.clock),
        ("[log]", old.log != new.log),
        ("[health]", old.health != new.health),
        ("[status_page]", old.status_page != new.status_page),
        ("[probe]", old.probe != new.probe),
        ("[uplink] enabled", old.uplink.enabled != new.uplink.enabled),
    ];
    c.needs_restart = restart.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn cfg(text: &str) -> AgentConfig {
        load_str("agent.toml", text).expect("config")
    }

    #[test]
    fn sensors_are_added_removed_and_changed_by_id() {
        let old = cfg("[sensors.a]\nkind = \"simulated\"\n[sensors.b]\nkind = \"simulated\"\n");
        let new = cfg("[sensors.b]\nkind = \"simulated\"\ninterval = \"2s\"\n[sensors.c]\nkind = \"simulated\"\n");
        let c = diff(&old, &new);
        assert_eq!(c.sensors_added, ["c"]);
        assert_eq!(c.sensors_removed, ["a"]);
        assert_eq!(c.sensors_changed, ["b"]);
        assert_eq!(c.restart_error(), None);
    }

    #[test]
    fn a_new_broker_is_live_but_a_new_buffer_path_or_device_id_needs_a_restart() {
        let old = cfg("[uplink]\nenabled = true\n");
        let c = diff(&old, &cfg("[uplink]\nenabled = true\nbroker = \"10.0.0.1:1883\"\n"));
        assert!(c.uplink && c.needs_restart.is_empty(), "{c:?}");
        let c = diff(&old, &cfg("[uplink]\nenabled = true\n[buffer]\npath = \"/tmp/x.db\"\n[device]\nid = \"x\"\n"));
        assert_eq!(c.needs_restart, ["[device]", "[buffer]"]);
        assert!(c.restart_error().is_some_and(|e| e.contains("need a restart")));
        assert!(diff(&old, &old).is_empty());
    }
}
