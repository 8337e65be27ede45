//! Reading and merging config files. (Being written.)
use std::path::{Path, PathBuf};

use super::AgentConfig;

/// Where a config came from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub main: PathBuf,
}

/// A config mistake.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Loads `main` and the drop-ins beside it.
pub fn load(main: &Path) -> Result<AgentConfig, ConfigError> {
    Err(ConfigError(format!("not yet: {}", main.display())))
}

/// Loads one TOML text.
pub fn load_str(_text: &str) -> Result<AgentConfig, ConfigError> {
    Ok(AgentConfig::default())
}
