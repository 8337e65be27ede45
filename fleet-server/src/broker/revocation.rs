//! Revoked certificates, checked at every CONNECT on the devices' TLS listener, and cutting
//! a revoked device's live session (docs/design/trust.md, "Revocation").

use rmqtt::context::ServerContext;
use rmqtt::types::{Message, Reason};

/// Whether a certificate serial is revoked. Blocking (a database lookup): the hook calls it
/// on the blocking pool.
pub trait Revocations: Send + Sync + std::fmt::Debug {
    /// `serial`: hex as rmqtt gives it (no leading zeros, any case).
    fn is_revoked(&self, serial: &str) -> Result<bool, String>;
}

/// Closes live MQTT sessions by client id. Cheap to clone.
#[derive(Clone)]
pub struct Disconnector {
    pub(super) scx: ServerContext,
}

impl std::fmt::Debug for Disconnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disconnector").finish_non_exhaustive()
    }
}

impl Disconnector {
    /// Tells the session of `client_id`, if connected, to close now; whether one was.
    pub async fn disconnect(&self, client_id: &str, why: &'static str) -> bool {
        let shared = self.scx.extends.shared().await;
        let mut closed = false;
        for entry in shared.iter() {
            if &*entry.id().client_id == client_id {
                if let Some(tx) = entry.tx() {
                    closed |= tx.unbounded_send(Message::Closed(Reason::from_static(why))).is_ok();
                }
            }
        }
        closed
    }
}
