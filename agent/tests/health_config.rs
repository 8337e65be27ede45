//! The `[health]` section: defaults, validation, and mistakes named by file and line.

use std::time::Duration;

use simpul_agent::config::{self, ConfigError, HealthConfig};

fn problems(e: ConfigError) -> Vec<String> {
    e.problems().into_iter().map(|p| p.to_string()).collect()
}

#[test]
fn health_defaults_are_the_documented_values_and_no_metrics_server() {
    let c = config::load_str("agent.toml", "").expect("empty config");
    let h = &c.health;
    assert_eq!(h.heartbeat_interval, Duration::from_secs(60));
    assert_eq!(h.thermal_path.to_str(), Some("/sys/class/thermal/thermal_zone0/temp"));
    assert_eq!(h.throttled_path.to_str(), Some("/sys/devices/platform/soc/soc:firmware/get_throttled"));
    assert_eq!(h.proc_path.to_str(), Some("/proc"));
    assert_eq!(h.metrics_listen, None);
    assert_eq!(*h, HealthConfig::default());
}

#[test]
fn the_printed_default_config_loads_to_the_same_health_section() {
    let c = config::load_str("default.toml", config::DEFAULT_CONFIG).expect("the default config loads");
    assert_eq!(c.health, HealthConfig::default());
    assert!(config::DEFAULT_CONFIG.contains("[health]") && config::DEFAULT_CONFIG.contains("# metrics_listen = "));
}

#[test]
fn a_health_section_is_read() {
    let text =
        "[health]\nheartbeat_interval = \"5s\"\nproc_path = \"/tmp/proc\"\nmetrics_listen = \"127.0.0.1:9101\"\n";
    let c = config::load_str("agent.toml", text).expect("valid");
    assert_eq!(c.health.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(c.health.proc_path.to_str(), Some("/tmp/proc"));
    assert_eq!(c.health.metrics_listen, Some("127.0.0.1:9101".parse().expect("addr")));
}

#[test]
fn a_heartbeat_interval_under_a_second_is_named_by_file_line_and_key() {
    let p =
        problems(config::load_str("agent.toml", "[health]\n\nheartbeat_interval = \"500ms\"\n").expect_err("refused"));
    assert!(p.iter().any(|m| m.starts_with("agent.toml:3: health.heartbeat_interval: must be at least 1s")), "{p:?}");
}

#[test]
fn a_bad_metrics_address_or_an_unknown_health_key_is_refused_at_its_line() {
    let p =
        problems(config::load_str("agent.toml", "[health]\nmetrics_listen = \"localhost\"\n").expect_err("bad addr"));
    assert!(p[0].starts_with("agent.toml:2: health.metrics_listen:"), "{p:?}");
    let p = problems(config::load_str("agent.toml", "[health]\nheartbeat = \"1s\"\n").expect_err("typo"));
    assert!(p[0].starts_with("agent.toml:2: health.heartbeat: unknown field `heartbeat`"), "{p:?}");
}
