//! `[probe]`: how the status page probes a newly plugged serial port
//! (docs/design/status-page.md, "Probing a new port").

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[probe]`: the baud rates, Modbus slave ids and the one register tried on a new port,
/// and how long each try waits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Baud rates tried, in order. Default `[9600, 19200, 4800, 38400, 57600, 115200,
    /// 2400, 1200]`.
    #[serde(default = "defaults::bauds")]
    pub bauds: Vec<u32>,
    /// Modbus slave ids asked at each baud, 1 to 247. Default `[1, 2, 3]`.
    #[serde(default = "defaults::modbus_slaves")]
    pub modbus_slaves: Vec<u8>,
    /// The register read from each slave (0-based, as on the wire). Default 0.
    #[serde(default)]
    pub modbus_register: u16,
    /// The read function: 3 (holding registers) or 4 (input registers). Default 3.
    #[serde(default = "defaults::modbus_function")]
    pub modbus_function: u8,
    /// How long to listen for ASCII lines at each baud. Default 2s.
    #[serde(default = "defaults::listen_for", with = "humantime_serde")]
    pub listen_for: Duration,
    /// How long to wait for each Modbus reply. Default 200ms.
    #[serde(default = "defaults::modbus_timeout", with = "humantime_serde")]
    pub modbus_timeout: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            bauds: defaults::bauds(),
            modbus_slaves: defaults::modbus_slaves(),
            modbus_register: 0,
            modbus_function: defaults::modbus_function(),
            listen_for: defaults::listen_for(),
            modbus_timeout: defaults::modbus_timeout(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn bauds() -> Vec<u32> {
        vec![9600, 19200, 4800, 38400, 57600, 115200, 2400, 1200]
    }
    pub fn modbus_slaves() -> Vec<u8> {
        vec![1, 2, 3]
    }
    pub fn modbus_function() -> u8 {
        3
    }
    pub fn listen_for() -> Duration {
        Duration::from_secs(2)
    }
    pub fn modbus_timeout() -> Duration {
        Duration::from_millis(200)
    }
}
