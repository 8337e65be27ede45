//! The PostgreSQL stores: the same traits as [`super::sqlite`], for one or more fleet
//! processes sharing a database (docs/design/scale-out.md §3, docs/ops/scale-out.md).
//!
//! Blocking, on the `postgres` client, like the SQLite stores: called through
//! `store::blocking`, never on an async worker (the client runs a small runtime of its own).
//!
//! What makes several processes safe, beside each transaction:
//! - **Delivery ids in commit order.** Every transaction that gives delivery ids (the
//!   ingest commit, the hold release) first locks the `delivery_counter` row
//!   (`SELECT … FOR UPDATE`) and keeps it until COMMIT. Ingest commits of all processes
//!   therefore run one at a time, as they do on SQLite, and a reader paging by cursor
//!   never skips a row that commits late.
//! - **Control-plane writes** (config, proposals, releases, rollouts, users, tokens, trust)
//!   take `pg_advisory_xact_lock(LOCK_CONTROL)` first: SQLite's single writer for them,
//!   without reasoning about each query at READ COMMITTED.
//! - The schema is created under `LOCK_SCHEMA`; the leader (webhook delivery) holds
//!   `LOCK_LEADER` on a connection of its own.

mod auth;
mod commit;
mod config;
mod conn;
mod error;
mod health;
mod leader;
mod proposals;
mod read;
mod releases;
mod rollouts;
mod schema;
mod series;
mod store;
mod target;
mod trust;

pub use auth::PgAuthStore;
pub use conn::{Conn, ConnGuard};
pub use leader::PgLeader;
pub use releases::PgReleaseStore;
pub use rollouts::PgRolloutStore;
pub use store::PgStore;
pub use target::PgTarget;
pub use trust::PgTrustStore;

/// Advisory lock keys (one 64-bit space per database; "simpul" in ASCII, then a number).
pub const LOCK_SCHEMA: i64 = 0x73_69_6d_70_75_6c_00_01;
/// Serialises control-plane write transactions across processes.
pub const LOCK_CONTROL: i64 = 0x73_69_6d_70_75_6c_00_02;
/// Held by the leader: the one process that delivers to the webhook and steps rollouts.
pub const LOCK_LEADER: i64 = 0x73_69_6d_70_75_6c_00_03;

/// Connects to `target` and creates or checks the schema.
pub fn connect(target: &PgTarget) -> Result<Conn, crate::store::StoreError> {
    let conn = Conn::connect(target)?;
    let mut client = conn.get()?;
    schema::upgrade(&mut client)?;
    drop(client);
    Ok(conn)
}

/// Begins a control-plane write transaction: it holds [`LOCK_CONTROL`] until it ends, so
/// such transactions of every process run one at a time (SQLite's `BEGIN IMMEDIATE`).
pub(crate) fn control_tx(client: &mut postgres::Client) -> Result<postgres::Transaction<'_>, crate::store::StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CONTROL])?;
    Ok(tx)
}

/// u64 to BIGINT and back, refusing what does not fit (shared with SQLite).
pub(crate) use super::sqlite::{to_i64, to_u64};
