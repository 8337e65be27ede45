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
    /// Issue an API token; it is printed once, on stdout.
    Create {
        /// What it is for (`platform`).
        #[arg(long)]
        name: String,
        /// `ops` or `viewer` (the central platform needs only `viewer`).
        #[arg(long)]
        role: Role,
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
        TokensCmd::Create { name, role, offline, api } => create(config, &api, &name, role, offline),
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
