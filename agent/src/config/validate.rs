//! Checks that types alone cannot make: ranges, names, and sensors that share a port.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::error::{self, Problem};
use super::provenance::{KeyPath, Provenance};
use super::sensor::{AsciiFormat, ModbusSensorConfig, SensorConfig, SerialPortConfig, ValueMapping};
use super::{AgentConfig, ProbeConfig, UplinkConfig};

/// Every problem found; empty when the config is good.
pub fn check(c: &AgentConfig, prov: &Provenance) -> Vec<Problem> {
    let mut v = Checker { prov, problems: Vec::new() };
    let root = KeyPath::default();
    let buffer = root.key("buffer");
    let fi = c.buffer.flush_interval;
    v.ensure(
        fi > Duration::ZERO && fi <= Duration::from_secs(60),
        &buffer.key("flush_interval"),
        "must be more than 0s and at most 60s",
    );
    v.ensure(c.buffer.quota.as_u64() >= 64 * 1024, &buffer.key("quota"), "must be at least 64 KiB");
    let retry = root.key("sensor_retry");
    let r = &c.sensor_retry;
    v.ensure(r.min_delay > Duration::ZERO, &retry.key("min_delay"), "must be more than 0s");
    v.ensure(r.min_delay <= r.max_delay, &retry.key("max_delay"), "must not be shorter than min_delay");
    v.uplink(&c.uplink, &root.key("uplink"));
    let hb = c.health.heartbeat_interval;
    v.ensure(hb >= Duration::from_secs(1), &root.key("health").key("heartbeat_interval"), "must be at least 1s");
    let rb = c.remote_config.rollback_after;
    v.ensure(rb >= Duration::from_secs(1), &root.key("remote_config").key("rollback_after"), "must be at least 1s");
    v.probe(&c.probe, &root.key("probe"));
    let trust = root.key("trust");
    if let Some(fleet) = &c.trust.fleet {
        v.ensure(fleet.starts_with("https://"), &trust.key("fleet"), "must be an https:// address");
    }
    v.ensure(c.trust.renew_before >= Duration::from_secs(60), &trust.key("renew_before"), "must be at least 1m");
    let update = root.key("update");
    for key in &c.update.keys {
        if let Err(e) = simpul_protocol::release::parse_public_key(key) {
            v.problem(&update.key("keys"), format!("{key:?}: {e}"));
        }
    }
    v.ensure(c.update.trial_timeout >= Duration::from_secs(1), &update.key("trial_timeout"), "must be at least 1s");
    v.ensure(c.update.crash_limit >= 1, &update.key("crash_limit"), "must be at least 1");
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        v.problem(&root.key("log").key("level"), format!("not a log filter: {e}"));
    }
    for (id, s) in &c.sensors {
        let at = root.key("sensors").key(id);
        v.ensure(valid_sensor_id(id), &at, "a sensor id is 1-32 of a-z, 0-9, '-' and '_'");
        v.sensor(s, &at);
    }
    v.shared_ports(c);
    let relay = root.key("camera_relay");
    let r = &c.camera_relay;
    v.ensure(r.probe_interval >= Duration::from_secs(1), &relay.key("probe_interval"), "must be at least 1s");
    v.ensure(r.connect_timeout >= Duration::from_secs(1), &relay.key("connect_timeout"), "must be at least 1s");
    v.ensure(r.reconnect_min > Duration::ZERO, &relay.key("reconnect_min"), "must be more than 0s");
    v.ensure(r.reconnect_min <= r.reconnect_max, &relay.key("reconnect_max"), "must not be shorter than reconnect_min");
    for (id, cam) in &c.cameras {
        let at = root.key("cameras").key(id);
        v.ensure(valid_sensor_id(id), &at, "a camera id is 1-32 of a-z, 0-9, '-' and '_'");
        v.camera(cam, &at);
    }
    v.problems
}

/// Sensor ids appear in readings and topics: keep them plain.
pub fn valid_sensor_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

