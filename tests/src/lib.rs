//! Test peers for Simpul: devices at the far end of real pseudo-terminals.
//!
//! - [`PtySensor`]: a serial device whose bytes a test writes (an ultrasonic ranger's
//!   `R1234\r`, garbage), reachable at a chosen path that can be unplugged and replugged.
//! - [`ModbusSlave`]: a Modbus RTU slave (tokio-modbus's own server) whose water level
//!   rises over time, with switches to answer with a bad CRC, garbage, or not at all.
//!
//! The agent opens the link path exactly as it would open `/dev/serial/by-id/...`, so the
//! tests exercise the real serial code, the real framing and the real codec.

pub mod modbus;
pub mod pty;

pub use modbus::{Fault, ModbusSlave, RegisterMap};
pub use pty::PtySensor;
