//! `[releases]`: the public release keys the fleet accepts releases from.

use serde::{Deserialize, Serialize};
use simpul_protocol::release::parse_public_key;

/// `[releases]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasesConfig {
    /// The release keys' public halves (64 hex digits each, what `simpul-fleet releases
    /// keygen` printed); a release signed by none of them is refused at publish. Default
    /// empty: publishing is off.
    #[serde(default)]
    pub keys: Vec<String>,
}

impl ReleasesConfig {
    /// What is wrong with it, by key.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        self.keys
            .iter()
            .filter_map(|k| parse_public_key(k).err().map(|e| ("releases.keys", format!("{k:?}: {e}"))))
            .collect()
    }
}
