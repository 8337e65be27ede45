//! Why a session with the broker ended (the uplink then backs off and reconnects).

use thiserror::Error;

use crate::buffer::BufferError;

/// Why a session ended. None of these stops the uplink: it backs off and reconnects.
#[derive(Debug, Error)]
pub enum UplinkError {
    /// `[uplink] broker` is not `host:port` (validation refuses this; kept for callers
    /// that build an [`crate::config::UplinkConfig`] by hand).
    #[error("broker {0:?} is not host:port")]
    BadBroker(String),
    /// The connection failed or broke.
    #[error("mqtt connection: {0}")]
    Connection(Box<rumqttc::ConnectionError>),
    /// A request could not be handed to the MQTT client (its event loop is gone).
    #[error("mqtt client: {0}")]
    Client(Box<rumqttc::ClientError>),
    /// The MQTT event loop task ended without saying why.
    #[error("the mqtt event loop stopped")]
    Closed,
    /// Reading or deleting in the buffer failed.
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
    /// A blocking buffer task panicked or was cancelled.
    #[error("buffer task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// `[uplink] tls` is on and the box has no identity yet (enrolment is under way).
    #[error("not enrolled yet: no identity in {0}")]
    NotEnrolled(String),
    /// The box's identity could not be read.
    #[error("identity: {0}")]
    Identity(#[from] crate::trust::TrustError),
    /// A control message could not be written.
    #[error("{0}")]
    Control(#[from] simpul_protocol::ControlError),
}

impl From<rumqttc::ConnectionError> for UplinkError {
    fn from(e: rumqttc::ConnectionError) -> Self {
        UplinkError::Connection(Box::new(e))
    }
}

impl From<rumqttc::ClientError> for UplinkError {
    fn from(e: rumqttc::ClientError) -> Self {
        UplinkError::Client(Box::new(e))
    }
}
