//! Control-plane JSON: round trips, forward compatibility, typed errors.

use std::collections::BTreeMap;

use simpul_protocol::control::{
    Ack, ConfigState, DesiredConfig, Event, Heartbeat, LinkHealth, ReportedConfig, SensorHealth, SensorState, Status,
    SystemHealth, Throttled,
};
use simpul_protocol::{BootId, Channel, ControlMessage, SeqRange};

fn round_trip<M: ControlMessage + PartialEq + std::fmt::Debug>(m: &M) -> String {
    let json = m.to_json().expect("serialises");
    assert_eq!(&M::from_json(&json).expect("parses"), m);
    String::from_utf8(json).expect("utf-8")
}

#[test]
fn every_message_round_trips_through_json() {
    round_trip(&Ack { watermark: 41 });
    round_trip(&Status { online: true, version: Some("0.1.0".into()), boot_id: Some(BootId([3; 16])) });
    round_trip(&DesiredConfig { version: 7, toml: "[sensors.level]\nport = \"/dev/ttyUSB0\"\n".into() });
    round_trip(&ReportedConfig { version: 7, state: ConfigState::RolledBack, error: Some("lost the fleet".into()) });
    let sensors = BTreeMap::from([(
        "level".to_owned(),
        SensorHealth {
            state: SensorState::Failing,
            last_reading_age_s: Some(30),
            last_values: BTreeMap::from([("level".to_owned(), 123.4)]),
            errors: BTreeMap::from([("crc".to_owned(), 3)]),
            error: Some("CRC".into()),
        },
    )]);
    round_trip(&Heartbeat {
        version: "0.1.0".into(),
        uptime_s: 60,
        buffer_depth: Some(3),
        oldest_unsent_age_s: Some(4),
        sensors,
        config_version: Some(7),
        system: SystemHealth {
            cpu_percent: Some(12.5),
            soc_temp_c: Some(61.2),
            throttled: Some(Throttled::from_raw(0x5_0005)),
            ..SystemHealth::default()
        },
        link: Some(LinkHealth { connected: true, connects: 2, watermark: Some(99), last_error: None }),
        cameras: BTreeMap::new(),
    });
    for event in [
        Event::ClockSynced { boot_id: BootId([1; 16]), offset_ms: 1_700_000_000_000, at_mono_ms: 9_000 },
        Event::SensorDisconnected { sensor: "rain".into() },
        Event::SensorConnected { sensor: "rain".into() },
        Event::SensorProposed {
            port: "/dev/ttyUSB1".into(),
            toml: "[sensors.usb1]\nkind = \"modbus\"\n".into(),
            summary: "Modbus slave 1 at 9600 baud".into(),
        },
        Event::ConfigRolledBack { version: 8, running: Some(7), reason: "no broker within 2m".into() },
        Event::BufferEvicted {
            counts: BTreeMap::from([("rain".to_owned(), 10)]),
            ranges: vec![SeqRange { first: 1, last: 10 }],
        },
    ] {
        round_trip(&event);
    }
}

#[test]
fn what_a_box_does_not_have_is_left_out_not_zeroed() {
    let json = round_trip(&Heartbeat { version: "0.1.0".into(), uptime_s: 5, ..Heartbeat::default() });
    assert_eq!(json, r#"{"version":"0.1.0","uptime_s":5}"#);
    assert_eq!(round_trip(&Status { online: false, ..Status::default() }), r#"{"online":false}"#);
}

#[test]
fn fields_and_variants_from_a_newer_version_are_ignored_or_unknown() {
    let hb = Heartbeat::from_json(
        br#"{"version":"9","uptime_s":1,"cpu_pct":12.5,"sensors":{"a":{"state":"sleeping","new":1}}}"#,
    )
    .expect("newer heartbeat parses");
    assert_eq!(hb.sensors["a"].state, SensorState::Unknown);
    assert_eq!(Event::from_json(br#"{"event":"camera_lost","camera":"gate"}"#).expect("parses"), Event::Unknown);
    let reported = ReportedConfig::from_json(br#"{"version":2,"state":"staged"}"#).expect("parses");
    assert_eq!(reported.state, ConfigState::Unknown);
}

#[test]
fn events_are_tagged_by_name() {
    let json = round_trip(&Event::SensorConnected { sensor: "level".into() });
    assert_eq!(json, r#"{"event":"sensor_connected","sensor":"level"}"#);
}

#[test]
fn malformed_json_is_a_typed_error_naming_the_message() {
    let err = Ack::from_json(b"{\"watermark\":-1}").expect_err("negative watermark");
    assert_eq!(err.message, "ack");
    assert!(err.to_string().starts_with("ack JSON: "), "{err}");
    assert!(DesiredConfig::from_json(b"").is_err());
    assert!(Status::from_json(&[0xff, 0xfe]).is_err());
}

#[test]
fn each_message_names_the_channel_the_topic_table_gives_it() {
    assert_eq!(Ack::CHANNEL, Channel::Ack);
    assert_eq!(Status::CHANNEL, Channel::Status);
    assert_eq!(Heartbeat::CHANNEL, Channel::Heartbeat);
    assert_eq!(DesiredConfig::CHANNEL, Channel::ConfigDesired);
    assert_eq!(ReportedConfig::CHANNEL, Channel::ConfigReported);
    assert_eq!(Event::CHANNEL, Channel::Events);
    assert!(!Channel::Ack.device_publishes() && !Channel::ConfigDesired.device_publishes());
}

#[test]
fn the_pi_throttle_word_decodes_now_and_since_boot() {
    let t = Throttled::from_raw(0x5_0005);
    assert!(t.under_voltage_now && t.throttled_now && !t.freq_capped_now);
    assert!(t.under_voltage_since_boot && t.throttled_since_boot && !t.soft_temp_limit_since_boot);
    assert_eq!(Throttled::from_raw(0), Throttled::default());
}
