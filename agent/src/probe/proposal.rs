//! What a probe found, as a `[sensors.<id>]` entry for the fleet and a sentence for people.

use std::path::Path;

use toml::{Table, Value};

use crate::config::sensor::{AsciiFormat, RegisterFunction, SensorConfig};
use crate::config::{self, ConfigError};

/// What answered on the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Lines of one format; `example` is the last one, trimmed to 32 characters.
    Ascii { baud: u32, format: AsciiFormat, prefix: Option<String>, example: String },
    /// A Modbus slave that answered with the probe's register.
    Modbus { baud: u32, slave: u8, function: RegisterFunction, register: u16 },
}

impl Found {
    /// For people: "Modbus slave 1 at 9600 baud", "ASCII lines like R1234 at 9600 baud".
    pub fn summary(&self) -> String {
        match self {
            Found::Ascii { baud, example, .. } => format!("ASCII lines like {example} at {baud} baud"),
            Found::Modbus { baud, slave, .. } => format!("Modbus slave {slave} at {baud} baud"),
        }
    }
}

/// A proposed sensor: its id, its `[sensors.<id>]` TOML and a summary for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub sensor_id: String,
    pub toml: String,
    pub summary: String,
    pub found: Found,
}

/// A proposal the agent's own loader refused (a bug in the probe, never the sensor's fault).
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error("the proposed sensor is not valid TOML: {0}")]
    Render(#[from] toml::ser::Error),
    #[error("the proposed sensor does not load: {0}")]
    Invalid(#[from] ConfigError),
    #[error("the proposed sensor did not come out of the loader")]
    Missing,
}

/// A sensor id from a port's name: `ttyUSB1` -> `usb1`, `ttyACM0` -> `acm0`; anything
/// that does not make a valid id is `probed`.
pub fn sensor_id(port: &Path) -> String {
    let name = port.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_prefix("tty").unwrap_or(name).to_ascii_lowercase();
    let id: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c)).take(32).collect();
    if config::valid_sensor_id(&id) { id } else { "probed".to_owned() }
}

impl Proposal {
    /// The proposal for `found` on `port`, checked by loading it with
    /// [`config::load_str`] as a config of its own.
    pub fn new(port: &Path, found: Found) -> Result<Proposal, ProposalError> {
        let id = sensor_id(port);
        let mut sensor = Table::new();
        let mut line = Table::new();
        line.insert("path".into(), Value::String(port.display().to_string()));
        match &found {
            Found::Ascii { baud, format, prefix, .. } => {
                line.insert("baud".into(), Value::Integer(i64::from(*baud)));
                sensor.insert("kind".into(), Value::String("ascii".into()));
                let format = match format {
                    AsciiFormat::Prefixed => "prefixed",
                    AsciiFormat::Number => "number",
                    AsciiFormat::KeyValue => "key-value",
                };
                sensor.insert("format".into(), Value::String(format.into()));
                if let Some(p) = prefix {
                    sensor.insert("prefix".into(), Value::String(p.clone()));
                }
            }
            Found::Modbus { baud, slave, function, register } => {
                line.insert("baud".into(), Value::Integer(i64::from(*baud)));
                sensor.insert("kind".into(), Value::String("modbus".into()));
                sensor.insert("slave".into(), Value::Integer(i64::from(*slave)));
                let mut reg = Table::new();
                reg.insert("metric".into(), Value::String(format!("register_{register}")));
                let function = match function {
                    RegisterFunction::Holding => "holding",
                    RegisterFunction::Input => "input",
                };
                reg.insert("function".into(), Value::String(function.into()));
                reg.insert("address".into(), Value::Integer(i64::from(*register)));
                sensor.insert("registers".into(), Value::Array(vec![Value::Table(reg)]));
            }
        }
        sensor.insert("port".into(), Value::Table(line));
        let mut sensors = Table::new();
        sensors.insert(id.clone(), Value::Table(sensor));
        let mut root = Table::new();
        root.insert("sensors".into(), Value::Table(sensors));
        let toml = toml::to_string(&root)?;
        let summary = found.summary();
        let proposal = Proposal { sensor_id: id, toml, summary, found };
        proposal.check()?;
        Ok(proposal)
    }

    /// Loads the proposal as the agent would, and returns its sensor.
    pub fn check(&self) -> Result<SensorConfig, ProposalError> {
        let mut loaded = config::load_str("proposal.toml", &self.toml)?;
        loaded.sensors.remove(&self.sensor_id).ok_or(ProposalError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sensor::SensorConfig;

    #[test]
    fn a_sensor_id_comes_from_the_port_name() {
        assert_eq!(sensor_id(Path::new("/dev/ttyUSB1")), "usb1");
        assert_eq!(sensor_id(Path::new("/dev/ttyACM0")), "acm0");
        assert_eq!(sensor_id(Path::new("/dev/serial/by-id/usb-FTDI_x-if00")), "usb-ftdi_x-if00");
        assert_eq!(sensor_id(Path::new("/dev/tty")), "probed");
    }

    #[test]
    fn both_kinds_of_proposal_load_as_agent_config() {
        let port = Path::new("/dev/ttyUSB1");
        let ascii = Found::Ascii {
            baud: 9600,
            format: AsciiFormat::Prefixed,
            prefix: Some("R".into()),
            example: "R1234".into(),
        };
        let p = Proposal::new(port, ascii).expect("ascii proposal");
        assert_eq!(p.summary, "ASCII lines like R1234 at 9600 baud");
        assert!(p.toml.contains("[sensors.usb1]"), "{}", p.toml);
        assert!(
            matches!(p.check(), Ok(SensorConfig::Ascii(a)) if a.port.baud == 9600 && a.prefix.as_deref() == Some("R"))
        );

        let modbus = Found::Modbus { baud: 19200, slave: 2, function: RegisterFunction::Input, register: 7 };
        let p = Proposal::new(port, modbus).expect("modbus proposal");
        assert_eq!(p.summary, "Modbus slave 2 at 19200 baud");
        let Ok(SensorConfig::Modbus(m)) = p.check() else { panic!("not modbus: {}", p.toml) };
        assert_eq!((m.slave, m.port.baud, m.registers.len()), (2, 19200, 1));
        assert_eq!((m.registers[0].address, m.registers[0].function), (7, RegisterFunction::Input));
    }
}
