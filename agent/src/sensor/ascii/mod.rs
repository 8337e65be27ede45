//! ASCII line sensors: an ultrasonic ranger's `R1234\r`, a bare number, or
//! `level=123.4 rain=0.2`. [`frame`] cuts bytes into lines, [`parse`] turns a line into
//! values, [`driver`] owns the port and its reopening.

pub mod driver;
pub mod frame;
pub mod parse;

pub use frame::{Frame, LineFramer};
pub use parse::{LineError, LineParser};
