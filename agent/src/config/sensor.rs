//! `[sensors.<id>]`: one table per sensor, its `kind` choosing the driver.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One sensor. In TOML the `kind` key picks the variant; the loader checks each kind's
/// fields on their own so that a mistake is reported at its exact key and line.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SensorConfig {
    /// Plain ASCII lines on a serial port.
    Ascii(AsciiSensorConfig),
    /// Modbus RTU registers polled on a serial port (RS-485 or USB).
    Modbus(ModbusSensorConfig),
    /// A made-up water level, for the demo and tests.
    Simulated(SimulatedSensorConfig),
}

impl SensorConfig {
    /// The kinds, as written in `kind = "..."`.
    pub const KINDS: [&'static str; 3] = ["ascii", "modbus", "simulated"];

    /// The serial port this sensor uses, if any.
    pub fn port(&self) -> Option<&SerialPortConfig> {
        match self {
            SensorConfig::Ascii(a) => Some(&a.port),
            SensorConfig::Modbus(m) => Some(&m.port),
            SensorConfig::Simulated(_) => None,
        }
    }
}

/// A serial line: `port = { path = "/dev/ttyUSB0", baud = 9600 }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialPortConfig {
    /// Device path; a stable `/dev/serial/by-id/...` link is best.
    pub path: PathBuf,
    /// Baud rate. Default 9600.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Data bits, 5 to 8. Default 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Parity. Default `none`.
    #[serde(default)]
    pub parity: Parity,
    /// Stop bits, 1 or 2. Default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

/// Serial parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// How a measured number becomes a value: `value = raw * scale + offset`, rounded to
/// `decimals` places (which is also what lets the wire format send it as an integer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMapping {
    /// Metric name. Default: the ASCII key, or `value`.
    #[serde(default)]
    pub metric: Option<String>,
    /// Unit. Default empty.
    #[serde(default)]
    pub unit: String,
    /// Multiplier. Default 1.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Decimal places kept (the sensor's resolution), 0 to 9. Default 2.
    #[serde(default = "default_decimals")]
    pub decimals: u8,
}

/// `value = raw * scale + offset`, rounded to `decimals` places: how every driver turns a
/// measured number into a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    pub scale: f64,
    pub offset: f64,
    pub decimals: u8,
}

impl Scaling {
    /// The value of `raw`.
    pub fn apply(&self, raw: f64) -> f64 {
        crate::sample::round_to_decimals(raw * self.scale + self.offset, self.decimals)
    }
}

impl ValueMapping {
    /// How this mapping scales a number.
    pub fn scaling(&self) -> Scaling {
        Scaling { scale: self.scale, offset: self.offset, decimals: self.decimals }
    }
}

impl Default for ValueMapping {
    fn default() -> Self {
        ValueMapping { metric: None, unit: String::new(), scale: 1.0, offset: 0.0, decimals: default_decimals() }
    }
}

/// `kind = "ascii"`: a device that writes one reading per line (`\r`, `\n` or `\r\n`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsciiSensorConfig {
    pub port: SerialPortConfig,
    /// The line format.
    pub format: AsciiFormat,
    /// For `format = "prefixed"`: the text before the number (`R` for `R1234`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// For `prefixed` and `number`: how the one number becomes a value.
    #[serde(default)]
    pub value: ValueMapping,
    /// For `key-value`: per key, how its number becomes a value. Empty: every key is
    /// passed on as its own metric, unscaled. Not empty: other keys are ignored.
    #[serde(default)]
    pub fields: BTreeMap<String, ValueMapping>,
    /// Longest line accepted; longer runs without a terminator count as garbage. Default 256.
    #[serde(default = "default_max_line")]
    pub max_line: usize,
}

/// ASCII line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AsciiFormat {
    /// A fixed prefix and a number: an ultrasonic ranger's `R1234`.
    Prefixed,
    /// A bare number: `123.4`.
    Number,
    /// `key=value` pairs separated by spaces, commas or semicolons: `level=123.4 rain=0.2`.
    KeyValue,
}

/// `kind = "modbus"`: a Modbus RTU slave whose registers are polled.
/// Several sensors may name the same port (an RS-485 bus); they take turns on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusSensorConfig {
    pub port: SerialPortConfig,
    /// Slave id, 1 to 247.
    pub slave: u8,
    /// How often the registers are read. Default 10s.
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long to wait for a response. Default 1s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The register map.
    pub registers: Vec<RegisterConfig>,
}

/// One value in a Modbus register map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// Metric name.
    pub metric: String,
    /// `holding` (function 3) or `input` (function 4). Default `holding`.
    #[serde(default)]
    pub function: RegisterFunction,
    /// Register address (0-based, as on the wire).
    pub address: u16,
    /// How the register(s) hold the number. Default `u16`.
    #[serde(default, rename = "type")]
    pub data_type: DataType,
    /// For 32-bit types: which 16-bit word comes first. Default `big` (high word first).
    #[serde(default)]
    pub word_order: WordOrder,
    /// Unit. Default empty.
    #[serde(default)]
    pub unit: String,
    /// Multiplier. Default 1.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Decimal places kept, 0 to 9. Default 2.
    #[serde(default = "default_decimals")]
    pub decimals: u8,
}

impl RegisterConfig {
    /// How this register's number is scaled.
    pub fn scaling(&self) -> Scaling {
        Scaling { scale: self.scale, offset: self.offset, decimals: self.decimals }
    }
}

/// Modbus read function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RegisterFunction {
    /// Function 3, read holding registers.
    #[default]
    Holding,
    /// Function 4, read input registers.
    Input,
}

/// How a number sits in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DataType {
    #[default]
    U16,
    I16,
    U32,
    I32,
    F32,
}

impl DataType {
    /// How many 16-bit registers the type spans.
    pub fn registers(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
        }
    }
}

/// Word order of 32-bit values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WordOrder {
    /// High word in the lower register (the Modbus convention).
    #[default]
    Big,
    /// Low word first ("word swapped").
    Little,
}

/// `kind = "simulated"`: a water level that rises and falls with noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedSensorConfig {
    /// Time between readings. Default 1s.
    #[serde(default = "default_sim_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Metric name. Default `level`.
    #[serde(default = "default_sim_metric")]
    pub metric: String,
    /// Unit. Default `cm`.
    #[serde(default = "default_sim_unit")]
    pub unit: String,
    /// Middle of the wave. Default 120.
    #[serde(default = "default_sim_base")]
    pub base: f64,
    /// Height of the wave above and below `base`. Default 30.
    #[serde(default = "default_sim_amplitude")]
    pub amplitude: f64,
    /// Length of one rise and fall. Default 1h.
    #[serde(default = "default_sim_period", with = "humantime_serde")]
    pub period: Duration,
    /// Standard deviation of the noise. Default 0.3.
    #[serde(default = "default_sim_noise")]
    pub noise: f64,
    /// Decimal places kept. Default 1.
    #[serde(default = "default_sim_decimals")]
    pub decimals: u8,
    /// Random seed; the same seed gives the same series. Default: random.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn one() -> f64 {
    1.0
}
fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_decimals() -> u8 {
    2
}
fn default_max_line() -> usize {
    256
}
fn default_poll() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_sim_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_sim_metric() -> String {
    "level".to_owned()
}
fn default_sim_unit() -> String {
    "cm".to_owned()
}
fn default_sim_base() -> f64 {
    120.0
}
fn default_sim_amplitude() -> f64 {
    30.0
}
fn default_sim_period() -> Duration {
    Duration::from_secs(3600)
}
fn default_sim_noise() -> f64 {
    0.3
}
fn default_sim_decimals() -> u8 {
    1
}
