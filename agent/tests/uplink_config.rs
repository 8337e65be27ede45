//! The `[uplink]` section: defaults, validation, and mistakes named by file and line.

use std::time::Duration;

use simpul_agent::config::{self, ConfigError, UplinkConfig};

fn problems(e: ConfigError) -> Vec<String> {
    e.problems().into_iter().map(|p| p.to_string()).collect()
}

#[test]
fn the_uplink_is_off_by_default_with_the_documented_values() {
    let c = config::load_str("agent.toml", "").expect("empty config");
    let u = &c.uplink;
    assert!(!u.enabled);
    assert_eq!(u.broker_host_port(), Some(("127.0.0.1", 1883)));
    assert_eq!((u.keepalive, u.batch_interval), (Duration::from_secs(30), Duration::from_secs(1)));
    assert_eq!((u.batch_max, u.max_inflight), (600, 4));
    assert_eq!((u.reconnect_min, u.reconnect_max), (Duration::from_secs(1), Duration::from_secs(60)));
    assert_eq!(*u, UplinkConfig::default());
}

#[test]
fn an_uplink_section_is_read() {
    let text = "[uplink]\nenabled = true\nbroker = \"fleet.example:8883\"\nbatch_max = 100\nmax_inflight = 8\n";
    let c = config::load_str("agent.toml", text).expect("valid");
    assert!(c.uplink.enabled);
    assert_eq!(c.uplink.broker_host_port(), Some(("fleet.example", 8883)));
    assert_eq!((c.uplink.batch_max, c.uplink.max_inflight), (100, 8));
}

#[test]
fn bad_uplink_values_are_named_by_file_line_and_key() {
    let text = "[uplink]\nbroker = \"no-port\"\nkeepalive = \"500ms\"\nbatch_max = 0\nmax_inflight = 0\n\
                reconnect_min = \"10s\"\nreconnect_max = \"1s\"\n";
    let p = problems(config::load_str("agent.toml", text).expect_err("refused"));
    for (line, key) in [(2, "broker"), (3, "keepalive"), (4, "batch_max"), (5, "max_inflight"), (7, "reconnect_max")] {
        let want = format!("agent.toml:{line}: uplink.{key}:");
        assert!(p.iter().any(|m| m.starts_with(&want)), "no {want:?} in {p:?}");
    }
}

#[test]
fn an_unknown_uplink_key_is_refused() {
    let p = problems(config::load_str("agent.toml", "[uplink]\nbrokr = \"x:1\"\n").expect_err("typo"));
    assert!(p[0].starts_with("agent.toml:2: uplink.brokr: unknown field `brokr`"), "{p:?}");
}