struct Checker<'a> {
    prov: &'a Provenance,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.problems.push(error::at(self.prov, at, message));
    }

    fn ensure(&mut self, ok: bool, at: &KeyPath, message: &str) {
        if !ok {
            self.problem(at, message);
        }
    }

    fn uplink(&mut self, u: &UplinkConfig, at: &KeyPath) {
        self.ensure(u.broker_host_port().is_some(), &at.key("broker"), "must be host:port, such as \"127.0.0.1:1883\"");
        let ka = u.keepalive;
        let whole = ka.subsec_nanos() == 0 && (1..=u64::from(u16::MAX)).contains(&ka.as_secs());
        self.ensure(whole, &at.key("keepalive"), "must be whole seconds from 1s to 65535s");
        let ct = u.connect_timeout;
        let whole = ct.subsec_nanos() == 0 && ct.as_secs() >= 1;
        self.ensure(whole, &at.key("connect_timeout"), "must be whole seconds, at least 1s");
        let max = simpul_protocol::batch::MAX_READINGS;
        self.ensure((1..=max).contains(&u.batch_max), &at.key("batch_max"), "must be from 1 to 100000");
        let bi = u.batch_interval;
        self.ensure(
            bi > Duration::ZERO && bi <= Duration::from_secs(60),
            &at.key("batch_interval"),
            "must be more than 0s and at most 60s",
        );
        self.ensure((1..=1000).contains(&u.max_inflight), &at.key("max_inflight"), "must be from 1 to 1000");
        self.ensure(u.ack_timeout >= Duration::from_secs(1), &at.key("ack_timeout"), "must be at least 1s");
        self.ensure(u.reconnect_min > Duration::ZERO, &at.key("reconnect_min"), "must be more than 0s");
        self.ensure(
            u.reconnect_min <= u.reconnect_max,
            &at.key("reconnect_max"),
            "must not be shorter than reconnect_min",
        );
    }

    fn camera(&mut self, cam: &super::CameraConfig, at: &KeyPath) {
        match url::Url::parse(&cam.url) {
            Err(e) => self.problem(&at.key("url"), format!("not an address: {e}")),
            Ok(u) if u.scheme() != "rtsp" => {
                self.problem(&at.key("url"), "must be an rtsp:// address, such as \"rtsp://192.168.1.64:554/stream1\"")
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => self.problem(
                &at.key("url"),
                "must not hold credentials: put them in username and password, which are never printed",
            ),
            Ok(u) if u.host_str().is_none_or(str::is_empty) => self.problem(&at.key("url"), "names no host"),
            Ok(_) => {}
        }
        if cam.password.is_some() && cam.username.is_none() {
            self.problem(&at.key("username"), "a password needs a username");
        }
    }

    fn sensor(&mut self, s: &SensorConfig, at: &KeyPath) {
        if let Some(port) = s.port() {
            self.port(port, &at.key("port"));
        }
        match s {
            SensorConfig::Ascii(a) => {
                if a.format == AsciiFormat::Prefixed && a.prefix.as_deref().is_none_or(str::is_empty) {
                    self.problem(&at.key("prefix"), "format = \"prefixed\" needs a prefix, such as \"R\"");
                }
                self.ensure((8..=4096).contains(&a.max_line), &at.key("max_line"), "must be from 8 to 4096");
                self.mapping(&a.value, &at.key("value"));
                for (k, m) in &a.fields {
                    self.mapping(m, &at.key("fields").key(k));
                }
            }
            SensorConfig::Modbus(m) => self.modbus(m, at),
            SensorConfig::Simulated(sim) => {
                self.ensure(sim.interval > Duration::ZERO, &at.key("interval"), "must be more than 0s");
                self.ensure(sim.period > Duration::ZERO, &at.key("period"), "must be more than 0s");
                self.ensure(sim.noise >= 0.0 && sim.noise.is_finite(), &at.key("noise"), "must be 0 or more");
                self.decimals(sim.decimals, &at.key("decimals"));
            }
        }
    }

    fn probe(&mut self, p: &ProbeConfig, at: &KeyPath) {
        self.ensure(!p.bauds.is_empty() && !p.bauds.contains(&0), &at.key("bauds"), "must list baud rates above 0");
        let slaves_ok = p.modbus_slaves.iter().all(|s| (1..=247).contains(s));
        self.ensure(slaves_ok, &at.key("modbus_slaves"), "Modbus slave ids are from 1 to 247");
        self.ensure(matches!(p.modbus_function, 3 | 4), &at.key("modbus_function"), "must be 3 or 4");
        self.ensure(p.listen_for > Duration::ZERO, &at.key("listen_for"), "must be more than 0s");
        self.ensure(p.modbus_timeout > Duration::ZERO, &at.key("modbus_timeout"), "must be more than 0s");
    }

    fn port(&mut self, p: &SerialPortConfig, at: &KeyPath) {
        self.ensure(!p.path.as_os_str().is_empty(), &at.key("path"), "must name a device, such as /dev/ttyUSB0");
        self.ensure(p.baud > 0, &at.key("baud"), "must be more than 0");
        self.ensure((5..=8).contains(&p.data_bits), &at.key("data_bits"), "must be 5, 6, 7 or 8");
        self.ensure(matches!(p.stop_bits, 1 | 2), &at.key("stop_bits"), "must be 1 or 2");
    }

    fn mapping(&mut self, m: &ValueMapping, at: &KeyPath) {
        self.ensure(m.scale.is_finite() && m.scale != 0.0, &at.key("scale"), "must be a finite number other than 0");
        self.ensure(m.offset.is_finite(), &at.key("offset"), "must be a finite number");
        self.decimals(m.decimals, &at.key("decimals"));
    }

    fn decimals(&mut self, d: u8, at: &KeyPath) {
        self.ensure(d <= 9, at, "must be from 0 to 9");
    }

    fn modbus(&mut self, m: &ModbusSensorConfig, at: &KeyPath) {
        self.ensure((1..=247).contains(&m.slave), &at.key("slave"), "a Modbus slave id is from 1 to 247");
        self.ensure(m.poll_interval > Duration::ZERO, &at.key("poll_interval"), "must be more than 0s");
        self.ensure(m.timeout > Duration::ZERO, &at.key("timeout"), "must be more than 0s");
        self.ensure(m.timeout < m.poll_interval, &at.key("timeout"), "must be shorter than poll_interval");
        self.ensure(!m.registers.is_empty(), &at.key("registers"), "needs at least one register");
        let mut metrics = BTreeSet::new();
        for (i, r) in m.registers.iter().enumerate() {
            let rat = at.key("registers").index(i);
            if !metrics.insert(r.metric.as_str()) {
                self.problem(&rat.key("metric"), format!("metric `{}` appears twice in this sensor", r.metric));
            }
            let end = u32::from(r.address) + u32::from(r.data_type.registers());
            self.ensure(end <= 65536, &rat.key("address"), "the value runs past register 65535");
            self.ensure(
                r.scale.is_finite() && r.scale != 0.0,
                &rat.key("scale"),
                "must be a finite number other than 0",
            );
            self.ensure(r.offset.is_finite(), &rat.key("offset"), "must be a finite number");
            self.decimals(r.decimals, &rat.key("decimals"));
        }
    }

    /// Sensors may share a port only as Modbus slaves on one bus, with one line setting
    /// and distinct slave ids.
    fn shared_ports(&mut self, c: &AgentConfig) {
        let mut by_path: BTreeMap<PathBuf, Vec<(&String, &SensorConfig)>> = BTreeMap::new();
        for (id, s) in &c.sensors {
            if let Some(p) = s.port() {
                by_path.entry(p.path.clone()).or_default().push((id, s));
            }
        }
        for (path, users) in by_path.into_iter().filter(|(_, u)| u.len() > 1) {
            let names: Vec<&str> = users.iter().map(|(id, _)| id.as_str()).collect();
            let (last_id, _) = users[users.len() - 1];
            let at = KeyPath::default().key("sensors").key(last_id).key("port").key("path");
            let all_modbus: Vec<&ModbusSensorConfig> = users
                .iter()
                .filter_map(|(_, s)| match s {
                    SensorConfig::Modbus(m) => Some(m),
                    _ => None,
                })
                .collect();
            if all_modbus.len() != users.len() {
                self.problem(
                    &at,
                    format!("{} is used by {}: only Modbus sensors can share a port", path.display(), names.join(", ")),
                );
                continue;
            }
            let first = &all_modbus[0].port;
            if all_modbus.iter().any(|m| m.port != *first) {
                self.problem(
                    &at,
                    format!(
                        "sensors {} share {} but set the line differently (baud, parity, bits)",
                        names.join(", "),
                        path.display()
                    ),
                );
            }
            let mut slaves = BTreeSet::new();
            if !all_modbus.iter().all(|m| slaves.insert(m.slave)) {
                self.problem(&at, format!("sensors {} on {} use the same slave id", names.join(", "), path.display()));
            }
        }
    }
}
