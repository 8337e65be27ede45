//! A config mistake is reported with its file, line and key, and never half-applied.

use std::fs;
use std::path::Path;

use simpul_agent::config::{self, AgentConfig, ConfigError, DEFAULT_CONFIG, SensorConfig};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(&p, text).expect("write");
    p
}

fn problems(e: ConfigError) -> Vec<String> {
    e.problems().iter().map(ToString::to_string).collect()
}

const RANGER: &str = r#"
[sensors.river]
kind = "ascii"
port = { path = "/dev/ttyUSB0" }
format = "prefixed"
prefix = "R"
"#;

#[test]
fn the_printed_default_config_is_exactly_the_built_in_default() {
    let c = config::load_str("default.toml", DEFAULT_CONFIG).expect("default parses");
    assert_eq!(c, AgentConfig::default());
}

#[test]
fn every_commented_example_in_the_default_config_is_valid() {
    let uncommented: String = DEFAULT_CONFIG
        .lines()
        .map(|l| l.strip_prefix("# ").filter(|r| r.starts_with('[') || r.contains(" = ")).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let c = config::load_str("uncommented.toml", &uncommented).expect("examples parse");
    assert_eq!(c.sensors.len(), 3);
    assert!(matches!(c.sensors["tank"], SensorConfig::Modbus(_)));
}

#[test]
fn an_unknown_field_names_the_file_line_and_key() {
    let text = "[buffer]\nflush_interval = \"1s\"\nflush_intervall = \"2s\"\n";
    let e = config::load_str("agent.toml", text).expect_err("typo refused");
    let p = problems(e);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("agent.toml:3: buffer.flush_intervall: unknown field `flush_intervall`"), "{p:?}");
}

#[test]
fn a_wrong_type_names_the_file_line_and_key() {
    let text = format!(
        "{RANGER}\n[sensors.tank]\nkind = \"modbus\"\nport = {{ path = \"/dev/ttyUSB1\", baud = \"9600\" }}\nslave = 1\nregisters = []\n"
    );
    let e = config::load_str("agent.toml", &text).expect_err("string baud refused");
    let p = problems(e);
    assert!(
        p.iter().any(|l| l.starts_with("agent.toml:10: sensors.tank.port.baud: invalid type: string \"9600\"")),
        "{p:?}"
    );
}

#[test]
fn an_unknown_field_deep_in_a_register_map_is_found() {
    let text = "[sensors.tank]\nkind = \"modbus\"\nport = { path = \"/dev/ttyUSB1\" }\nslave = 1\n[[sensors.tank.registers]]\nmetric = \"level\"\naddress = 0\nscael = 0.1\n";
    let p = problems(config::load_str("agent.toml", text).expect_err("typo refused"));
    assert!(p[0].starts_with("agent.toml:8: sensors.tank.registers[0].scael: unknown field `scael`"), "{p:?}");
}

#[test]
fn an_unknown_sensor_kind_lists_the_kinds() {
    let text = "[sensors.x]\nkind = \"modbsu\"\n";
    let p = problems(config::load_str("agent.toml", text).expect_err("refused"));
    assert_eq!(
        p,
        ["agent.toml:2: sensors.x.kind: unknown sensor kind `modbsu`, expected one of ascii, modbus, simulated"]
    );
}

#[test]
fn a_bad_drop_in_is_named_not_the_main_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write(dir.path(), "agent.toml", RANGER);
    write(dir.path(), "agent.d/10-site.toml", "[device]\nsite = \"Ciwedus\"\n");
    write(dir.path(), "agent.d/20-fleet.toml", "[sensors.river]\n\nport = { path = \"/dev/ttyUSB0\", baud = -1 }\n");
    let p = problems(config::load(&main).expect_err("negative baud refused"));
    let want = format!("{}:3: sensors.river.port.baud", dir.path().join("agent.d/20-fleet.toml").display());
    assert!(p[0].starts_with(&want), "{p:?} should start with {want}");
}

#[test]
fn a_drop_in_that_is_not_toml_is_named_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write(dir.path(), "agent.toml", RANGER);
    write(dir.path(), "agent.d/50-broken.toml", "[device]\nsite = \"unterminated\n");
    let p = problems(config::load(&main).expect_err("syntax refused"));
    let want = format!("{}:2: not valid TOML", dir.path().join("agent.d/50-broken.toml").display());
    assert!(p[0].starts_with(&want), "{p:?}");
}

