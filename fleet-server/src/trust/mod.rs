//! The fleet's side of trust (docs/design/trust.md): its CA, one-time enrolment tokens,
//! and the device listener (HTTPS) where boxes enrol and renew their certificates.

pub mod broker_client;
pub mod ca;
pub mod config;
pub mod enrol;
pub mod listener;
pub mod renew;
pub mod routes;
pub mod server;
pub mod store;
pub mod tokens;

pub use ca::{CsrError, FleetCa, Issued};

/// What stops the fleet's trust material from loading or a certificate from being made.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{there} is there but {missing} is not: put both back (or remove both to make a new CA)")]
    HalfCa { there: String, missing: String },
    #[error("{path} is readable by others (mode {mode:o}): chmod 600 it")]
    KeyReadable { path: String, mode: u32 },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("TLS: {0}")]
    Tls(String),
}
