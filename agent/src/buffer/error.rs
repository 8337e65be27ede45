//! What can go wrong in the buffer, and whether trying again can help.

use std::path::PathBuf;

use rusqlite::ErrorCode;
use thiserror::Error;

/// An error of the durable buffer.
#[derive(Debug, Error)]
pub enum BufferError {
    /// Opening (or creating) the buffer at `path` failed; `source` says why.
    #[error("opening the buffer {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<BufferError>,
    },
    /// The buffer's directory could not be created.
    #[error("creating the directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a SQLite database, or SQLite found it damaged.
    #[error("the file is not a SQLite database or is corrupt (move it aside to start a new buffer): {0}")]
    Corrupt(#[source] rusqlite::Error),
    /// The file is a SQLite database, but not a Simpul buffer.
    #[error("the file is a SQLite database but not a Simpul buffer ({0})")]
    NotABuffer(String),
    /// The file was written by a newer agent whose schema this one does not know.
    #[error("the buffer has schema version {found}; this agent knows versions up to {supported}")]
    TooNew { found: i64, supported: i64 },
    /// Another connection holds the lock longer than the busy timeout.
    #[error("the buffer is busy (locked by another connection): {0}")]
    Busy(#[source] rusqlite::Error),
    /// The disk (or SQLite's size limit) is full.
    #[error("the disk is full: {0}")]
    DiskFull(#[source] rusqlite::Error),
    /// An I/O error under SQLite (a flaky SD card, a removed disk).
    #[error("disk I/O error: {0}")]
    Io(#[source] rusqlite::Error),
    /// Any other SQLite error.
    #[error("SQLite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The writer's blocking task panicked or was cancelled.
    #[error("the buffer writer task failed: {0}")]
    WriterTask(String),
}

impl BufferError {
    /// Whether the same call may succeed later: a lock held by another process, a full
    /// disk (the quota may evict, an operator may free space), a transient I/O error.
    /// A corrupt or foreign file, or a schema from the future, will not heal by waiting.
    pub fn is_retryable(&self) -> bool {
        match self {
            BufferError::Open { source, .. } => source.is_retryable(),
            BufferError::Busy(_) | BufferError::DiskFull(_) | BufferError::Io(_) => true,
            BufferError::CreateDir { source, .. } => source.kind() != std::io::ErrorKind::PermissionDenied,
            BufferError::Corrupt(_)
            | BufferError::NotABuffer(_)
            | BufferError::TooNew { .. }
            | BufferError::Sqlite(_)
            | BufferError::WriterTask(_) => false,
        }
    }

    /// Whether the file at the path is not a (healthy) SQLite database.
    pub fn is_corrupt(&self) -> bool {
        match self {
            BufferError::Open { source, .. } => source.is_corrupt(),
            BufferError::Corrupt(_) => true,
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for BufferError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BufferError::Busy(e),
            Some(ErrorCode::DiskFull) => BufferError::DiskFull(e),
            Some(ErrorCode::SystemIoFailure) => BufferError::Io(e),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => BufferError::Corrupt(e),
            _ => BufferError::Sqlite(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_full_are_retryable_but_corrupt_is_not() {
        assert!(BufferError::from(sqlite_error(rusqlite::ffi::SQLITE_BUSY)).is_retryable());
        assert!(BufferError::from(sqlite_error(rusqlite::ffi::SQLITE_FULL)).is_retryable());
        let corrupt = BufferError::from(sqlite_error(rusqlite::ffi::SQLITE_NOTADB));
        assert!(!corrupt.is_retryable());
        assert!(corrupt.is_corrupt());
    }
}
