//! A Modbus RTU slave on a pty: tokio-modbus's own server, behind a relay that can
//! corrupt its replies.
//!
//! ```text
//! agent ── link ─ pty A ═ relay (faults) ═ pty B ─ tokio_modbus::server::rtu::Server
//! ```
//!
//! The server always answers honestly; the [`Fault`] switch acts on the wire, as a bad
//! cable or a confused device would: flip a CRC byte, send noise, or stay silent.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;

use crate::pty::PtySensor;

/// What the wire does to the slave's replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Replies pass unchanged.
    None = 0,
    /// The last byte of each reply is flipped: its CRC no longer matches.
    BadCrc = 1,
    /// Each reply is replaced by as many bytes of noise.
    Garbage = 2,
    /// Replies are swallowed: the slave seems not to answer.
    Silent = 3,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::BadCrc,
            2 => Fault::Garbage,
            3 => Fault::Silent,
            _ => Fault::None,
        }
    }
}

/// The slave's registers, the same for holding (function 3) and input (function 4):
///
/// | address | type | word order | content |
/// |---|---|---|---|
/// | 0 | u16 | | level in mm |
/// | 1-2 | f32 | big (high word first) | level in cm |
/// | 3-4 | i32 | little (low word first) | level in mm minus 100 000 (negative) |
/// | 5 | i16 | | -123 (a temperature of -12.3 in tenths) |
/// | 6-7 | u32 | big | requests answered so far |
///
/// Other addresses answer with the exception "illegal data address".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegisterMap {
    /// Level at the start, in cm.
    pub start_cm: f64,
    /// How fast it rises, cm per second.
    pub rise_cm_per_s: f64,
}

impl Default for RegisterMap {
    fn default() -> Self {
        RegisterMap { start_cm: 100.0, rise_cm_per_s: 1.0 }
    }
}

/// Number of registers in the map.
pub const REGISTERS: u16 = 8;

impl RegisterMap {
    /// The level `elapsed` after the start, in cm.
    pub fn level_cm(&self, elapsed: Duration) -> f64 {
        self.start_cm + self.rise_cm_per_s * elapsed.as_secs_f64()
    }

    /// All registers for a level of `level_cm` after `answered` requests.
    pub fn words(level_cm: f64, answered: u64) -> [u16; REGISTERS as usize] {
        let mm = (level_cm * 10.0).round();
        let f = (level_cm as f32).to_bits();
        let offset = (mm as i32).wrapping_sub(100_000) as u32;
        let n = answered as u32;
        [
            mm.clamp(0.0, 65535.0) as u16,
            (f >> 16) as u16,
            f as u16,
            offset as u16,
            (offset >> 16) as u16,
            (-123i16) as u16,
            (n >> 16) as u16,
            n as u16,
        ]
    }
}

/// The tokio-modbus service answering some slave ids from a [`RegisterMap`].
#[derive(Debug)]
struct Registers {
    slaves: Vec<u8>,
    map: RegisterMap,
    start: Instant,
    answered: Arc<AtomicU64>,
}

impl Registers {
    fn read(&self, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        let end = usize::from(address) + usize::from(count);
        if count == 0 || end > usize::from(REGISTERS) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let answered = self.answered.fetch_add(1, Ordering::Relaxed) + 1;
        let words = RegisterMap::words(self.map.level_cm(self.start.elapsed()), answered);
        Ok(words[usize::from(address)..end].to_vec())
    }
}

impl tokio_modbus::server::Service for Registers {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        if !self.slaves.contains(&req.slave) {
            return std::future::ready(Ok(None));
        }
        let r = match req.request {
            Request::ReadHoldingRegisters(a, n) => self.read(a, n).map(|w| Some(Response::ReadHoldingRegisters(w))),
            Request::ReadInputRegisters(a, n) => self.read(a, n).map(|w| Some(Response::ReadInputRegisters(w))),
            _ => Err(ExceptionCode::IllegalFunction),
        };
        std::future::ready(r)
    }
}

