//! The durable buffer: every [`Sample`] a sensor produces waits here, in SQLite, until the
//! fleet acknowledges it. It is what makes "late but never lost, never twice" possible.
//!
//! # What is on disk
//!
//! One SQLite file (`[buffer] path`, default `/var/lib/simpul/buffer.db`) in WAL mode with
//! `synchronous = FULL`, plus its `-wal` and `-shm` files. Its tables (see `schema.rs`):
//! `readings` (one row a reading: seq, series id, boot id, wall and monotonic time, the
//! synced flag and the value; NaN is stored as NULL), `series` (interned sensor, metric,
//! unit with running reading and eviction counts), `boots` (interned boot ids), `dropped`
//! (ranges of evicted seqs not yet acknowledged) and `meta` (`next_seq`, the quota). The
//! schema version is `PRAGMA user_version`; [`Buffer::open`] migrates older files.
//!
//! # Sequence numbers
//!
//! [`Buffer::append`] gives each sample the next per-device seq inside the same
//! transaction that stores it and advances `meta.next_seq`, so flushed seqs have no gaps
//! and a seq is never given twice, even after every reading was acknowledged and deleted.
//!
//! # When data is deleted
//!
//! - Acknowledged: [`Buffer::delete_through`] deletes readings (and dropped ranges) with
//!   seq <= the fleet's watermark, the highest seq it has durably stored. Nothing else is
//!   ever deleted by an acknowledgement.
//! - Evicted: when the file's used pages (`(page_count - freelist_count) * page_size`)
//!   pass the quota less a WAL allowance, the append's transaction evicts by the
//!   configured [`Eviction`]: `oldest-first` deletes the oldest readings; `thin-oldest`
//!   deletes every other reading of each series in the oldest part (keeping its time span
//!   at half the resolution) and falls back to oldest-first when that frees too little.
//!   Every evicted reading is counted per sensor (persisted) and its seq recorded in
//!   `dropped`, which [`Buffer::read_batch`] returns so the fleet never waits for it.
//!   Freed pages are reused, so the file stays near the quota.
//!
//! # What a crash or power cut can lose
//!
//! A commit is durable when [`Buffer::append`] returns (WAL + `synchronous = FULL`).
//! [`spawn_writer`] commits once per flush interval, so a crash or power cut loses at most
//! the samples received since the last flush (one interval, default 1 s). It never loses
//! a reading that was flushed and not acknowledged, never gives a seq twice, and never
//! leaves a gap in flushed seqs: a transaction that did not commit left nothing behind.

mod append;
mod counts;
mod error;
mod evict;
mod intern;
mod read;
mod schema;
mod stats;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use error::BufferError;
pub use stats::BufferStats;
pub use writer::{WriterProgress, WriterSummary, spawn_writer, spawn_writer_with_progress};

use crate::config::{BufferConfig, Eviction};
use intern::Interner;

#[cfg(doc)]
use crate::Sample;

/// The buffer's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferOptions {
    /// Disk quota for the database and its WAL, in bytes.
    pub quota_bytes: u64,
    /// What to drop when the quota is reached.
    pub eviction: Eviction,
}

impl From<&BufferConfig> for BufferOptions {
    fn from(c: &BufferConfig) -> Self {
        BufferOptions { quota_bytes: c.quota.as_u64(), eviction: c.eviction }
    }
}

impl Default for BufferOptions {
    fn default() -> Self {
        BufferOptions::from(&BufferConfig::default())
    }
}

/// The durable buffer: one SQLite connection. See the module documentation for the rules.
#[derive(Debug)]
pub struct Buffer {
    conn: Connection,
    path: PathBuf,
    opts: BufferOptions,
    /// The next seq to give; equals `meta.next_seq` outside a transaction. Unused when
    /// read-only (stats read `meta`, which the writer moves on).
    next_seq: u64,
    interner: Interner,
}

impl Buffer {
    /// Opens the buffer at `path` for writing, creating its directory and schema if
    /// needed and migrating an older schema.
    pub fn open(path: &Path, opts: BufferOptions) -> Result<Buffer, BufferError> {
        Buffer::open_writer(path, opts).map_err(|e| BufferError::Open { path: path.to_owned(), source: Box::new(e) })
    }

    fn open_writer(path: &Path, opts: BufferOptions) -> Result<Buffer, BufferError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| BufferError::CreateDir { path: dir.to_owned(), source })?;
        }
        let mut conn = Connection::open(path)?;
        schema::configure_writer(&conn, evict::wal_allowance(opts.quota_bytes))?;
        schema::migrate(&mut conn)?;
        schema::meta_set(&conn, "quota_bytes", intern::to_sql(opts.quota_bytes))?;
        let next_seq = append::recover_next_seq(&conn)?;
        Ok(Buffer { conn, path: path.to_owned(), opts, next_seq, interner: Interner::default() })
    }

    /// Opens an existing buffer read-only, for `simpul-agent buffer stats` while the agent
    /// runs: WAL lets it read a consistent snapshot without blocking the writer.
    pub fn open_read_only(path: &Path) -> Result<Buffer, BufferError> {
        let open = || -> Result<Buffer, BufferError> {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(path, flags)?;
            schema::configure_reader(&conn)?;
            schema::check_version(&conn)?;
            let quota_bytes = intern::from_sql(schema::meta_get(&conn, "quota_bytes")?);
            let opts = BufferOptions { quota_bytes, eviction: Eviction::default() };
            Ok(Buffer { conn, path: path.to_owned(), opts, next_seq: 0, interner: Interner::default() })
        };
        open().map_err(|e| BufferError::Open { path: path.to_owned(), source: Box::new(e) })
    }

    /// The file this buffer lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits it was opened with (for a read-only buffer: the writer's quota).
    pub fn options(&self) -> BufferOptions {
        self.opts
    }
}
