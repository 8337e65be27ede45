//! `simpul-fleet config get|set|history <device>` and `simpul-fleet groups
//! list|set|assign` over the API (docs/design/fleet-config-distribution.md).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ApiArgs, Client, Failure, print_json};
use super::table::{cell, items, render};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// A device's desired config (its version and TOML) and what the device reported.
    Get {
        /// The device id.
        device: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Sets a device's own override from a TOML file (`-` for standard input); the fleet
    /// merges it over the device's group defaults and sends the next version.
    Set {
        device: String,
        /// The TOML file, or `-`.
        file: PathBuf,
        /// Why, for the history.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A device's desired versions, newest first.
    History {
        device: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// Every group with its devices.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Creates or replaces a group's defaults from a TOML file (`-` for standard input);
    /// every device in it gets its next version.
    Set {
        group: String,
        file: PathBuf,
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Puts a device in a group, or in none with `--none`.
    Assign {
        device: String,
        /// The group (omit with `--none`).
        group: Option<String>,
        #[arg(long, conflicts_with = "group")]
        none: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run_config(config: &Path, cmd: ConfigCmd) -> ExitCode {
    let result = match cmd {
        ConfigCmd::Get { device, api } => get(config, &api, &device),
        ConfigCmd::Set { device, file, comment, api } => read_toml(&file).and_then(|toml| {
            let body = json!({ "toml": toml, "comment": comment });
            changed(config, &api, Method::PUT, &format!("/api/v1/devices/{device}/config"), body)
        }),
        ConfigCmd::History { device, api } => history(config, &api, &device),
    };
    result.unwrap_or_else(Failure::report)
}

pub fn run_groups(config: &Path, cmd: GroupsCmd) -> ExitCode {
    let result = match cmd {
        GroupsCmd::List { api } => groups(config, &api),
        GroupsCmd::Set { group, file, comment, api } => read_toml(&file).and_then(|toml| {
            let body = json!({ "defaults": toml, "comment": comment });
            changed(config, &api, Method::PUT, &format!("/api/v1/groups/{group}"), body)
        }),
        GroupsCmd::Assign { device, group, none, api } => {
            if group.is_none() && !none {
                Err(Failure::new(exit::USAGE, "name a group, or pass --none to take the device out of its group"))
            } else {
                let body = json!({ "group": group, "comment": "" });
                changed(config, &api, Method::PUT, &format!("/api/v1/devices/{device}/group"), body)
            }
        }
    };
    result.unwrap_or_else(Failure::report)
}

fn read_toml(file: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|e| Failure::new(exit::FAILURE, format!("cannot read {}: {e}", file.display())))?;
    Ok(text)
}

fn get(config: &Path, args: &ApiArgs, device: &str) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, &format!("/api/v1/devices/{device}/config"), None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let reported = match &v["reported"] {
        Value::Null => "nothing yet".to_owned(),
        r => {
            let why = r["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            format!("version {} {}{why}", cell(&r["version"]), cell(&r["state"]))
        }
    };
    let rows = vec![
        vec!["device".to_owned(), cell(&v["device"])],
        vec!["group".to_owned(), cell(&v["group"])],
        vec!["desired version".to_owned(), cell(&v["desired"]["version"])],
        vec!["reported".to_owned(), reported],
        vec!["running the latest".to_owned(), cell(&v["running_latest"])],
    ];
    let toml = v["desired"]["toml"].as_str().unwrap_or("");
    Ok(simpul_base::cli::emit(&format!("{}\n{toml}", render(&["FIELD", "VALUE"], &rows))))
}

fn history(config: &Path, args: &ApiArgs, device: &str) -> Result<ExitCode, Failure> {
    let path = format!("/api/v1/devices/{device}/config/history");
    let v = Client::new(args, config)?.call(Method::GET, &path, None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["versions"])
        .iter()
        .map(|c| vec![cell(&c["version"]), cell(&c["at"]), cell(&c["author"]), cell(&c["comment"])])
        .collect();
    Ok(simpul_base::cli::emit(&render(&["VERSION", "AT", "AUTHOR", "COMMENT"], &rows)))
}

fn groups(config: &Path, args: &ApiArgs) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, "/api/v1/groups", None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["groups"])
        .iter()
        .map(|g| {
            let devices: Vec<&str> = items(&g["devices"]).iter().filter_map(Value::as_str).collect();
            vec![cell(&g["name"]), devices.len().to_string(), devices.join(", ")]
        })
        .collect();
    Ok(simpul_base::cli::emit(&render(&["GROUP", "DEVICES", "WHICH"], &rows)))
}

/// A change: prints each device's new version.
fn changed(config: &Path, args: &ApiArgs, method: Method, path: &str, body: Value) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(method, path, Some(body))?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> =
        items(&v["versions"]).iter().map(|n| vec![cell(&n["device"]), cell(&n["version"])]).collect();
    Ok(simpul_base::cli::emit(&render(&["DEVICE", "NEW VERSION"], &rows)))
}
