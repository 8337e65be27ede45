//! Exit codes: a contract with systemd and with scripts.
//!
//! The units list [`CONFIG`] in `RestartPreventExitStatus=`, so a broken config does not
//! restart-loop; any other failure is restarted.

use std::process::ExitCode;

/// Ran and stopped cleanly.
pub const OK: u8 = 0;
/// Failed at run time (a store or buffer unusable, a port taken): worth a restart.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: u8 = 2;
/// The config is wrong (sysexits' EX_CONFIG): restarting will not help.
pub const CONFIG: u8 = 78;

/// As an `ExitCode`.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
