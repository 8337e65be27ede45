//! Leadership: work only one fleet process may do at a time, whatever the number of
//! processes on one database. Today that is webhook delivery (two processes would POST
//! every batch twice and move one cursor back and forth) and the rollout engine's steps
//! (two would read one rollout's state and open a wave twice).
//!
//! SQLite has one process, which always leads. On PostgreSQL the leader holds a session
//! advisory lock on a connection of its own (`postgres/leader.rs`): the server frees it
//! when that connection dies, so a SIGKILLed leader's socket closing hands the lead on,
//! and a standby takes it at its next try.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::StoreError;
use crate::config::{StoreBackend, StoreConfig};

/// How often a process that does not lead asks again.
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether this process leads. Blocking: call through `spawn_blocking`.
pub trait Leadership: Send + Sync + std::fmt::Debug + 'static {
    /// True while this process leads; becomes leader when no other process is. Ask before
    /// each piece of leader-only work: the lead can be lost (a lost connection).
    fn try_lead(&self) -> Result<bool, StoreError>;
}

/// The only process there is (SQLite): always the leader.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoleProcess;

impl Leadership for SoleProcess {
    fn try_lead(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// The leadership of `config`'s backend.
pub fn open_leadership(config: &StoreConfig) -> Result<Arc<dyn Leadership>, StoreError> {
    Ok(match config.backend {
        StoreBackend::Sqlite => Arc::new(SoleProcess),
        StoreBackend::Postgres => Arc::new(super::postgres::PgLeader::open(&super::open::pg_target(config)?)?),
    })
}

/// Asks `leader` on the blocking pool; a failed ask counts as not leading (logged).
pub async fn leads(leader: &Arc<dyn Leadership>) -> bool {
    match super::blocking(leader, |l| l.try_lead()).await {
        Ok(leads) => leads,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether this fleet process leads; acting as if not");
            false
        }
    }
}

/// Waits until this process leads; false if `shutdown` came first.
pub async fn until_leading(leader: &Arc<dyn Leadership>, what: &str, shutdown: &CancellationToken) -> bool {
    let mut said = false;
    loop {
        if leads(leader).await {
            if said {
                tracing::info!(what, "this fleet process now leads");
            }
            return true;
        }
        if !said {
            tracing::info!(what, "another fleet process leads; standing by");
            said = true;
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}
