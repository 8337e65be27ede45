//! Pieces of a daemon's command line: output, logging, signals.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::exit;

/// Writes `text` to stdout. A reader that went away (`| head`) is not an error.
pub fn emit(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => exit::code(exit::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::code(exit::OK),
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            exit::code(exit::FAILURE)
        }
    }
}

/// Logs with the config's filter (`RUST_LOG` wins): to journald under systemd (as
/// `identifier`), as text on stderr elsewhere.
///
/// Under systemd (stderr is the journal stream the unit's `JOURNAL_STREAM` names), each
/// event goes to journald as a record of its own ([`crate::journal`]): its level as the
/// record's priority and its fields as journal fields, where text on stderr would reach
/// journald as lines it stores as they are, all at one priority. Elsewhere (tests, a
/// terminal, the README demo) it is text on stderr, coloured only on a terminal. If
/// journald's socket does not answer, stderr too, and stderr says so once.
pub fn init_logging(identifier: &str, level: &str) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    use crate::journal::{self, Destination, JournalLayer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    match journal::choose(systemd_journal_logger::connected_to_journal(), || JournalLayer::new(identifier)) {
        Destination::Journal(layer) => {
            let _ = tracing_subscriber::registry().with(filter).with(layer).try_init();
        }
        Destination::Stderr => log_to_stderr(filter),
        Destination::JournalUnreachable(e) => {
            eprintln!("warning: journald cannot be reached ({e}): logging to stderr");
            log_to_stderr(filter);
        }
    }
}

fn log_to_stderr(filter: tracing_subscriber::EnvFilter) {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The first SIGTERM or SIGINT starts a graceful stop; a second one exits at once.
pub async fn stop_on_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    for n in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if n == 0 {
            tracing::info!("signal received: stopping gracefully (send again to stop at once)");
            crate::systemd::stopping();
            shutdown.cancel();
        } else {
            tracing::warn!("second signal: stopping at once");
            std::process::exit(i32::from(exit::FAILURE));
        }
    }
}
