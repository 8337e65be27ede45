//! WAL checkpoints on their own thread, off the commit path.
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses the WAL's size
//! threshold: that commit then copies the WAL into the database and fsyncs it, and every
//! device whose batch is in it waits for its ack the whole time (the ingest benchmark's p99
//! doubled). So the writer's automatic checkpoint is off and this thread runs a PASSIVE
//! checkpoint every `every`: it never blocks the writer or readers, and once it has copied
//! everything the writer starts the WAL over from its beginning. If it ever falls behind,
//! the WAL grows; the next checkpoint catches up. A TRUNCATE checkpoint at shutdown leaves
//! a clean file.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// The running checkpointer; stops (after a last checkpoint) when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` every `every`.
    pub fn start(path: &Path, every: Duration) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let path: PathBuf = path.to_owned();
        let thread = std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "checkpointer cannot open the database; the WAL will grow");
                    return;
                }
            };
            let _ = conn.busy_timeout(Duration::from_secs(5));
            loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => checkpoint(&conn, "PASSIVE"),
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                        checkpoint(&conn, "TRUNCATE");
                        return;
                    }
                }
            }
        })?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread) })
    }
}

fn checkpoint(conn: &Connection, mode: &str) {
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match result {
        Ok((busy, wal_pages, copied)) => tracing::trace!(mode, busy, wal_pages, copied, "checkpoint"),
        Err(e) => tracing::warn!(mode, error = %e, "WAL checkpoint failed; retrying next time"),
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
