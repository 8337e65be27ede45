//! Serial ports that are plugged in but no sensor uses: what staff just connected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Ports in `dir` whose name starts with one of `prefixes` (`ttyUSB`, `ttyACM`) and that
/// no configured sensor uses. A configured path that is a symlink (`/dev/serial/by-id/...`)
/// counts as the device it points to. A missing or unreadable `dir` gives none.
pub fn unconfigured(dir: &Path, prefixes: &[String], configured: &[PathBuf]) -> Vec<PathBuf> {
    let used: BTreeSet<PathBuf> =
        configured.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| prefixes.iter().any(|pre| n.starts_with(pre.as_str())))
        })
        .filter(|p| {
            let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            !used.contains(&real) && !used.contains(p)
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugged_in_port_no_sensor_uses_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["ttyUSB0", "ttyUSB1", "ttyACM0", "ttyS0", "null"] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        let link = dir.path().join("by-id-sensor");
        std::os::unix::fs::symlink(dir.path().join("ttyUSB0"), &link).expect("symlink");
        let prefixes = vec!["ttyUSB".to_owned(), "ttyACM".to_owned()];
        let found = unconfigured(dir.path(), &prefixes, &[link]);
        let names: Vec<_> = found.iter().filter_map(|p| p.file_name()?.to_str()).collect();
        assert_eq!(names, ["ttyACM0", "ttyUSB1"], "ttyUSB0 is used through its symlink");
        assert!(unconfigured(&dir.path().join("missing"), &prefixes, &[]).is_empty());
    }
}
