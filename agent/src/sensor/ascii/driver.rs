//! The task of one ASCII sensor: open the port, read lines until it fails, reopen.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::frame::{Frame, LineFramer};
use super::parse::LineParser;
use crate::clock::Clock;
use crate::config::RetryConfig;
use crate::config::sensor::AsciiSensorConfig;
use crate::sensor::emit::{Emitter, Stop};
use crate::sensor::port;
use crate::sensor::retry::Backoff;
use crate::sensor::stats::Trouble;

/// Runs one ASCII sensor until `shutdown` (or until nobody takes its samples).
pub(crate) async fn run(
    cfg: AsciiSensorConfig,
    retry: RetryConfig,
    clock: Arc<dyn Clock>,
    mut emit: Emitter,
    shutdown: CancellationToken,
) {
    let parser = LineParser::new(&cfg);
    let mut framer = LineFramer::new(cfg.max_line);
    let mut backoff = Backoff::new(&retry);
    let mut first = true;
    let path = cfg.port.path.display().to_string();
    while !shutdown.is_cancelled() {
        match port::open(&cfg.port) {
            Err(e) => {
                tracing::debug!(%path, error = %e, "cannot open port");
                emit.stats().trouble(Trouble::Io, format_args!("open {path}: {e}"));
            }
            Ok(serial) => {
                tracing::info!(%path, "port open");
                emit.stats().opened(first);
                first = false;
                backoff.reset();
                framer.reset();
                let end = read_lines(&serial, &mut framer, &parser, &*clock, &mut emit, &shutdown).await;
                emit.stats().set_connected(false);
                match end {
                    Ok(ReadEnd::Shutdown) | Err(Stop) => return,
                    Ok(ReadEnd::Failed(e)) => {
                        tracing::warn!(%path, error = %e, "port lost; will reopen");
                        emit.stats().trouble(Trouble::Io, format_args!("read {path}: {e}"));
                    }
                }
            }
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

enum ReadEnd {
    Shutdown,
    Failed(std::io::Error),
}

async fn read_lines(
    serial: &serial2_tokio::SerialPort,
    framer: &mut LineFramer,
    parser: &LineParser,
    clock: &dyn Clock,
    emit: &mut Emitter,
    shutdown: &CancellationToken,
) -> Result<ReadEnd, Stop> {
    let mut buf = [0u8; 512];
    loop {
        let n = tokio::select! {
            r = serial.read(&mut buf) => r,
            () = shutdown.cancelled() => return Ok(ReadEnd::Shutdown),
        };
        let n = match n {
            Ok(0) => return Ok(ReadEnd::Failed(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(ReadEnd::Failed(e)),
        };
        let mut frames = Vec::new();
        framer.push(&buf[..n], |f| frames.push(f));
        for frame in frames {
            let line = match frame {
                Frame::Overlong => {
                    emit.stats().trouble(Trouble::Garbage, "over-long line without terminator");
                    continue;
                }
                Frame::Line(line) => line,
            };
            match parser.parse(&line) {
                Err(e) => {
                    tracing::debug!(error = %e, "garbage line");
                    emit.stats().trouble(Trouble::Garbage, e);
                }
                Ok(values) => {
                    let time = clock.now();
                    emit.stats().frame_ok();
                    for (channel, value) in values {
                        emit.send(&channel, value, time, shutdown).await?;
                    }
                }
            }
        }
    }
}
