//! The `postgres` client's errors as [`StoreError`]s: the only place that knows
//! PostgreSQL's error codes.

use postgres::error::SqlState;

use crate::store::{BackendError, StoreError};

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Backend(BackendError::new("postgres", is_retryable(&e), e))
    }
}

/// A serialization failure or a deadlock (the transaction was rolled back and may be run
/// again), or a lost connection (the next call reconnects).
fn is_retryable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::ADMIN_SHUTDOWN]
            .contains(code),
        // No SQLSTATE: the error came from the socket, not from the server.
        None => e.as_db_error().is_none(),
    }
}
