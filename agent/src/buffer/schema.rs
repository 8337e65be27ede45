//! The on-disk schema, its migrations (by `PRAGMA user_version`) and connection settings.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::BufferError;

/// The schema version this agent writes; `MIGRATIONS[v]` takes a file from `v` to `v + 1`.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Each step runs in one transaction together with the `user_version` bump.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "
    -- Small named integers: `next_seq`, the next sequence number to give (never reused);
    -- `quota_bytes`, the writer's quota, so that a read-only `stats` can show it.
    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('next_seq', 1), ('quota_bytes', 0);

    -- Interned (sensor, metric, unit), with running counts so stats never scan readings.
    -- Rows are never deleted: an id stays valid for the life of the file.
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        sensor TEXT NOT NULL,
        metric TEXT NOT NULL,
        unit TEXT NOT NULL,
        readings INTEGER NOT NULL DEFAULT 0,   -- rows in `readings` now
        dropped INTEGER NOT NULL DEFAULT 0,    -- rows ever evicted under the quota
        UNIQUE (sensor, metric, unit)
    );

    -- Interned boot ids (16 bytes each).
    CREATE TABLE boots (id INTEGER PRIMARY KEY, boot_id BLOB NOT NULL UNIQUE);

    -- One row a reading: a few integers and a REAL (NULL stands for NaN).
    CREATE TABLE readings (
        seq INTEGER PRIMARY KEY,
        series INTEGER NOT NULL,
        boot INTEGER NOT NULL,
        wall_ms INTEGER NOT NULL,
        mono_ms INTEGER NOT NULL,
        synced INTEGER NOT NULL,
        value REAL
    );

    -- Evicted, not yet acknowledged seqs: disjoint, non-adjacent inclusive ranges.
    CREATE TABLE dropped (first INTEGER PRIMARY KEY, last INTEGER NOT NULL);
    ",
];

/// SQLite's page cache for the writer, in KiB (negative `cache_size` means KiB).
const WRITER_CACHE_KIB: i64 = 1024;
/// The read-only connection of `simpul-agent buffer stats` needs even less.
const READER_CACHE_KIB: i64 = 256;
/// How long a statement waits for another connection's lock before `Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the writing connection: WAL, a commit survives a power cut, small cache,
/// and a WAL kept to `wal_bytes` (checkpointed at that size, truncated back to it).
pub(super) fn configure_writer(conn: &Connection, wal_bytes: u64) -> Result<(), BufferError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(BufferError::NotABuffer(format!("SQLite refused WAL mode (got {mode})")));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let wal_pages = i64::try_from(wal_bytes).unwrap_or(i64::MAX) / page_size.max(512);
    conn.pragma_update(None, "wal_autocheckpoint", wal_pages.max(16))?;
    conn.pragma_update(None, "journal_size_limit", i64::try_from(wal_bytes).unwrap_or(i64::MAX))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Settings of a read-only connection.
pub(super) fn configure_reader(conn: &Connection) -> Result<(), BufferError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(())
}

/// Brings the file's schema up to [`VERSION`], creating it in an empty file.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), BufferError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    if found > VERSION {
        return Err(BufferError::TooNew { found, supported: VERSION });
    }
    if found == 0 {
        let other: Option<String> =
            tx.query_row("SELECT name FROM sqlite_schema LIMIT 1", [], |r| r.get(0)).optional()?;
        if let Some(name) = other {
            return Err(BufferError::NotABuffer(format!("it holds a table or index named {name:?}")));
        }
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i64::try_from(from + 1).unwrap_or(VERSION))?;
    }
    tx.commit()?;
    Ok(())
}

/// Checks that a file opened read-only holds a buffer this agent understands.
pub(super) fn check_version(conn: &Connection) -> Result<(), BufferError> {
    match user_version(conn)? {
        0 => Err(BufferError::NotABuffer("schema version 0: no buffer was ever created here".into())),
        v if v > VERSION => Err(BufferError::TooNew { found: v, supported: VERSION }),
        _ => Ok(()),
    }
}

fn user_version(conn: &Connection) -> Result<i64, BufferError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Reads an integer from `meta`.
pub(super) fn meta_get(conn: &Connection, key: &str) -> Result<i64, BufferError> {
    let v: Option<i64> =
        conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()?;
    Ok(v.unwrap_or(0))
}

/// Writes an integer into `meta`.
pub(super) fn meta_set(conn: &Connection, key: &str, value: i64) -> Result<(), BufferError> {
    conn.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}
