//! Config errors that name the file, the line and the key (types shared with the fleet).

pub use simpul_base::{ConfigError, Problem};

use super::provenance::{KeyPath, Provenance};

/// A problem at `key`, located through `prov`.
pub fn at(prov: &Provenance, key: &KeyPath, message: impl Into<String>) -> Problem {
    let loc = prov.locate(key);
    Problem {
        file: loc.map(|l| l.file.clone()),
        line: loc.map(|l| l.line),
        key: (!key.0.is_empty()).then(|| key.to_string()),
        message: message.into(),
    }
}
