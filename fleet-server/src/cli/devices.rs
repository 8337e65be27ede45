//! `simpul-fleet devices list|show|proposals|accept` over the API.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

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
    /// The sensors a device proposed (plugged in and probed by its staff), with their ids.
    Proposals {
        /// The device id.
        device: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Accepts a proposed sensor into the device's desired config (ops only).
    Accept {
        /// The device id.
        device: String,
        /// The proposal's id, from `devices proposals`.
        proposal: i64,
        /// The sensor id to give it (default the one proposed).
        #[arg(long = "as", value_name = "SENSOR_ID")]
        sensor_id: Option<String>,
        /// Why, for the config history.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revokes a device's certificates and closes its live session (ops only): it is cut
    /// off at once and needs a new enrolment token to come back.
    Revoke {
        /// The device id.
        device: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Tells a device to run a published release now, outside any rollout (ops only); the
    /// box checks the release's signature itself and rolls back a release that fails.
    Update {
        /// The device id.
        device: String,
        /// The release version.
        version: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// What the broker refused: publishes and subscribes outside a device's topics,
    /// refused connections (newest first).
    SecurityEvents {
        /// Only this identity's.
        #[arg(long)]
        identity: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(config: &Path, cmd: DevicesCmd) -> ExitCode {
    let result = match cmd {
        DevicesCmd::List { api } => list(config, &api),
        DevicesCmd::Show { device, api } => show(config, &api, &device),
        DevicesCmd::Proposals { device, api } => proposals(config, &api, &device),
        DevicesCmd::Accept { device, proposal, sensor_id, comment, api } => {
            let body = json!({"sensor_id": sensor_id, "comment": comment});
            accept(config, &api, &device, proposal, body)
        }
        DevicesCmd::Revoke { device, api } => revoke(config, &api, &device),
        DevicesCmd::Update { device, version, api } => update(config, &api, &device, &version),
        DevicesCmd::SecurityEvents { identity, api } => security_events(config, &api, identity.as_deref()),
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

fn proposals(config: &Path, args: &ApiArgs, device: &str) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, &format!("/api/v1/devices/{device}/events"), None)?;
    let found: Vec<&Value> = items(&v["events"]).iter().filter(|e| e["kind"] == "sensor_proposed").collect();
    if args.json {
        return Ok(print_json(&Value::Array(found.into_iter().cloned().collect())));
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|e| {
            let state = match &e["accepted"] {
                Value::Null => "waiting".to_owned(),
                a => format!("accepted as {} in v{}", cell(&a["sensor_id"]), cell(&a["version"])),
            };
            vec![cell(&e["id"]), cell(&e["at"]), cell(&e["detail"]["port"]), cell(&e["detail"]["summary"]), state]
        })
        .collect();
    Ok(simpul_base::cli::emit(&render(&["ID", "AT", "PORT", "FOUND", "STATE"], &rows)))
}

fn accept(config: &Path, args: &ApiArgs, device: &str, proposal: i64, body: Value) -> Result<ExitCode, Failure> {
    let path = format!("/api/v1/devices/{device}/proposals/{proposal}/accept");
    let v = Client::new(args, config)?.call(Method::POST, &path, Some(body))?;
    if args.json {
        return Ok(print_json(&v));
    }
    println!("{device}: sensor {} added in config version {}", cell(&v["sensor_id"]), cell(&v["version"]));
    Ok(ExitCode::SUCCESS)
}

fn update(config: &Path, args: &ApiArgs, device: &str, version: &str) -> Result<ExitCode, Failure> {
    let path = format!("/api/v1/devices/{device}/release");
    let v = Client::new(args, config)?.call(Method::PUT, &path, Some(json!({ "version": version })))?;
    if args.json {
        return Ok(print_json(&v));
    }
    println!("{device}: told to run {version}");
    Ok(ExitCode::SUCCESS)
}

fn revoke(config: &Path, args: &ApiArgs, device: &str) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::POST, &format!("/api/v1/devices/{device}/revoke"), None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let n = v["revoked"].as_array().map_or(0, Vec::len);
    let session = if v["disconnected"].as_bool() == Some(true) { "; its session was closed" } else { "" };
    println!("{device}: {n} certificate(s) revoked{session}");
    Ok(ExitCode::SUCCESS)
}

fn security_events(config: &Path, args: &ApiArgs, identity: Option<&str>) -> Result<ExitCode, Failure> {
    let path = match identity {
        Some(i) => {
            format!("/api/v1/security-events?{}", serde_urlencoded::to_string([("identity", i)]).unwrap_or_default())
        }
        None => "/api/v1/security-events".to_owned(),
    };
    let v = Client::new(args, config)?.call(Method::GET, &path, None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    for e in v["events"].as_array().into_iter().flatten() {
        let at = e["at_ms"].as_i64().map(crate::api::json::rfc3339_ms).unwrap_or_default();
        println!(
            "{at}  {}  {}  {}  {}",
            cell(&e["identity"]),
            cell(&e["kind"]),
            cell(&e["detail"]),
            cell(&e["remote"])
        );
    }
    Ok(ExitCode::SUCCESS)
}
