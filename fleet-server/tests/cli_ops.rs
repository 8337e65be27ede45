//! The operators' subcommands of the real binary against a fleet started here: tables for
//! people, JSON for scripts, clear refusals, offline bootstrap on the database.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Setup, batch};

/// Runs `simpul-fleet` with `args`, `stdin` fed in.
fn fleet(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simpul-fleet"))
        .args(args)
        .env_remove("SIMPUL_TOKEN")
        .env_remove("SIMPUL_API")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_list_prints_an_aligned_table_and_json_and_a_viewer_cannot_add_users() {
    let s = Setup::start(|_| {}).await;
    let mut agent = s.agent("kel-cli").await;
    agent.publish(&batch(1..=3)).await;
    agent.wait_ack(3).await;
    let api = s.fleet.api.clone();
    let ops = s.fleet.token.clone();

    // Offline bootstrap: a viewer token written straight into the database.
    let config = s.dir.path().join("fleet.toml");
    std::fs::write(&config, format!("[store]\npath = \"{}\"\n", s.dir.path().join("fleet.db").display())).unwrap();
    let out = fleet(
        &["--config", config.to_str().unwrap(), "tokens", "create", "--offline", "--name", "p", "--role", "viewer"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let viewer = text(&out.stdout).trim().to_owned();
    assert!(viewer.starts_with("spl_") && !viewer.contains('\n'), "{viewer}");

    let run = |args: &[&str], token: &str| fleet(&[args, &["--api", &api, "--token", token]].concat(), "");
    let out = tokio::task::block_in_place(|| run(&["devices", "list"], &viewer));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("DEVICE") && lines[0].contains("STATE"), "{table}");
    let row = lines.iter().find(|l| l.starts_with("kel-cli")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(lines[0].find("STATE"), row.find("online").or_else(|| row.find("offline")), "aligned: {table}");

    let out = tokio::task::block_in_place(|| run(&["devices", "list", "--json"], &viewer));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["devices"].as_array().unwrap().iter().any(|d| d["device"] == "kel-cli"), "{json}");

    let out = tokio::task::block_in_place(|| run(&["devices", "show", "kel-cli", "--json"], &viewer));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["watermark"], 3);

    // A viewer cannot add a user: a clear message, a non-zero exit.
    let out = tokio::task::block_in_place(|| {
        fleet(
            &["users", "add", "vera", "--role", "viewer", "--password-stdin", "--api", &api, "--token", &viewer],
            "a long password\n",
        )
    });
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("403") && err.contains("ops"), "{err}");
    // No token at all: told how to give one.
    let out = tokio::task::block_in_place(|| fleet(&["users", "list", "--api", &api], ""));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("SIMPUL_TOKEN"), "{}", text(&out.stderr));

    // Ops can; the user is then listed.
    let out = tokio::task::block_in_place(|| {
        fleet(
            &["users", "add", "vera", "--role", "viewer", "--password-stdin", "--api", &api, "--token", &ops],
            "a long password\n",
        )
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tokio::task::block_in_place(|| run(&["users", "list"], &ops));
    assert!(text(&out.stdout).lines().any(|l| l.starts_with("vera") && l.contains("viewer")), "{}", text(&out.stdout));

    // Tokens: created online, listed, revoked.
    let out =
        tokio::task::block_in_place(|| run(&["tokens", "create", "--name", "x", "--role", "viewer", "--json"], &ops));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    let out = tokio::task::block_in_place(|| run(&["tokens", "list"], &ops));
    assert!(text(&out.stdout).contains(&id));
    let out = tokio::task::block_in_place(|| run(&["tokens", "revoke", &id], &ops));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tokio::task::block_in_place(|| run(&["devices", "list"], made["token"].as_str().unwrap()));
    assert_eq!(out.status.code(), Some(1), "a revoked token stops working");
    s.stop().await;
}

#[test]
fn a_bad_role_is_a_usage_error_and_offline_needs_a_good_config() {
    let out = fleet(&["tokens", "create", "--name", "p", "--role", "admin", "--offline"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    std::fs::write(&config, "[store]\npaht = \"x\"\n").unwrap();
    let out = fleet(
        &["--config", config.to_str().unwrap(), "users", "add", "a", "--role", "ops", "--offline"],
        "long enough password\n",
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_groups_commands_set_versions_that_get_and_history_show() {
    let s = Setup::start(|_| {}).await;
    let api = s.fleet.api.clone();
    let ops = s.fleet.token.clone();
    let run = |args: &[&str], stdin: &str| fleet(&[args, &["--api", &api, "--token", &ops]].concat(), stdin);

    // Group defaults from standard input, then a device override from a file.
    let out = tokio::task::block_in_place(|| run(&["groups", "set", "cilegon", "-"], "[uplink]\nbatch_max = 300\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tokio::task::block_in_place(|| run(&["groups", "assign", "kel-cfg", "cilegon"], ""));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kel-cfg"), "the new version is printed: {}", text(&out.stdout));
    let file = s.dir.path().join("kel-cfg.toml");
    std::fs::write(&file, "[sensors.sungai]\nkind = \"simulated\"\ninterval = \"5s\"\n").unwrap();
    let out = tokio::task::block_in_place(|| {
        run(&["config", "set", "kel-cfg", file.to_str().unwrap(), "--comment", "add the river sensor"], "")
    });
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = tokio::task::block_in_place(|| run(&["config", "get", "kel-cfg"], ""));
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains("cilegon") && shown.contains("batch_max = 300") && shown.contains("[sensors.sungai]"),
        "{shown}"
    );
    let out = tokio::task::block_in_place(|| run(&["config", "history", "kel-cfg", "--json"], ""));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<u64> =
        json["versions"].as_array().unwrap().iter().filter_map(|v| v["version"].as_u64()).collect();
    assert_eq!(versions, [2, 1], "{json}");
    assert_eq!(json["versions"][0]["comment"], "add the river sensor");

    let out = tokio::task::block_in_place(|| run(&["groups", "list"], ""));
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("cilegon") && l.contains("kel-cfg")),
        "{}",
        text(&out.stdout)
    );
    // A TOML mistake is refused with its line, and a group must be named.
    std::fs::write(&file, "[sensors.sungai\n").unwrap();
    let out = tokio::task::block_in_place(|| run(&["config", "set", "kel-cfg", file.to_str().unwrap()], ""));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line"), "{}", text(&out.stderr));
    let out = tokio::task::block_in_place(|| run(&["groups", "assign", "kel-cfg"], ""));
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_proposals_lists_what_a_box_proposed_and_accept_adds_it_under_the_id_given() {
    use simpul_fleet::protocol::control::Event;
    use simpul_fleet::protocol::{Channel, ControlMessage};

    let s = Setup::start(|_| {}).await;
    let agent = s.agent("kel-prop").await;
    let event = Event::SensorProposed {
        port: "/dev/ttyUSB0".to_owned(),
        toml: "[sensors.usb0]\nkind = \"simulated\"\n".to_owned(),
        summary: "Modbus slave 2 at 19200 baud".to_owned(),
    };
    agent.publish_raw(Channel::Events, event.to_json().unwrap()).await;
    s.fleet.until("/api/v1/devices", |v| v["devices"][0]["device"] == "kel-prop").await;
    let v = s.fleet.until("/api/v1/devices/kel-prop/events", |v| v["events"][0]["id"].is_i64()).await;
    let id = v["events"][0]["id"].as_i64().unwrap().to_string();
    let api = s.fleet.api.clone();
    let ops = s.fleet.token.clone();
    let run = |args: &[&str]| fleet(&[args, &["--api", &api, "--token", &ops]].concat(), "");

    let out = tokio::task::block_in_place(|| run(&["devices", "proposals", "kel-prop"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("/dev/ttyUSB0") && row.contains("slave 2") && row.contains("waiting"), "{table}");

    let out = tokio::task::block_in_place(|| run(&["devices", "accept", "kel-prop", &id, "--as", "sumur"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sensor sumur added in config version 1"), "{}", text(&out.stdout));
    let out = tokio::task::block_in_place(|| run(&["devices", "proposals", "kel-prop", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["accepted"]["sensor_id"], "sumur", "{json}");

    // Accepting again is refused with the reason, and a non-zero exit.
    let out = tokio::task::block_in_place(|| run(&["devices", "accept", "kel-prop", &id]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("already accepted"), "{}", text(&out.stderr));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_create_with_a_group_makes_a_one_time_enrolment_token_of_this_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    let trust = dir.path().join("trust");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n[trust]\ndir = \"{}\"\n",
            dir.path().join("fleet.db").display(),
            trust.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let out = fleet(&["--config", cfg, "tokens", "create", "--group", "cilegon", "--expires", "2h", "--offline"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let ca = simpul_fleet::trust::FleetCa::load_or_create(&trust).unwrap();
    assert!(token.starts_with(&format!("sple_{}_", ca.fleet_id())), "{token}");
    assert!(
        text(&out.stderr).contains("cilegon") && text(&out.stderr).contains("one box once"),
        "{}",
        text(&out.stderr)
    );

    // Without --offline, or with an API token's flags, it says what is wrong.
    let out = fleet(&["--config", cfg, "tokens", "create", "--group", "cilegon"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--offline"), "{}", text(&out.stderr));
    let out = fleet(&["--config", cfg, "tokens", "create", "--group", "g", "--role", "ops", "--offline"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = fleet(&["--config", cfg, "tokens", "create", "--group", "g", "--expires", "90d", "--offline"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
