//! Test peers for Simpul: devices at the far end of real pseudo-terminals.
//!
//! - [`PtySensor`]: a serial device whose bytes a test writes (an ultrasonic ranger's
//!   `R1234\r`, garbage), reachable at a chosen path that can be unplugged and replugged.
//! - [`ModbusSlave`]: a Modbus RTU slave (tokio-modbus's own server) whose water level
//!   rises over time, with switches to answer with a bad CRC, garbage, or not at all.
//!
//! - [`browser::Browser`]: headless Chromium over WebDriver, for the dashboard.
//! - [`camera::TestCamera`]: an RTSP camera behind a password (GStreamer's RTSP server),
//!   and [`camera::ffprobe`] as a viewer.
//! - [`Mosquitto`]: a real Mosquitto broker on a free port, killed with the test.
//! - [`Postgres`]: a real PostgreSQL server on a private unix socket, stopped with the test.
//! - [`LinkProxy`]: a TCP link the test can cut and restore.
//! - [`ChildGuard`], [`workspace_bin`]: the real binaries as child processes.
//!
//! The agent opens the link path exactly as it would open `/dev/serial/by-id/...`, so the
//! tests exercise the real serial code, the real framing and the real codec.

pub mod browser;
pub mod camera;
pub mod modbus;
pub mod mosquitto;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod pty;
pub mod releases;
pub mod system;

pub use modbus::{Fault, ModbusSlave, RegisterMap};
pub use mosquitto::Mosquitto;
pub use postgres::Postgres;
pub use process::{ChildGuard, workspace_bin};
pub use proxy::LinkProxy;
pub use pty::PtySensor;
