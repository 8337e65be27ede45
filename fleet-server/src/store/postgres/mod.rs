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

mod commit;
mod config;
mod conn;
mod error;
mod health;
mod proposals;
mod read;
mod schema;
mod series;
mod store;

pub use conn::{Conn, ConnGuard};
pub use store::PgStore;

/// Advisory lock keys (one 64-bit space per database; "simpul" in ASCII, then a number).
pub const LOCK_SCHEMA: i64 = 0x73_69_6d_70_75_6c_00_01;
/// Serialises control-plane write transactions across processes.
pub const LOCK_CONTROL: i64 = 0x73_69_6d_70_75_6c_00_02;
/// Held by the one process that delivers to the webhook.
pub const LOCK_LEADER: i64 = 0x73_69_6d_70_75_6c_00_03;

/// Connects to `url` and creates or checks the schema.
pub fn connect(url: &str) -> Result<Conn, crate::store::StoreError> {
    let conn = Conn::connect(url)?;
    let mut client = conn.get()?;
    schema::upgrade(&mut client)?;
    drop(client);
    Ok(conn)
}

/// u64 to BIGINT and back, refusing what does not fit (shared with SQLite).
pub(crate) use super::sqlite::{to_i64, to_u64};
