//! Modbus RTU sensors: registers polled on a serial line.
//!
//! [`registers`] plans the reads and decodes words, [`counting`] tells a corrupt reply
//! from no reply, [`bus`] is the task that owns one port and polls every slave on it.

pub mod bus;
pub mod counting;
pub mod registers;

pub use counting::Counting;
pub use registers::{Point, Read, decode, plan};
