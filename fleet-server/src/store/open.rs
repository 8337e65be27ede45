//! The store factory: the one place that decides which backend holds the fleet's tables.
//! The server (`run.rs`) opens every store here, the offline CLI the side stores (users,
//! tokens, releases, rollouts, trust). `[store] backend` picks SQLite (the file at
//! `[store] path`) or PostgreSQL (the database at `[store] url`; docs/design/scale-out.md).
//!
//! Blocking, like the stores: call it on the blocking pool from async code.

use std::sync::Arc;

use super::postgres::{PgAuthStore, PgReleaseStore, PgRolloutStore, PgStore, PgTarget, PgTrustStore};
use super::sqlite::{SqliteAuthStore, SqliteReleaseStore, SqliteRolloutStore, SqliteTrustStore};
use super::{SqliteStore, Store, StoreError};
use crate::auth::AuthStore;
use crate::config::{StoreBackend, StoreConfig};
use crate::releases::ReleaseStore;
use crate::rollouts::RolloutStore;
use crate::trust::store::TrustBackend;

/// Every store the fleet server uses, on one database.
#[derive(Clone, Debug)]
pub struct Stores {
    /// Readings, progress, delivery, health, desired config.
    pub store: Arc<dyn Store>,
    /// Operators' users, API tokens, sessions.
    pub auth: Arc<dyn AuthStore>,
    /// Releases and each device's desired release.
    pub releases: Arc<dyn ReleaseStore>,
    /// Rollouts and their devices.
    pub rollouts: Arc<dyn RolloutStore>,
    /// Enrolment tokens, certificates, security events; the broker's revocation check.
    pub trust: Arc<dyn TrustBackend>,
}

/// The stores beside the readings store: what the offline CLI opens, and what the server
/// opens around a readings store of its caller's choosing (`run::start_with_store`).
#[derive(Clone, Debug)]
pub struct SideStores {
    pub auth: Arc<dyn AuthStore>,
    pub releases: Arc<dyn ReleaseStore>,
    pub rollouts: Arc<dyn RolloutStore>,
    pub trust: Arc<dyn TrustBackend>,
}

impl SideStores {
    /// These with `store` as the readings store.
    pub fn with_store(self, store: Arc<dyn Store>) -> Stores {
        let SideStores { auth, releases, rollouts, trust } = self;
        Stores { store, auth, releases, rollouts, trust }
    }
}

/// Opens (creating if needed) every store of `config`, the readings store sampling
/// heartbeat history by `health_history_every`.
pub fn open_stores(config: &StoreConfig) -> Result<Stores, StoreError> {
    let every = config.health_history_every;
    Ok(match config.backend {
        StoreBackend::Sqlite => {
            let store = Arc::new(SqliteStore::open(&config.path)?.with_health_history_every(every));
            sqlite_side_stores(config)?.with_store(store)
        }
        StoreBackend::Postgres => {
            // One target (one read of the CA file) for the readings store and the side stores.
            let target = pg_target(config)?;
            let store = Arc::new(PgStore::open(&target)?.with_health_history_every(every));
            pg_side_stores(&target)?.with_store(store)
        }
    })
}

/// Opens (creating if needed) the side stores of `config`, each on a connection of its own.
pub fn open_side_stores(config: &StoreConfig) -> Result<SideStores, StoreError> {
    match config.backend {
        StoreBackend::Sqlite => sqlite_side_stores(config),
        StoreBackend::Postgres => pg_side_stores(&pg_target(config)?),
    }
}

fn sqlite_side_stores(config: &StoreConfig) -> Result<SideStores, StoreError> {
    let path = &config.path;
    Ok(SideStores {
        auth: Arc::new(SqliteAuthStore::open(path)?),
        releases: Arc::new(SqliteReleaseStore::open(path)?),
        rollouts: Arc::new(SqliteRolloutStore::open(path)?),
        trust: Arc::new(SqliteTrustStore::open(path)?),
    })
}

fn pg_side_stores(target: &PgTarget) -> Result<SideStores, StoreError> {
    Ok(SideStores {
        auth: Arc::new(PgAuthStore::open(target)?),
        releases: Arc::new(PgReleaseStore::open(target)?),
        rollouts: Arc::new(PgRolloutStore::open(target)?),
        trust: Arc::new(PgTrustStore::open(target)?),
    })
}

/// The PostgreSQL database `[store] url` and `[store] tls_ca_file` name.
pub fn pg_target(config: &StoreConfig) -> Result<PgTarget, StoreError> {
    PgTarget::new(&config.url, config.tls_ca_file.as_deref())
}
