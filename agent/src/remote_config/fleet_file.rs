//! The fleet's drop-in on disk: `agent.d/90-fleet.toml`, and the one before it,
//! `agent.d/90-fleet.toml.prev` (not read by the loader: it does not end in `.toml`).
//!
//! The first line is the agent's own header,
//! `# simpul-fleet version=7 handled=9 trial=false`: the desired version the file holds
//! (`none` after a rollback to no fleet config), the highest desired version the agent
//! has dealt with (a retained desired config at or below it is not applied again), and
//! whether the file still waits for a broker connection to be confirmed. The rest is the
//! fleet's TOML as it came. Every write goes to a hidden temp file in the same folder,
//! is fsynced, renamed over the target, and the folder fsynced: after a crash the file is
//! the old one or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The fleet drop-in's file name: late in `agent.d/`, so it overrides provisioning's
/// drop-ins, and a person's `95-local.toml` can still override it.
pub const FILE_NAME: &str = "90-fleet.toml";

const HEADER_PREFIX: &str = "# simpul-fleet ";

/// The agent's bookkeeping in the header line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The desired version in the file; `None`: no fleet config.
    pub version: Option<u64>,
    /// The highest desired version dealt with (applied, rolled back).
    pub handled: Option<u64>,
    /// Written, and not yet confirmed by a broker connection.
    pub trial: bool,
}

/// A fleet drop-in: header and the fleet's TOML.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub header: Header,
    pub body: String,
}

impl Contents {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        let h = &self.header;
        format!(
            "{HEADER_PREFIX}version={} handled={} trial={} (written by simpul-agent from the fleet)\n{}",
            opt(h.version),
            opt(h.handled),
            h.trial,
            self.body
        )
    }

    /// Parses a file's text; a file without the header (written by hand) is all body.
    pub fn parse(text: &str) -> Contents {
        let Some(rest) = text.strip_prefix(HEADER_PREFIX) else {
            return Contents { header: Header::default(), body: text.to_owned() };
        };
        let (line, body) = rest.split_once('\n').unwrap_or((rest, ""));
        let mut header = Header::default();
        for field in line.split_whitespace() {
            match field.split_once('=') {
                Some(("version", v)) => header.version = v.parse().ok(),
                Some(("handled", v)) => header.handled = v.parse().ok(),
                Some(("trial", v)) => header.trial = v == "true",
                _ => {}
            }
        }
        Contents { header, body: body.to_owned() }
    }
}

/// The fleet drop-in and its previous version in one `agent.d/` folder.
#[derive(Clone, Debug)]
pub struct FleetFile {
    dir: PathBuf,
}

impl FleetFile {
    /// The files in `dir` (`agent.d/`).
    pub fn new(dir: &Path) -> FleetFile {
        FleetFile { dir: dir.to_owned() }
    }

    /// `agent.d/90-fleet.toml`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// `agent.d/90-fleet.toml.prev`.
    pub fn prev_path(&self) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.prev"))
    }

    /// The current drop-in; `None` when there is none.
    pub fn read(&self) -> std::io::Result<Option<Contents>> {
        read(&self.path())
    }

    /// The previous drop-in; `None` when there was none before the current one.
    pub fn read_prev(&self) -> std::io::Result<Option<Contents>> {
        read(&self.prev_path())
    }

    /// Keeps the current drop-in as `.prev` (or removes a stale `.prev` when there is no
    /// current one) and writes `new` in its place.
    pub fn install(&self, new: &Contents) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        match std::fs::read_to_string(self.path()) {
            Ok(current) => write_atomic(&self.prev_path(), &current)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::remove_file(self.prev_path()) {
                Ok(()) => sync_dir(&self.dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
        write_atomic(&self.path(), &new.to_text())
    }

    /// Rewrites the current drop-in, leaving `.prev` alone (a confirmation, a rollback).
    pub fn replace(&self, new: &Contents) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.path(), &new.to_text())
    }
}

fn read(path: &Path) -> std::io::Result<Option<Contents>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Contents::parse(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Temp file in the same folder, fsync, rename, fsync the folder.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_a_hand_written_file_is_all_body() {
        let c = Contents {
            header: Header { version: Some(7), handled: Some(9), trial: true },
            body: "[sensors.a]\nkind = \"simulated\"\n".to_owned(),
        };
        assert_eq!(Contents::parse(&c.to_text()), c);
        let none = Contents { header: Header { version: None, handled: Some(3), trial: false }, body: String::new() };
        assert_eq!(Contents::parse(&none.to_text()), none);
        assert_eq!(Contents::parse("[log]\n").header, Header::default());
    }

    #[test]
    fn install_keeps_the_previous_file_and_a_first_install_leaves_no_prev() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = FleetFile::new(&dir.path().join("agent.d"));
        std::fs::create_dir_all(dir.path().join("agent.d")).expect("mkdir");
        std::fs::write(f.prev_path(), "stale").expect("write");
        let one = Contents { header: Header { version: Some(1), ..Header::default() }, body: "# one\n".to_owned() };
        f.install(&one).expect("install");
        assert_eq!(f.read_prev().expect("read"), None);
        let two = Contents { header: Header { version: Some(2), ..Header::default() }, body: "# two\n".to_owned() };
        f.install(&two).expect("install");
        assert_eq!(f.read().expect("read"), Some(two));
        assert_eq!(f.read_prev().expect("read"), Some(one));
    }
}
