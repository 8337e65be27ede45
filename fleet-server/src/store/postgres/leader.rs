//! [`Leadership`] on PostgreSQL: a session advisory lock (`LOCK_LEADER`) on a connection of
//! its own. The lock lives as long as the session: a process that dies, or loses its
//! connection, lets go, and the next `try_lead` of another process takes it.

use super::{Conn, LOCK_LEADER, PgTarget};
use crate::store::StoreError;
use crate::store::leader::Leadership;

/// Holds or seeks the leader lock.
#[derive(Debug)]
pub struct PgLeader {
    conn: Conn,
}

impl PgLeader {
    /// Connects (the lock is taken at the first `try_lead`).
    pub fn open(target: &PgTarget) -> Result<PgLeader, StoreError> {
        Ok(PgLeader { conn: Conn::connect(target)? })
    }
}

impl Leadership for PgLeader {
    fn try_lead(&self) -> Result<bool, StoreError> {
        // Held already by this session: say so without locking again (a session lock
        // taken twice must be released twice). A reconnected session holds nothing and
        // asks anew. An int8 key shows in pg_locks as classid (high half), objid (low half).
        let row = self.conn.get()?.query_one(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                 AND pid = pg_backend_pid() AND granted AND objsubid = 1
                 AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid)
             THEN true ELSE pg_try_advisory_lock($1::bigint) END",
            &[&LOCK_LEADER],
        )?;
        Ok(row.get(0))
    }
}
