//! Security events: what a client tried that the broker refused (a device publishing or
//! subscribing outside its own topics, a connection refused for its identity). The hooks
//! hand them to a [`SecurityLog`] without waiting; the fleet stores them
//! (`security_events`, read with `simpul-fleet security events` and the API).

use serde::Serialize;
use tokio::sync::mpsc;

/// How many events may wait for the store; past it they are counted and dropped (a client
/// hammering refused publishes must not grow the fleet's memory).
const QUEUE: usize = 1024;

/// One refused attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityEvent {
    pub at_ms: i64,
    /// Who tried: the identity from the certificate (or username, client id on plain).
    pub identity: String,
    /// `publish_refused`, `subscribe_refused` or `connect_refused`.
    pub kind: String,
    /// The topic or filter, or why the connection was refused.
    pub detail: String,
    /// The client's address.
    pub remote: String,
}

/// Where the broker's hooks put [`SecurityEvent`]s. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SecurityLog {
    tx: Option<mpsc::Sender<SecurityEvent>>,
}

impl SecurityLog {
    /// A log and the receiving end the fleet drains into its store.
    pub fn channel() -> (SecurityLog, mpsc::Receiver<SecurityEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (SecurityLog { tx: Some(tx) }, rx)
    }

    /// A log that keeps nothing (a broker on its own, in tests and benches).
    pub fn discard() -> SecurityLog {
        SecurityLog { tx: None }
    }

    /// Records `event` (also as a warning in the log); never waits.
    pub fn record(&self, event: SecurityEvent) {
        tracing::warn!(identity = %event.identity, kind = %event.kind, detail = %event.detail, remote = %event.remote, "security event");
        if let Some(tx) = &self.tx {
            if tx.try_send(event).is_err() {
                tracing::warn!("security events arrive faster than they are stored: one dropped");
            }
        }
    }
}
