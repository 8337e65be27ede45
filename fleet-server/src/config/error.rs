//! Config errors that name the file, the line and the key (types shared with the agent).

pub use simpul_base::{ConfigError, Problem};
