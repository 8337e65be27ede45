//! Opening a serial port the way `[sensors.<id>.port]` says.

use std::io;

use serial2_tokio::{CharSize, FlowControl, Parity as SerialParity, SerialPort, Settings, StopBits};

use crate::config::sensor::{Parity, SerialPortConfig};

/// Opens `cfg.path` raw (no echo, no line editing) at the configured baud, data bits,
/// parity and stop bits, without flow control.
pub(crate) fn open(cfg: &SerialPortConfig) -> io::Result<SerialPort> {
    SerialPort::open(&cfg.path, |mut s: Settings| -> io::Result<Settings> {
        s.set_raw();
        s.set_baud_rate(cfg.baud)?;
        s.set_char_size(char_size(cfg.data_bits)?);
        s.set_stop_bits(if cfg.stop_bits == 2 { StopBits::Two } else { StopBits::One });
        s.set_parity(match cfg.parity {
            Parity::None => SerialParity::None,
            Parity::Even => SerialParity::Even,
            Parity::Odd => SerialParity::Odd,
        });
        s.set_flow_control(FlowControl::None);
        Ok(s)
    })
}

fn char_size(bits: u8) -> io::Result<CharSize> {
    match bits {
        5 => Ok(CharSize::Bits5),
        6 => Ok(CharSize::Bits6),
        7 => Ok(CharSize::Bits7),
        8 => Ok(CharSize::Bits8),
        other => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{other} data bits"))),
    }
}
