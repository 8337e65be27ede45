//! One task per serial port: every Modbus sensor naming that port is a slave on one
//! RS-485 bus, and they take turns. A bus has one talker at a time, so two tasks on one
//! port would garble each other's requests; one task makes the turns explicit.
//!
//! Each sensor is polled every `poll_interval` (earliest due first; a poll that falls
//! behind is skipped rather than bunched up), each request under the sensor's `timeout`.
//! Trouble is counted and polling goes on; only a failed read or write on the port
//! (unplugged) closes it and reopens it after a backoff.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serial2_tokio::SerialPort;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::counting::Counting;
use super::registers::{Read, plan};
use crate::clock::Clock;
use crate::config::RetryConfig;
use crate::config::sensor::{ModbusSensorConfig, RegisterFunction};
use crate::sensor::emit::{Emitter, Stop};
use crate::sensor::port;
use crate::sensor::retry::Backoff;
use crate::sensor::stats::Trouble;

/// One Modbus sensor on a bus.
#[derive(Debug)]
pub(crate) struct Member {
    cfg: ModbusSensorConfig,
    reads: Vec<Read>,
    emit: Emitter,
    next: Instant,
    span: tracing::Span,
}

impl Member {
    /// A member polled first right away.
    pub(crate) fn new(id: &str, cfg: ModbusSensorConfig, emit: Emitter) -> Member {
        let span = tracing::info_span!("sensor", id = %id, kind = "modbus", slave = cfg.slave);
        Member { reads: plan(&cfg.registers), cfg, emit, next: Instant::now(), span }
    }
}

/// How a turn on the bus ended.
enum Turn {
    /// Answered (or refused with an exception): the conversation is in step.
    InStep,
    /// A timeout or a corrupt reply: stale bytes may linger, start a fresh client.
    OutOfStep,
    /// The port failed.
    Failed(io::Error),
}

/// Runs the bus of `members` (at least one; the first one's port settings are used)
/// until `shutdown`.
pub(crate) async fn run(
    mut members: Vec<Member>,
    retry: RetryConfig,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let Some(port_cfg) = members.first().map(|m| m.cfg.port.clone()) else { return };
    let path = port_cfg.path.display().to_string();
    if members.iter().any(|m| m.cfg.port != port_cfg) {
        tracing::warn!(%path, "sensors on one port disagree on its settings; using the first one's");
    }
    let mut backoff = Backoff::new(&retry);
    let mut first = true;
    while !shutdown.is_cancelled() {
        match port::open(&port_cfg) {
            Err(e) => {
                tracing::debug!(%path, error = %e, "cannot open port");
                for m in &members {
                    m.emit.stats().trouble(Trouble::Io, format_args!("open {path}: {e}"));
                }
            }
            Ok(serial) => {
                tracing::info!(%path, "port open");
                for m in &members {
                    m.emit.stats().opened(first);
                }
                first = false;
                backoff.reset();
                let end = poll(&serial, &mut members, &*clock, &shutdown).await;
                for m in &members {
                    m.emit.stats().set_connected(false);
                }
                match end {
                    Ok(None) | Err(Stop) => return,
                    Ok(Some(e)) => {
                        tracing::warn!(%path, error = %e, "port lost; will reopen");
                        for m in &members {
                            m.emit.stats().trouble(Trouble::Io, format_args!("{path}: {e}"));
                        }
                    }
                }
            }
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

fn attach(serial: &SerialPort, received: &Arc<AtomicU64>) -> io::Result<Context> {
    let transport = Counting::new(serial.try_clone()?, received.clone());
    Ok(tokio_modbus::client::rtu::attach_slave(transport, Slave(1)))
}

/// Polls the members in turn until the port fails (`Ok(Some(error))`) or shutdown
/// (`Ok(None)`).
async fn poll(
    serial: &SerialPort,
    members: &mut [Member],
    clock: &dyn Clock,
    shutdown: &CancellationToken,
) -> Result<Option<io::Error>, Stop> {
    let received = Arc::new(AtomicU64::new(0));
    let mut ctx = match attach(serial, &received) {
        Ok(ctx) => ctx,
        Err(e) => return Ok(Some(e)),
    };
    loop {
        let Some(m) = members.iter_mut().min_by_key(|m| m.next) else { return Ok(None) };
        tokio::select! {
            () = tokio::time::sleep_until(m.next) => {}
            () = shutdown.cancelled() => return Ok(None),
        }
        let span = m.span.clone();
        let turn = tokio::select! {
            t = turn(&mut ctx, m, &received, clock, shutdown).instrument(span) => t?,
            () = shutdown.cancelled() => return Ok(None),
        };
        let now = Instant::now();
        m.next += m.cfg.poll_interval;
        if m.next < now {
            m.next = now + m.cfg.poll_interval;
        }
        match turn {
            Turn::InStep => {}
            Turn::Failed(e) => return Ok(Some(e)),
            Turn::OutOfStep => {
                // Drop what the codec and the kernel hold of the bad reply; a fresh client
                // starts with an empty buffer.
                if let Err(e) = serial.discard_input_buffer() {
                    return Ok(Some(e));
                }
                ctx = match attach(serial, &received) {
                    Ok(ctx) => ctx,
                    Err(e) => return Ok(Some(e)),
                };
            }
        }
    }
}

/// One poll of one member: each of its reads, in order.
async fn turn(
    ctx: &mut Context,
    m: &mut Member,
    received: &AtomicU64,
    clock: &dyn Clock,
    shutdown: &CancellationToken,
) -> Result<Turn, Stop> {
    ctx.set_slave(Slave(m.cfg.slave));
    let stats = m.emit.stats().clone();
    for read in &m.reads {
        let before = received.load(Ordering::Relaxed);
        let request = async {
            match read.function {
                RegisterFunction::Holding => ctx.read_holding_registers(read.address, read.count).await,
                RegisterFunction::Input => ctx.read_input_registers(read.address, read.count).await,
            }
        };
        let words = match tokio::time::timeout(m.cfg.timeout, request).await {
            Err(_elapsed) => {
                stats.set_connected(false);
                if received.load(Ordering::Relaxed) > before {
                    tracing::debug!(address = read.address, "corrupt reply");
                    stats.trouble(Trouble::Crc, format_args!("corrupt reply to read at {}", read.address));
                } else {
                    tracing::debug!(address = read.address, "no reply");
                    stats.trouble(Trouble::Timeout, format_args!("no reply to read at {}", read.address));
                }
                return Ok(Turn::OutOfStep);
            }
            Ok(Err(tokio_modbus::Error::Transport(e))) => return Ok(Turn::Failed(e)),
            Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                stats.trouble(Trouble::Garbage, format_args!("unexpected reply: {e}"));
                return Ok(Turn::OutOfStep);
            }
            Ok(Ok(Err(exception))) => {
                tracing::debug!(address = read.address, %exception, "exception");
                stats.set_connected(true);
                stats.trouble(Trouble::Exception, format_args!("read at {}: {exception}", read.address));
                continue;
            }
            Ok(Ok(Ok(words))) => words,
        };
        stats.set_connected(true);
        if words.len() != usize::from(read.count) {
            stats.trouble(Trouble::Garbage, format_args!("{} words for a read of {}", words.len(), read.count));
            continue;
        }
        let time = clock.now();
        stats.frame_ok();
        for point in &read.points {
            match point.value(&words) {
                Some(v) => m.emit.send(&point.channel, v, time, shutdown).await?,
                None => stats.trouble(Trouble::Garbage, format_args!("{}: not a number", point.channel.metric)),
            }
        }
    }
    Ok(Turn::InStep)
}
