//! `--offline`: users and tokens written straight into the fleet database named by the
//! config's `[store] path`, with no server: how the first ops user or the platform's
//! token is made (docs/ops/first-login.md).

use std::path::Path;
use std::sync::Arc;

use super::client::Failure;
use crate::auth::ops::{self, AuthError};
use crate::auth::{AuthStore, Issued, Role, User};
use crate::config::FleetConfig;
use crate::exit;
use crate::store::SideStores;
use crate::trust::FleetCa;
use crate::trust::tokens::{self, IssuedEnrolment, TokenError, TokenRequest};

fn load(config: &Path) -> Result<FleetConfig, Failure> {
    crate::config::load(config).map_err(|e| {
        let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
        Failure::new(exit::CONFIG, format!("--offline reads [store] path from the config: {}", problems.join("; ")))
    })
}

/// The side stores of the database `[store]` names, opened by the server's own factory
/// (no readings store: these commands never touch readings).
fn side_stores(cfg: &FleetConfig) -> Result<SideStores, Failure> {
    crate::store::open_side_stores(&cfg.store)
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot open {}: {e}", cfg.store.path.display())))
}

fn open(config: &Path) -> Result<Arc<dyn AuthStore>, Failure> {
    Ok(side_stores(&load(config)?)?.auth)
}

fn failed(e: AuthError) -> Failure {
    let code = if matches!(e, AuthError::Invalid(_)) { exit::USAGE } else { exit::FAILURE };
    Failure::new(code, e.to_string())
}

pub fn add_user(config: &Path, name: &str, role: Role, password: &str) -> Result<User, Failure> {
    ops::add_user(open(config)?.as_ref(), name, role, password, crate::auth::now_ms()).map_err(failed)
}

pub fn create_token(config: &Path, name: &str, role: Role) -> Result<Issued, Failure> {
    ops::create_token(open(config)?.as_ref(), name, role, crate::auth::now_ms()).map_err(failed)
}

/// What an enrolment token is for (`tokens create --group`).
#[derive(Debug, Clone)]
pub struct EnrolmentArgs {
    pub group: Option<String>,
    pub expires: Option<std::time::Duration>,
    pub site: Option<String>,
}

/// An enrolment token written into the database, of the fleet whose CA is in `[trust] dir`
/// (made there now if there is none yet).
pub fn create_enrolment_token(config: &Path, args: EnrolmentArgs) -> Result<IssuedEnrolment, Failure> {
    let cfg = load(config)?;
    let ca = FleetCa::load_or_create(&cfg.trust.dir).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let store = side_stores(&cfg)?.trust.trust_store();
    let req = TokenRequest {
        group: args.group,
        site: args.site,
        expires: args.expires.unwrap_or(cfg.trust.token_expiry),
        created_by: "cli --offline".to_owned(),
    };
    tokens::create(store.as_ref(), ca.fleet_id(), &req, crate::auth::now_ms()).map_err(|e| match e {
        TokenError::Invalid(m) => Failure::new(exit::USAGE, m),
        other => Failure::new(exit::FAILURE, other.to_string()),
    })
}
