//! A serial device on a pseudo-terminal, at a path of the test's choosing.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

/// One open pseudo-terminal: the device's end (master) and the slave end, kept open so
/// that the pair stays usable before and between the agent's opens.
#[derive(Debug)]
struct Pty {
    master: SerialStream,
    _slave: SerialStream,
    slave_path: PathBuf,
}

impl Pty {
    fn open() -> io::Result<Pty> {
        let (master, mut slave) = SerialStream::pair().map_err(io::Error::from)?;
        // Let the agent open the slave by its path too.
        slave.set_exclusive(false).map_err(io::Error::from)?;
        let slave_path = slave.name().map(PathBuf::from).ok_or_else(|| io::Error::other("pty slave has no name"))?;
        Ok(Pty { master, _slave: slave, slave_path })
    }
}

/// A serial device the test drives: bytes written here come out of the port the agent
/// opened at [`PtySensor::link`].
#[derive(Debug)]
pub struct PtySensor {
    link: PathBuf,
    pty: Option<Pty>,
}

impl PtySensor {
    /// Opens a pty and points a symlink at `link` to its slave (replacing any old link).
    pub fn create(link: impl Into<PathBuf>) -> io::Result<PtySensor> {
        let mut sensor = PtySensor { link: link.into(), pty: None };
        sensor.replug()?;
        Ok(sensor)
    }

    /// The path the agent opens.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The `/dev/pts/N` the link points at, while plugged in.
    pub fn slave_path(&self) -> Option<&Path> {
        self.pty.as_ref().map(|p| p.slave_path.as_path())
    }

    /// Whether the device is plugged in.
    pub fn is_plugged(&self) -> bool {
        self.pty.is_some()
    }

    /// Writes raw bytes down the line.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let pty = self.pty.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "unplugged"))?;
        pty.master.write_all(bytes).await?;
        pty.master.flush().await
    }

    /// Writes `line` and a `\r`, as an ultrasonic ranger does.
    pub async fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\r');
        self.write(&bytes).await
    }

    /// The device's end of the line, for peers that also read (a Modbus slave).
    pub fn master(&mut self) -> Option<&mut SerialStream> {
        self.pty.as_mut().map(|p| &mut p.master)
    }

    /// Takes the device's end out, for a peer that moves it into a task.
    pub(crate) fn take_master(&mut self) -> Option<(SerialStream, SerialStream)> {
        self.pty.take().map(|p| (p.master, p._slave))
    }

    /// Pulls the cable: closes the pty (the agent's reads fail) and removes the link.
    pub fn unplug(&mut self) -> io::Result<()> {
        self.pty = None;
        remove_link(&self.link)
    }

    /// Plugs a device back in: a new pty, the link pointing at it.
    pub fn replug(&mut self) -> io::Result<()> {
        self.pty = None;
        let pty = Pty::open()?;
        remove_link(&self.link)?;
        std::os::unix::fs::symlink(&pty.slave_path, &self.link)?;
        self.pty = Some(pty);
        Ok(())
    }
}

impl Drop for PtySensor {
    fn drop(&mut self) {
        // Best effort: a leftover link in a temp dir is harmless.
        let _ = remove_link(&self.link);
    }
}

fn remove_link(link: &Path) -> io::Result<()> {
    match std::fs::remove_file(link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
