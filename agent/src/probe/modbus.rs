//! Asking Modbus slave ids for one register.

use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::Slave;
use tokio_util::sync::CancellationToken;

use super::Found;
use crate::config::ProbeConfig;
use crate::config::sensor::{RegisterFunction, SerialPortConfig};
use crate::sensor::port;

/// The configured function as the register map writes it (3 holding, 4 input).
pub fn function(code: u8) -> RegisterFunction {
    if code == 4 { RegisterFunction::Input } else { RegisterFunction::Holding }
}

/// Opens `port` and asks each of `cfg.modbus_slaves` for `cfg.modbus_register`, each under
/// `cfg.modbus_timeout`. `Ok(Some)` for the first slave that answers with the register.
pub async fn ask(
    port: &SerialPortConfig,
    cfg: &ProbeConfig,
    shutdown: &CancellationToken,
) -> std::io::Result<Option<Found>> {
    let serial = port::open(port)?;
    let function = function(cfg.modbus_function);
    for &slave in &cfg.modbus_slaves {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        // A fresh client on empty input for each id: no half reply to a previous
        // question can be taken for this one's answer.
        serial.discard_input_buffer()?;
        let mut ctx: Context = tokio_modbus::client::rtu::attach_slave(serial.try_clone()?, Slave(slave));
        let address = cfg.modbus_register;
        let request = async {
            match function {
                RegisterFunction::Holding => ctx.read_holding_registers(address, 1).await,
                RegisterFunction::Input => ctx.read_input_registers(address, 1).await,
            }
        };
        let reply = tokio::select! {
            r = tokio::time::timeout(cfg.modbus_timeout, request) => r,
            () = shutdown.cancelled() => return Ok(None),
        };
        match reply {
            Ok(Ok(Ok(words))) if words.len() == 1 => {
                return Ok(Some(Found::Modbus { baud: port.baud, slave, function, register: address }));
            }
            Ok(Err(tokio_modbus::Error::Transport(e))) => return Err(e),
            // No reply, a corrupt one, an exception or the wrong shape: not this id.
            _ => tracing::debug!(baud = port.baud, slave, "probe: no usable Modbus reply"),
        }
    }
    Ok(None)
}