#[test]
fn drop_ins_merge_in_sorted_order_key_by_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write(dir.path(), "agent.toml", &format!("[buffer]\nquota = \"1 MiB\"\n{RANGER}"));
    write(dir.path(), "agent.d/20-b.toml", "[sensors.river]\nport = { path = \"/dev/ttyB\" }\n");
    write(
        dir.path(),
        "agent.d/10-a.toml",
        "[sensors.river]\nport = { path = \"/dev/ttyA\", baud = 19200 }\n[buffer]\neviction = \"thin-oldest\"\n",
    );
    write(dir.path(), "agent.d/README", "not toml, ignored");
    write(dir.path(), "agent.d/.hidden.toml", "garbage [");
    let (c, src) = config::load(&main).expect("loads");
    assert_eq!(src.files.len(), 3);
    let SensorConfig::Ascii(a) = &c.sensors["river"] else { panic!("ascii") };
    // Tables, inline ones too, merge key by key: 20-b changed the path, 10-a's baud stays.
    assert_eq!((a.port.path.to_str(), a.port.baud), (Some("/dev/ttyB"), 19200));
    assert_eq!(a.prefix.as_deref(), Some("R"));
    assert_eq!(c.buffer.quota.as_u64(), 1024 * 1024);
    assert_eq!(c.buffer.eviction, config::Eviction::ThinOldest);
}

#[test]
fn semantic_mistakes_are_all_listed_at_once() {
    let text = "[buffer]\nflush_interval = \"0s\"\n[sensors.tank]\nkind = \"modbus\"\nport = { path = \"/dev/ttyUSB1\", stop_bits = 3 }\nslave = 0\nregisters = []\n";
    let p = problems(config::load_str("agent.toml", text).expect_err("refused"));
    for key in ["buffer.flush_interval", "sensors.tank.port.stop_bits", "sensors.tank.slave", "sensors.tank.registers"]
    {
        assert!(p.iter().any(|l| l.contains(key)), "{key} missing from {p:?}");
    }
}

#[test]
fn two_sensors_on_one_port_must_be_modbus_slaves_with_distinct_ids() {
    let text = format!(
        "{RANGER}\n[sensors.tank]\nkind = \"modbus\"\nport = {{ path = \"/dev/ttyUSB0\" }}\nslave = 1\n[[sensors.tank.registers]]\nmetric = \"level\"\naddress = 0\n"
    );
    let p = problems(config::load_str("agent.toml", &text).expect_err("refused"));
    assert!(p[0].contains("only Modbus sensors can share a port"), "{p:?}");
}

#[test]
fn a_missing_main_file_is_a_read_error_naming_it() {
    let e = config::load(Path::new("/nonexistent/simpul/agent.toml")).expect_err("missing");
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/simpul/agent.toml"));
}

#[test]
fn a_camera_url_holding_credentials_is_refused_so_the_password_never_reaches_a_log() {
    let text = "[cameras.gate]\nurl = \"rtsp://admin:rahasia@192.168.1.64/stream1\"\n";
    let p = problems(config::load_str("cameras.toml", text).expect_err("credentials in the URL refused"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("cameras.toml:2: cameras.gate.url: must not hold credentials"), "{p:?}");
    assert!(!p[0].contains("rahasia"), "the problem repeats the password: {p:?}");
}

#[test]
fn camera_mistakes_name_the_key() {
    let text = "[cameras.Gate]\nurl = \"http://192.168.1.64/\"\npassword = \"x\"\n";
    let p = problems(config::load_str("cameras.toml", text).expect_err("refused"));
    assert!(p.iter().any(|m| m.contains("cameras.Gate: a camera id is")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("cameras.Gate.url: must be an rtsp:// address")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("cameras.Gate.username: a password needs a username")), "{p:?}");
}

#[test]
fn a_camera_password_is_printed_and_debugged_as_hidden() {
    let text = "[cameras.gate]\nurl = \"rtsp://192.168.1.64/stream1\"\nusername = \"admin\"\npassword = \"rahasia\"\n";
    let c = config::load_str("cameras.toml", text).expect("a good camera");
    assert_eq!(c.cameras["gate"].password.as_ref().map(|p| p.expose()), Some("rahasia"));
    let printed = toml::to_string(&c).expect("prints");
    assert!(printed.contains("password = \"(hidden)\"") && !printed.contains("rahasia"), "{printed}");
    assert!(!format!("{c:?}").contains("rahasia"));
}
