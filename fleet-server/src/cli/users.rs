//! `simpul-fleet users list|add|remove` over the API (`add --offline`: on the database).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::client::{ApiArgs, Client, Failure, print_json};
use super::table::{cell, items, render};
use crate::auth::Role;
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Every user and their role.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a user; the password is asked for (or read from stdin).
    Add {
        name: String,
        /// `ops` (may change things) or `viewer` (reads only).
        #[arg(long)]
        role: Role,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Write into the database of the config's `[store] path`, no server needed.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove a user; their sessions end.
    Remove {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(config: &Path, cmd: UsersCmd) -> ExitCode {
    let result = match cmd {
        UsersCmd::List { api } => list(config, &api),
        UsersCmd::Add { name, role, password_stdin, offline, api } => {
            add(config, &api, &name, role, password_stdin, offline)
        }
        UsersCmd::Remove { name, api } => {
            let client = Client::new(&api, config);
            client.and_then(|c| c.call(Method::DELETE, &format!("/api/v1/users/{name}"), None)).map(|_| {
                eprintln!("user {name} removed");
                exit::code(exit::OK)
            })
        }
    };
    result.unwrap_or_else(Failure::report)
}

fn list(config: &Path, args: &ApiArgs) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(Method::GET, "/api/v1/users", None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["users"])
        .iter()
        .map(|u| vec![cell(&u["name"]), cell(&u["role"]), created(&u["created_ms"])])
        .collect();
    Ok(simpul_base::cli::emit(&render(&["NAME", "ROLE", "CREATED"], &rows)))
}

/// A `created_ms` as RFC 3339.
pub fn created(v: &serde_json::Value) -> String {
    v.as_i64().map_or_else(|| "-".to_owned(), crate::api::json::rfc3339_ms)
}

fn add(config: &Path, args: &ApiArgs, name: &str, role: Role, stdin: bool, offline: bool) -> Result<ExitCode, Failure> {
    // Before asking for a password: a client that cannot work fails first.
    let client = if offline { None } else { Some(Client::new(args, config)?) };
    let password = read_password(stdin)?;
    let user = match client {
        None => serde_json::to_value(super::offline::add_user(config, name, role, &password)?).unwrap_or_default(),
        Some(c) => {
            let body = serde_json::json!({ "name": name, "role": role, "password": password });
            c.call(Method::POST, "/api/v1/users", Some(body))?
        }
    };
    if args.json {
        return Ok(print_json(&user));
    }
    eprintln!("user {name} ({role}) added");
    Ok(exit::code(exit::OK))
}

/// The password from stdin's first line, or asked for twice on the terminal without echo.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(exit::FAILURE, format!("cannot read stdin: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = prompt("password: ")?;
    let second = prompt("again: ")?;
    if first != second {
        return Err(Failure::new(exit::USAGE, "the passwords differ"));
    }
    Ok(first)
}

fn prompt(label: &str) -> Result<String, Failure> {
    let echo = |on: bool| {
        let arg = if on { "echo" } else { "-echo" };
        let _ = std::process::Command::new("stty").arg(arg).stdin(std::process::Stdio::inherit()).status();
    };
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    echo(true);
    eprintln!();
    read.map_err(|e| Failure::new(exit::FAILURE, format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
