//! One connection to PostgreSQL that reconnects when it was lost.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use postgres::Client;

use super::PgTarget;
use crate::store::StoreError;

/// A connection, opened again on the next use after the server or the network dropped it.
/// The lock makes each use exclusive, as a transaction needs.
pub struct Conn {
    target: PgTarget,
    client: Mutex<Option<Client>>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects to `target` now, so a wrong address fails at start, not at first use.
    pub fn connect(target: &PgTarget) -> Result<Conn, StoreError> {
        let client = target.connect()?;
        Ok(Conn { target: target.clone(), client: Mutex::new(Some(client)) })
    }

    /// The connection, reconnected first if it was lost.
    pub fn get(&self) -> Result<ConnGuard<'_>, StoreError> {
        // A panic while holding the lock dropped its transaction (rolled back); the
        // connection itself is fine.
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            *guard = Some(self.target.connect()?);
        }
        Ok(ConnGuard(guard))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        // `postgres::Client` closes its connection by blocking on a runtime of its own,
        // which panics on an async worker thread, where the last `Arc` of a store often
        // goes at shutdown. There, close it on a thread of its own.
        if let Some(client) = client
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let closing = std::thread::Builder::new().name("pg-close".to_owned()).spawn(move || drop(client));
            if let Err(e) = closing {
                tracing::warn!(error = %e, "cannot close a PostgreSQL connection cleanly; the server will see it drop");
            }
        }
    }
}

/// A connection in use: derefs to the client.
pub struct ConnGuard<'a>(MutexGuard<'a, Option<Client>>);

impl fmt::Debug for ConnGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnGuard").finish_non_exhaustive()
    }
}

impl Deref for ConnGuard<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        // `Conn::get` only hands out a guard holding a client.
        self.0.as_ref().unwrap_or_else(|| unreachable!("Conn::get hands out a connected guard"))
    }
}

impl DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().unwrap_or_else(|| unreachable!("Conn::get hands out a connected guard"))
    }
}
