//! `simpul-provision`: writes a new box's bootstrap bundle onto its SD card's boot partition.
//!
//!     simpul-provision --boot /media/$USER/bootfs --fleet https://fleet.example:8443 \
//!         --broker fleet.example:8883 --ca ca.pem --token sple_... --site "Kelurahan Ciwedus"

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use simpul_provision::{Bundle, BundleError, provision};

#[derive(Debug, Parser)]
#[command(version, about = "Write a Simpul bootstrap bundle onto a mounted SD card's boot partition")]
struct Args {
    /// The mounted boot partition (it has config.txt or cmdline.txt).
    #[arg(long)]
    boot: PathBuf,
    /// The fleet's device listener, https://host:port.
    #[arg(long)]
    fleet: String,
    /// The fleet's MQTT broker, host:port.
    #[arg(long)]
    broker: String,
    /// The fleet CA certificate (the fleet's `[trust] dir`/ca.pem).
    #[arg(long)]
    ca: PathBuf,
    /// A one-time enrolment token (`simpul-fleet tokens create --group G --offline`).
    #[arg(long, env = "SIMPUL_ENROL_TOKEN")]
    token: String,
    /// The device id to enrol as (default: the box's own).
    #[arg(long)]
    device_id: Option<String>,
    /// The site's name, for people.
    #[arg(long)]
    site: Option<String>,
    /// The group the token was made for (informational).
    #[arg(long)]
    group: Option<String>,
    /// Write even if the folder does not look like a Pi boot partition.
    #[arg(long)]
    force: bool,
}

fn run(args: Args) -> Result<PathBuf, BundleError> {
    let ca = std::fs::read_to_string(&args.ca)
        .map_err(|source| BundleError::Io { path: args.ca.display().to_string(), source })?;
    let bundle = Bundle {
        fleet: args.fleet,
        broker: args.broker,
        token: Some(args.token),
        device_id: args.device_id,
        site: args.site,
        group: args.group,
        ca,
    };
    provision(&args.boot, &bundle, args.force)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                BundleError::Invalid(_) | BundleError::NotBoot(_) => 2,
                _ => 1,
            })
        }
    }
}
