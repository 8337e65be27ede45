//! Why a store call failed, in terms that do not name a backend: callers ask
//! [`StoreError::is_retryable`] and never look inside a database's own error type.

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused a statement.
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the WAL checkpoint thread: {0}")]
    Checkpointer(#[source] std::io::Error),
    #[error("the database at {path} has schema version {found}; this build knows up to {known}")]
    SchemaTooNew { path: String, found: i64, known: i64 },
    #[error("a stored value is out of range: {0}")]
    Corrupt(String),
    /// `[store]` names a database the fleet cannot reach as asked (TLS settings).
    #[error("[store] {0}")]
    Config(String),
    #[error("the store task panicked or was cancelled: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether trying again later may succeed (a busy database, a lost connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// A database's own error, kept as its source, with the backend's verdict on whether a
/// retry may succeed (SQLite: BUSY and LOCKED; see `sqlite/error.rs`).
/// Shown with its causes (`postgres: error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer`): the `postgres` client names only the kind of failure.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {}", simpul_base::causes::with_causes(source.as_ref()))]
pub struct BackendError {
    backend: &'static str,
    retryable: bool,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BackendError {
    /// `source` from the backend named `backend` (`sqlite`), retryable or not.
    pub fn new(
        backend: &'static str,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> BackendError {
        BackendError { backend, retryable, source: source.into() }
    }

    /// Which backend failed (`sqlite`).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}
