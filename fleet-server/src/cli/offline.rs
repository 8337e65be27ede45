//! `--offline`: users and tokens written straight into the fleet database named by the
//! config's `[store] path`, with no server: how the first ops user or the platform's
//! token is made (docs/ops/first-login.md).

use std::path::Path;

use super::client::Failure;
use crate::auth::ops::{self, AuthError};
use crate::auth::{Issued, Role, User};
use crate::exit;
use crate::store::sqlite::SqliteAuthStore;

fn open(config: &Path) -> Result<SqliteAuthStore, Failure> {
    let cfg = crate::config::load(config).map_err(|e| {
        let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
        Failure::new(exit::CONFIG, format!("--offline reads [store] path from the config: {}", problems.join("; ")))
    })?;
    SqliteAuthStore::open(&cfg.store.path)
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot open {}: {e}", cfg.store.path.display())))
}

fn failed(e: AuthError) -> Failure {
    let code = if matches!(e, AuthError::Invalid(_)) { exit::USAGE } else { exit::FAILURE };
    Failure::new(code, e.to_string())
}

pub fn add_user(config: &Path, name: &str, role: Role, password: &str) -> Result<User, Failure> {
    ops::add_user(&open(config)?, name, role, password, crate::auth::now_ms()).map_err(failed)
}

pub fn create_token(config: &Path, name: &str, role: Role) -> Result<Issued, Failure> {
    ops::create_token(&open(config)?, name, role, crate::auth::now_ms()).map_err(failed)
}
