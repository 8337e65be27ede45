//! Exit codes: shared by every Simpul binary (see `simpul_base::exit`).

pub use simpul_base::exit::*;
