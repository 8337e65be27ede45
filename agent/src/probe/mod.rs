//! Probing a newly plugged serial port: which sensor is it, and at what settings?
//!
//! At each baud of `[probe] bauds`, in order, the port is opened (8N1), listened to for
//! `listen_for` ([`ascii`]: two lines in a row of one known format are a match), then each
//! of `modbus_slaves` is asked for one register ([`modbus`]: a reply with the register is
//! a match). The first match becomes a [`Proposal`]: a `[sensors.<id>]` entry that loads
//! with the agent's own config loader, and a sentence for people. The port is open only
//! while it is being probed, one baud at a time. Design: docs/design/status-page.md.

pub mod ascii;
pub mod modbus;
pub mod proposal;

use std::io;
use std::path::Path;

use tokio_util::sync::CancellationToken;

pub use proposal::{Found, Proposal, ProposalError, sensor_id};

use crate::config::ProbeConfig;
use crate::config::sensor::{Parity, SerialPortConfig};

/// Why a probe could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The port could not be opened at all (gone, or held by someone else).
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    /// What was found did not make a config the agent accepts (a bug, not the sensor's).
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    /// The agent is stopping.
    #[error("stopped")]
    Stopped,
}

/// The port at `baud`, 8 data bits, no parity, 1 stop bit: what most sensors ship with.
pub(crate) fn line(path: &Path, baud: u32) -> SerialPortConfig {
    SerialPortConfig { path: path.to_owned(), baud, data_bits: 8, parity: Parity::None, stop_bits: 1 }
}

/// Probes `path` as `cfg` says. `Ok(None)`: nothing recognised at any baud.
pub async fn probe(
    path: &Path,
    cfg: &ProbeConfig,
    shutdown: &CancellationToken,
) -> Result<Option<Proposal>, ProbeError> {
    let mut opened_once = false;
    let mut last_error = None;
    for &baud in &cfg.bauds {
        let port = line(path, baud);
        let found = match ascii::listen(&port, cfg.listen_for, shutdown).await {
            Err(e) => Err(e),
            Ok(Some(f)) => Ok(Some(f)),
            Ok(None) => modbus::ask(&port, cfg, shutdown).await,
        };
        if shutdown.is_cancelled() {
            return Err(ProbeError::Stopped);
        }
        match found {
            Ok(Some(found)) => return Ok(Some(Proposal::new(path, found)?)),
            Ok(None) => opened_once = true,
            Err(e) => {
                tracing::debug!(path = %path.display(), baud, error = %e, "probe: cannot use the port");
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(source) if !opened_once => Err(ProbeError::Open { path: path.display().to_string(), source }),
        _ => Ok(None),
    }
}
