//! rusqlite's errors as [`StoreError`]s: the only place outside this module's queries that
//! knows SQLite's error codes.

use rusqlite::ErrorCode;

use crate::store::{BackendError, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Backend(BackendError::new("sqlite", is_retryable(&e), e))
    }
}

/// BUSY and LOCKED: another connection holds the database; it will let go.
fn is_retryable(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(e, _) => matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> StoreError {
        StoreError::from(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None))
    }

    #[test]
    fn a_busy_or_locked_database_is_worth_retrying_and_a_broken_constraint_is_not() {
        assert!(failure(rusqlite::ffi::SQLITE_BUSY).is_retryable());
        assert!(failure(rusqlite::ffi::SQLITE_LOCKED).is_retryable());
        assert!(!failure(rusqlite::ffi::SQLITE_CONSTRAINT).is_retryable());
        assert!(!StoreError::from(rusqlite::Error::QueryReturnedNoRows).is_retryable());
    }

    #[test]
    fn a_sqlite_error_reads_as_before_and_keeps_its_source() {
        let e = StoreError::from(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!(e.to_string(), format!("sqlite: {}", rusqlite::Error::QueryReturnedNoRows));
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<rusqlite::Error>());
        assert!(matches!(source, Some(rusqlite::Error::QueryReturnedNoRows)));
    }
}
