//! `simpul-fleet rollouts start|list|show|pause|resume|abort` over the API: rollouts in
//! waves (docs/design/updates.md).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;

use super::client::{ApiArgs, Client, Failure, print_json};
use super::table::{cell, items, render};
use crate::exit;
use crate::rollouts::{DeviceState, RolloutSpec};

#[derive(Debug, Subcommand)]
pub enum RolloutsCmd {
    /// Start a rollout of a published release: the canaries first, then each wave once
    /// the one before ran it healthily through the gate.
    Start {
        /// The release version (x.y.z), published with `releases publish`.
        version: String,
        /// Only this config group's devices (default: every device).
        #[arg(long)]
        group: Option<String>,
        /// Devices in the first wave.
        #[arg(long, default_value_t = 2)]
        canary: u32,
        /// Later waves' cumulative shares of the devices, per cent, the last 100.
        #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
        waves: Vec<u8>,
        /// How long a device must run the release, online, before it counts as succeeded.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        gate: Duration,
        /// Pause when more than this share (per cent) of a wave failed or rolled back.
        #[arg(long, default_value_t = 20)]
        failure_threshold: u8,
        /// How long an ordered device may take to report the release before it counts as
        /// unreachable.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        deadline: Duration,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Every rollout: version, state, wave, and how many devices succeeded, failed,
    /// rolled back.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One rollout: its progress per wave and where each device is.
    Show {
        id: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Open no more waves until resumed.
    Pause {
        id: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Go on with a paused rollout (the open wave's failures so far are accepted).
    Resume {
        id: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop for good; devices not yet updated keep what they run.
    Abort {
        id: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(config: &Path, cmd: RolloutsCmd) -> ExitCode {
    let result = match cmd {
        RolloutsCmd::Start { version, group, canary, waves, gate, failure_threshold, deadline, api } => {
            let spec = RolloutSpec { version, group, canary, waves, gate, failure_threshold, deadline };
            start(config, &api, &spec)
        }
        RolloutsCmd::List { api } => list(config, &api),
        RolloutsCmd::Show { id, api } => show(config, &api, id),
        RolloutsCmd::Pause { id, api } => control(config, &api, id, "pause"),
        RolloutsCmd::Resume { id, api } => control(config, &api, id, "resume"),
        RolloutsCmd::Abort { id, api } => control(config, &api, id, "abort"),
    };
    result.unwrap_or_else(Failure::report)
}

/// The totals of a rollout's `progress`, by state.
fn total(v: &serde_json::Value, key: &str) -> u64 {
    items(&v["progress"]).iter().filter_map(|w| w[key].as_u64()).sum()
}

/// One line: `rollout 3 of 1.4.0: running, wave 1; 20 devices: 2 succeeded, ...`.
fn summary(v: &serde_json::Value) -> String {
    let counts: Vec<String> = DeviceState::ALL
        .iter()
        .map(|s| s.as_str())
        .filter_map(|k| {
            let n = total(v, k);
            (n > 0).then(|| format!("{n} {}", k.replace('_', " ")))
        })
        .collect();
    let reason = v["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
    format!(
        "rollout {} of {}: {}{reason}, wave {}; {} devices: {}",
        cell(&v["id"]),
        cell(&v["spec"]["version"]),
        cell(&v["state"]),
        cell(&v["wave"]),
        total(v, "devices"),
        counts.join(", ")
    )
}

fn start(config: &Path, args: &ApiArgs, spec: &RolloutSpec) -> Result<ExitCode, Failure> {
    if let Some(problem) = spec.problem() {
        return Err(Failure::new(exit::USAGE, problem));
    }
    let body = serde_json::to_value(spec).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let v = Client::new(args, config)?.call(Method::POST, "/api/v1/rollouts", Some(body))?;
    if args.json {
        return Ok(print_json(&v));
    }
    println!("{}", summary(&v));
    Ok(exit::code(exit::OK))
}

fn list(config: &Path, args: &ApiArgs) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, "/api/v1/rollouts", None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["rollouts"])
        .iter()
        .map(|r| {
            let mut row = vec![cell(&r["id"]), cell(&r["spec"]["version"]), cell(&r["state"]), cell(&r["wave"])];
            row.extend(
                ["devices", "succeeded", "failed", "rolled_back", "unreachable"]
                    .iter()
                    .map(|k| total(r, k).to_string()),
            );
            row.push(r["reason"].as_str().unwrap_or_default().to_owned());
            row
        })
        .collect();
    let header =
        ["ID", "VERSION", "STATE", "WAVE", "DEVICES", "SUCCEEDED", "FAILED", "ROLLED BACK", "UNREACHABLE", "REASON"];
    print!("{}", render(&header, &rows));
    Ok(exit::code(exit::OK))
}

fn show(config: &Path, args: &ApiArgs, id: u64) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, &format!("/api/v1/rollouts/{id}"), None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    println!("{}", summary(&v));
    let waves: Vec<Vec<String>> = items(&v["progress"])
        .iter()
        .map(|w| {
            ["wave", "devices", "pending", "ordered", "updated", "succeeded", "failed", "rolled_back", "unreachable"]
                .iter()
                .map(|k| cell(&w[*k]))
                .collect()
        })
        .collect();
    let header =
        ["WAVE", "DEVICES", "PENDING", "ORDERED", "UPDATED", "SUCCEEDED", "FAILED", "ROLLED BACK", "UNREACHABLE"];
    print!("{}", render(&header, &waves));
    println!();
    let devices: Vec<Vec<String>> = items(&v["devices"])
        .iter()
        .map(|d| ["device", "wave", "state", "detail"].iter().map(|k| cell(&d[*k])).collect())
        .collect();
    print!("{}", render(&["DEVICE", "WAVE", "STATE", "DETAIL"], &devices));
    Ok(exit::code(exit::OK))
}

fn control(config: &Path, args: &ApiArgs, id: u64, action: &str) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::POST, &format!("/api/v1/rollouts/{id}/{action}"), None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    println!("{}", summary(&v));
    Ok(exit::code(exit::OK))
}
