//! `simpul-fleet devices list|show <device>` over the API.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{ApiArgs, Client, Failure, print_json};
use super::table::{cell, items, render};

#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// Every device: online, last seen, version, buffer, alerts.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One device's watermark and counts.
    Show {
        /// The device id.
        device: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(config: &Path, cmd: DevicesCmd) -> ExitCode {
    let result = match cmd {
        DevicesCmd::List { api } => list(config, &api),
        DevicesCmd::Show { device, api } => show(config, &api, &device),
    };
    result.unwrap_or_else(Failure::report)
}

fn list(config: &Path, args: &ApiArgs) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, "/api/v1/devices", None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["devices"])
        .iter()
        .map(|d| {
            let online = match d["online"].as_bool() {
                Some(true) => "online",
                Some(false) => "offline",
                None => "-",
            };
            let alerts = d["alerts"].as_array().map_or(0, Vec::len);
            vec![
                cell(&d["device"]),
                online.to_owned(),
                cell(&d["last_seen"]),
                cell(&d["health"]["version"]),
                cell(&d["health"]["buffer_depth"]),
                alerts.to_string(),
            ]
        })
        .collect();
    Ok(simpul_base::cli::emit(&render(&["DEVICE", "STATE", "LAST SEEN", "VERSION", "BUFFER", "ALERTS"], &rows)))
}

fn show(config: &Path, args: &ApiArgs, device: &str) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, &format!("/api/v1/devices/{device}"), None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = match &v {
        Value::Object(m) => m.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect(),
        other => vec![vec!["device".to_owned(), cell(other)]],
    };
    Ok(simpul_base::cli::emit(&render(&["FIELD", "VALUE"], &rows)))
}