/// A running Modbus RTU slave reachable at a link path. Stops when dropped.
#[derive(Debug)]
pub struct ModbusSlave {
    link: PathBuf,
    fault: Arc<AtomicU8>,
    answered: Arc<AtomicU64>,
    stop: CancellationToken,
    _device: PtySensor,
}

impl ModbusSlave {
    /// Starts a device answering as each of `slaves` (several ids: several devices on
    /// one RS-485 bus) with `map`, behind a new link at `link`. Call inside a tokio runtime.
    pub fn start(link: impl Into<PathBuf>, slaves: &[u8], map: RegisterMap) -> io::Result<ModbusSlave> {
        let link = link.into();
        let mut device = PtySensor::create(&link)?;
        let (wire, wire_slave) = device.take_master().ok_or_else(|| io::Error::other("new pty has no master"))?;
        let (server_side, server_port) = SerialStream::pair().map_err(io::Error::from)?;
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let answered = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();

        let service = Registers { slaves: slaves.to_vec(), map, start: Instant::now(), answered: answered.clone() };
        let server = tokio_modbus::server::rtu::Server::new(server_port);
        tokio::spawn(server.serve_until(service, stop.clone().cancelled_owned()));
        tokio::spawn(relay(wire, wire_slave, server_side, fault.clone(), stop.clone()));
        Ok(ModbusSlave { link, fault, answered, stop, _device: device })
    }

    /// The path the agent opens.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// Sets what the wire does to replies from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::Relaxed);
    }

    /// Requests the server has answered (whatever the wire then did to the reply).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for ModbusSlave {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.link);
    }
}

/// Copies chunks from `from` to `to` until end of file, passing each through `alter`
/// (which may change it, or return `false` to swallow it).
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut alter: impl FnMut(&mut [u8]) -> bool,
) -> io::Result<()> {
    let mut buf = [0u8; 256];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let chunk = &mut buf[..n];
        if alter(chunk) {
            to.write_all(chunk).await?;
        }
    }
}

/// Copies requests from the wire to the server and replies back, applying the fault.
async fn relay(
    wire: SerialStream,
    wire_slave: SerialStream,
    server: SerialStream,
    fault: Arc<AtomicU8>,
    stop: CancellationToken,
) {
    let _keep_open = wire_slave;
    let (mut wire_rx, mut wire_tx) = tokio::io::split(wire);
    let (mut server_rx, mut server_tx) = tokio::io::split(server);
    let requests = pump(&mut wire_rx, &mut server_tx, |_| true);
    let replies = pump(&mut server_rx, &mut wire_tx, |reply| {
        match Fault::from_u8(fault.load(Ordering::Relaxed)) {
            Fault::None => {}
            Fault::BadCrc => {
                if let Some(last) = reply.last_mut() {
                    *last ^= 0xFF;
                }
            }
            Fault::Garbage => reply.iter_mut().enumerate().for_each(|(i, b)| *b = 0xA5 ^ (i as u8)),
            Fault::Silent => return false,
        }
        true
    });
    tokio::select! {
        r = requests => if let Err(e) = r { tracing::debug!(error = %e, "modbus relay: requests ended") },
        r = replies => if let Err(e) = r { tracing::debug!(error = %e, "modbus relay: replies ended") },
        () = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_map_holds_one_level_in_every_type() {
        let w = RegisterMap::words(123.4, 7);
        assert_eq!(w[0], 1234);
        assert_eq!(f32::from_bits((u32::from(w[1]) << 16) | u32::from(w[2])), 123.4);
        assert_eq!(((u32::from(w[4]) << 16) | u32::from(w[3])) as i32, 1234 - 100_000);
        assert_eq!(w[5] as i16, -123);
        assert_eq!((u32::from(w[6]) << 16) | u32::from(w[7]), 7);
    }
}
