//! The fleet's server side of trust, loaded once at start: the CA, a server certificate
//! for `[trust] server_names` (made fresh at each start), and the files the embedded
//! broker's TLS listener reads.

use std::path::Path;
use std::time::SystemTime;

use super::ca::{CA_CERT, write_private};
use super::{FleetCa, TrustError};
use crate::broker::DeviceTls;

/// The broker's server certificate chain and key, rewritten at each start.
pub const BROKER_CERT: &str = "broker.pem";
pub const BROKER_KEY: &str = "broker.key";

/// The CA and a server identity made from it.
#[derive(Debug)]
pub struct ServerTrust {
    pub ca: FleetCa,
    /// The server certificate chain (PEM), the fleet CA last.
    pub chain: String,
    pub key: String,
}

impl ServerTrust {
    /// Loads (or makes) the CA in `dir` and a server certificate for `names`.
    pub fn load(dir: &Path, names: &[String]) -> Result<ServerTrust, TrustError> {
        let ca = FleetCa::load_or_create(dir)?;
        let (chain, key) = ca.server_identity(names, SystemTime::now())?;
        Ok(ServerTrust { ca, chain, key })
    }

    /// Writes the server certificate and key (0600) beside the CA in `dir` for the broker's
    /// TLS listener, which reads files.
    pub fn write_broker_files(&self, dir: &Path) -> Result<DeviceTls, TrustError> {
        let (cert, key) = (dir.join(BROKER_CERT), dir.join(BROKER_KEY));
        write_private(&key, &self.key, 0o600)?;
        write_private(&cert, &self.chain, 0o644)?;
        Ok(DeviceTls { cert, key, client_ca: dir.join(CA_CERT), revoked: None })
    }
}
