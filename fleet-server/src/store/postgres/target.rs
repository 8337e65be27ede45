//! Where the database is and how the fleet reaches it: `[store] url` parsed once, and TLS
//! when `[store] tls_ca_file` names the CA that issued the server's certificate.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// A database to connect to, as often as needed.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the config: it may hold a password.
        f.debug_struct("PgTarget").field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

impl PgTarget {
    /// `url` (libpq's key=value or URL form) over TLS verified against the CA certificate(s)
    /// in `ca_file`, or in plain when there is none. With a CA the connection is TLS or
    /// nothing (`sslmode=require`; the server's certificate must name the host the URL
    /// gives); without one a URL asking for `sslmode=require` is refused here, not at the
    /// first query.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<PgTarget, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| {
            if ["sslrootcert", "verify-ca", "verify-full"].iter().any(|k| url.contains(k)) {
                StoreError::Config(format!(
                    "url: {e}: the fleet takes the database's CA from [store] tls_ca_file, and with it \
                     always checks the certificate and the host name (libpq's sslmode=verify-full)"
                ))
            } else {
                e.into()
            }
        })?;
        let Some(ca_file) = ca_file else {
            if config.get_ssl_mode() == SslMode::Require {
                return Err(StoreError::Config(
                    "the url asks for sslmode=require: set [store] tls_ca_file to the CA that issued the \
                     database server's certificate"
                        .to_owned(),
                ));
            }
            return Ok(PgTarget { config, tls: None });
        };
        if config.get_ssl_mode() == SslMode::Disable {
            return Err(StoreError::Config(
                "[store] tls_ca_file is set but the url says sslmode=disable: drop one of them".to_owned(),
            ));
        }
        let ca_pem = std::fs::read_to_string(ca_file)
            .map_err(|e| StoreError::Config(format!("tls_ca_file {}: {e}", ca_file.display())))?;
        let tls = simpul_base::tls::client_builder(&ca_pem)
            .map_err(|e| StoreError::Config(format!("tls_ca_file {}: {e}", ca_file.display())))?
            .with_no_client_auth();
        config.ssl_mode(SslMode::Require);
        Ok(PgTarget { config, tls: Some(MakeRustlsConnect::new(tls)) })
    }

    /// `url` in plain, as the tests' private servers on a unix socket are reached.
    pub fn plain(url: &str) -> Result<PgTarget, StoreError> {
        PgTarget::new(url, None)
    }

    /// A new connection.
    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        Ok(match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        })
    }
}
