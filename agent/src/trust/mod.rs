//! The box's side of trust (docs/design/trust.md): its identity on disk ([`identity`]) and
//! first-boot enrolment with the bootstrap bundle ([`enrol`]), and renewal of its
//! certificate before it expires ([`renew`]).

pub mod enrol;
pub mod identity;
pub mod renew;

pub use enrol::{Pending, prepare};
pub use identity::Identity;
pub use renew::Renewal;

/// What went wrong with the box's identity or its enrolment.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is readable by others (mode {mode:o}): chmod 600 it")]
    KeyReadable { path: String, mode: u32 },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("bootstrap bundle: {0}")]
    Bundle(#[from] simpul_provision::BundleError),
    #[error("making the key or CSR: {0}")]
    Key(String),
    /// The fleet said no; trying again with the same token cannot help.
    #[error("the fleet refused the enrolment ({status}): {message}")]
    Refused { status: u16, message: String },
    /// The fleet could not be reached, or failed; worth trying again.
    #[error("enrolment request: {0}")]
    Request(String),
    #[error("the fleet's answer does not fit this box: {0}")]
    Answer(String),
}

impl TrustError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TrustError::Request(_))
    }
}
