//! `simpul-fleet tokens list|create|revoke` over the API (`create --offline`: on the
//! database). `create` prints the token alone on stdout, once: `t=$(simpul-fleet tokens create ...)`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::client::{ApiArgs, Client, Failure, print_json};
use super::table::{cell, items, render};
use super::users::created;
use crate::auth::Role;
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Every API token: id, name, role (never the secret).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Issue an API token (`--name N --role R`), or a one-time enrolment token for a new
    /// box (`--group G [--expires 24h] [--site S] --offline`); printed once, on stdout.
    Create {
        /// What an API token is for (`platform`).
        #[arg(long, required_unless_present_any = ["group", "expires", "site"])]
        name: Option<String>,
        /// An API token's role: `ops` or `viewer` (the central platform needs only `viewer`).
        #[arg(long, required_unless_present_any = ["group", "expires", "site"])]
        role: Option<Role>,
        /// An enrolment token: the group the enrolled box joins.
        #[arg(long, conflicts_with_all = ["name", "role"])]
        group: Option<String>,
        /// An enrolment token: how long it is valid (`24h`, `7d`; default `[trust] token_expiry`).
        #[arg(long, conflicts_with_all = ["name", "role"], value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// An enrolment token: the box's site, for people.
        #[arg(long, conflicts_with_all = ["name", "role"])]
        site: Option<String>,
        /// Write into the database of the config's `[store] path`, no server needed.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a token by its id: it stops working at once.
    Revoke {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(config: &Path, cmd: TokensCmd) -> ExitCode {
    let result = match cmd {
        TokensCmd::List { api } => list(config, &api),
        TokensCmd::Create { name: Some(name), role: Some(role), offline, api, .. } => {
            create(config, &api, &name, role, offline)
        }
        TokensCmd::Create { group, expires, site, offline, api, .. } => {
            enrolment(config, &api, super::offline::EnrolmentArgs { group, expires, site }, offline)
        }
        TokensCmd::Revoke { id, api } => {
            let client = Client::new(&api, config);
            client.and_then(|c| c.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)).map(|_| {
                eprintln!("token {id} revoked");
                exit::code(exit::OK)
            })
        }
    };
    result.unwrap_or_else(Failure::report)
}

fn list(config: &Path, args: &ApiArgs) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, "/api/v1/tokens", None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["tokens"])
        .iter()
        .map(|t| vec![cell(&t["id"]), cell(&t["name"]), cell(&t["role"]), created(&t["created_ms"])])
        .collect();
    Ok(simpul_base::cli::emit(&render(&["ID", "NAME", "ROLE", "CREATED"], &rows)))
}

fn create(config: &Path, args: &ApiArgs, name: &str, role: Role, offline: bool) -> Result<ExitCode, Failure> {
    let issued = if offline {
        serde_json::to_value(super::offline::create_token(config, name, role)?).unwrap_or_default()
    } else {
        let body = serde_json::json!({ "name": name, "role": role });
        Client::new(args, config)?.call(Method::POST, "/api/v1/tokens", Some(body))?
    };
    if args.json {
        return Ok(print_json(&issued));
    }
    let Some(token) = issued["token"].as_str() else {
        return Err(Failure::new(exit::FAILURE, format!("the answer holds no token: {issued}")));
    };
    eprintln!("token {} ({name}, {role}) created; it is shown only now:", cell(&issued["id"]));
    Ok(simpul_base::cli::emit(&format!("{token}\n")))
}

fn enrolment(
    config: &Path,
    args: &ApiArgs,
    req: super::offline::EnrolmentArgs,
    offline: bool,
) -> Result<ExitCode, Failure> {
    if !offline {
        return Err(Failure::new(
            exit::USAGE,
            "enrolment tokens are made on the fleet's database and CA: add --offline (on the fleet's machine)",
        ));
    }
    let issued = super::offline::create_enrolment_token(config, req)?;
    if args.json {
        return Ok(print_json(&serde_json::to_value(&issued).unwrap_or_default()));
    }
    let group = issued.group.as_deref().unwrap_or("no group");
    eprintln!(
        "enrolment token {} ({group}) created, valid until {}; it is shown only now and enrols one box once:",
        issued.id,
        crate::api::json::rfc3339_ms(issued.expires_ms)
    );
    Ok(simpul_base::cli::emit(&format!("{}\n", issued.token)))
}
