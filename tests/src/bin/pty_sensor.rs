//! `simpul-pty-sensor`: one test peer on a pseudo-terminal, for demos and manual tests.
//!
//! ```text
//! simpul-pty-sensor ranger --link /tmp/ttyRANGER [--interval 1s]
//! simpul-pty-sensor modbus --link /tmp/ttyMODBUS --slave 1
//! ```
//! Prints the link path, then runs until killed (Ctrl-C or SIGTERM), removing the link.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use simpul_tests::{ModbusSlave, PtySensor, RegisterMap};

#[derive(Debug, Parser)]
#[command(about = "Run a fake serial sensor on a pseudo-terminal")]
struct Args {
    #[command(subcommand)]
    peer: Peer,
}

#[derive(Debug, Subcommand)]
enum Peer {
    /// An ultrasonic ranger writing `R<mm>\r` lines, the level rising slowly.
    Ranger {
        /// Where to put the link to the pty (the agent's `port.path`).
        #[arg(long)]
        link: PathBuf,
        /// Time between lines: `500ms`, `1s`, `2m`.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// First reading, in mm.
        #[arg(long, default_value_t = 1500)]
        start_mm: u32,
    },
    /// A Modbus RTU slave; see `simpul_tests::RegisterMap` for its registers.
    Modbus {
        /// Where to put the link to the pty.
        #[arg(long)]
        link: PathBuf,
        /// Slave id answered.
        #[arg(long, default_value_t = 1)]
        slave: u8,
        /// How fast the level rises, cm per second.
        #[arg(long, default_value_t = 0.1)]
        rise: f64,
    },
}

/// `250ms`, `2s`, `5m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Catches SIGTERM now, and returns a future that ends at Ctrl-C or SIGTERM, so the
/// peer removes its link on the way out.
fn until_killed() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    match Args::parse().peer {
        Peer::Ranger { link, interval, start_mm } => {
            let mut ranger = PtySensor::create(&link).with_context(|| format!("creating {}", link.display()))?;
            println!("{}", link.display());
            let killed = until_killed()?;
            tokio::pin!(killed);
            let mut ticks = tokio::time::interval(interval);
            let mut mm = start_mm;
            loop {
                // Writing waits while nobody reads the port (the pty's buffer is full): the
                // wait is part of the select, so a kill still ends it.
                let line = format!("R{mm}");
                tokio::select! {
                    r = &mut killed => return r,
                    r = async { ticks.tick().await; ranger.write_line(&line).await } => r.context("writing")?,
                }
                mm = mm.wrapping_add(1);
            }
        }
        Peer::Modbus { link, slave, rise } => {
            let map = RegisterMap { rise_cm_per_s: rise, ..RegisterMap::default() };
            let killed = until_killed()?;
            let _slave =
                ModbusSlave::start(&link, &[slave], map).with_context(|| format!("creating {}", link.display()))?;
            println!("{}", link.display());
            killed.await
        }
    }
}
