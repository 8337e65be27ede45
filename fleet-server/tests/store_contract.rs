//! The storage contract: what the fleet relies on from its six storage traits (`Store`,
//! `AuthStore`, `ReleaseStore`, `RolloutStore`, `TrustStore`, `Revocations`), called
//! directly, not over HTTP, on stores from the factory (`store::open_stores`).
//!
//! Each case is a function of `&Stores`; [`contract!`] makes it a test per backend
//! (`sqlite::<case>`, `postgres::<case>`). A race is a function of two openings of the same
//! database, as two fleet processes open it, which do the same thing at once. A backend is
//! a function that opens its fresh, empty stores and a line in the macro
//! (docs/design/scale-out.md §3, "Tests").

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{BOOT, batch, reading, unsynced};

use ed25519_dalek::SigningKey;
use simpul_fleet::auth::{Role, TokenRow, User};
use simpul_fleet::broker::SecurityEvent;
use simpul_fleet::config::{StoreBackend, StoreConfig};
use simpul_fleet::protocol::control::Heartbeat;
use simpul_fleet::protocol::release::Manifest;
use simpul_fleet::protocol::{DeviceId, ReadingBatch, SeqRange};
use simpul_fleet::rollouts::{Control, RolloutSpec, RolloutState, StartRefused};
use simpul_fleet::store::{ConfigChange, ConfigRefused, Inbound, Stores, open_side_stores, open_stores};
use simpul_fleet::trust::Issued;
use simpul_fleet::trust::store::{NewEnrolmentToken, RenewBlocked, SpendRefused};

/// Fresh, empty stores of one backend, and what must live as long as they do.
struct Opened {
    stores: Stores,
    /// The same database opened again, as a second fleet process opens it: side stores on
    /// connections of their own (for the races between processes).
    again: Box<dyn Fn() -> Stores>,
    _lives: Box<dyn std::any::Any>,
}

/// SQLite in a temp dir.
fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { path: dir.path().join("fleet.db"), ..StoreConfig::default() };
    open(config, Box::new(dir))
}

/// A PostgreSQL server of its own.
fn postgres() -> Opened {
    let pg = simpul_tests::Postgres::start().unwrap();
    let config = StoreConfig { backend: StoreBackend::Postgres, url: pg.url(), ..StoreConfig::default() };
    open(config, Box::new(pg))
}

/// The stores of `config` through the factory, as the fleet server opens them.
fn open(config: StoreConfig, lives: Box<dyn std::any::Any>) -> Opened {
    let stores = open_stores(&config).unwrap();
    let store = Arc::clone(&stores.store);
    let again = Box::new(move || open_side_stores(&config).unwrap().with_store(Arc::clone(&store)));
    Opened { stores, again, _lives: lives }
}

/// Each case as a test per backend: `cases` take the stores, `races` two openings of the
/// same database (two fleet processes).
macro_rules! contract {
    (cases: $($case:ident),* $(,)? ; races: $($race:ident),* $(,)?) => {
        contract!(@backend sqlite; $($case),*; $($race),*);
        contract!(@backend postgres; $($case),*; $($race),*);
    };
    (@backend $backend:ident; $($case:ident),*; $($race:ident),*) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let opened = super::$backend();
                    super::$case(&opened.stores);
                }
            )*
            $(
                #[test]
                fn $race() {
                    let opened = super::$backend();
                    super::$race(&opened.stores, &(opened.again)());
                }
            )*
        }
    };
}

contract!(
    cases:
    a_reading_committed_twice_is_stored_once,
    a_status_received_before_the_stored_one_does_not_replace_it,
    readings_after_pages_in_cursor_order_without_gaps,
    the_ack_is_the_contiguous_watermark_and_dropped_seqs_close_gaps,
    a_held_reading_is_released_once,
    a_clock_sync_delivers_its_boots_held_readings_with_corrected_times,
    a_consumer_cursor_keeps_the_last_value_set,
    config_versions_increase_by_one,
    a_device_joins_only_a_group_that_exists,
    a_user_name_is_taken_once,
    removing_a_user_ends_their_sessions_and_expired_tokens_go,
    a_published_release_is_never_replaced,
    only_one_rollout_is_active_at_a_time,
    a_rollout_needs_a_published_release_and_devices,
    an_enrolment_token_is_spent_once,
    a_revoked_certificate_is_reported_revoked,
    security_events_are_listed_newest_first_by_identity;
    races:
    an_enrolment_token_spent_from_two_threads_at_once_is_spent_once,
    two_rollouts_started_at_once_leave_one_active,
    a_user_name_added_from_two_threads_at_once_is_taken_once,
);

/// The fleet's wall clock in these cases (ms since the epoch): `common::reading(0)`'s time.
const NOW: i64 = 1_795_000_000_000;
const TARGET: &str = "x86_64-unknown-linux-gnu";

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

/// Synced readings of `seqs` from `name`.
fn readings(name: &str, seqs: impl IntoIterator<Item = u64>) -> Inbound {
    Inbound::Readings { device: device(name), batch: batch(seqs) }
}

/// Readings of `seqs` from `name` taken in [`BOOT`] before its clock synced (held).
fn unsynced_readings(name: &str, seqs: impl IntoIterator<Item = u64>) -> Inbound {
    let batch = ReadingBatch { readings: seqs.into_iter().map(|s| unsynced(s, BOOT)).collect(), dropped: vec![] };
    Inbound::Readings { device: device(name), batch }
}

/// Every deliverable reading, as (cursor, device, seq), paging by `limit`.
fn read_all(s: &Stores, limit: usize) -> Vec<(u64, String, u64)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = s.store.readings_after(after, limit).unwrap();
        assert!(page.len() <= limit, "a page of {} for a limit of {limit}", page.len());
        let Some(last) = page.last() else { return out };
        after = last.cursor;
        out.extend(page.into_iter().map(|r| (r.cursor, r.device, r.seq)));
    }
}

fn change(comment: &str) -> ConfigChange {
    ConfigChange { author: "ops".to_owned(), at_ms: NOW, comment: comment.to_owned() }
}

/// A certificate as the CA would issue it, of serial `n`.
fn issued(n: u64) -> Issued {
    Issued { pem: String::new(), serial: format!("{n:032x}"), not_after_ms: NOW + 86_400_000 }
}

fn enrolment_token(id: &str) -> NewEnrolmentToken {
    NewEnrolmentToken {
        id: id.to_owned(),
        group: None,
        site: None,
        created_ms: NOW,
        expires_ms: NOW + 600_000,
        created_by: "ops".to_owned(),
    }
}

/// Publishes release `version` for [`TARGET`], signed.
fn publish(s: &Stores, version: &str) {
    let binary = format!("the agent {version}").into_bytes();
    let signed = Manifest::of(&binary, version, TARGET).unwrap().sign(&SigningKey::from_bytes(&[1; 32]));
    assert!(s.releases.add_release(&signed, &binary, NOW, "ops").unwrap());
}

/// Heartbeats from `names`: devices a rollout can go to.
fn heartbeats(s: &Stores, names: &[&str]) {
    let items: Vec<Inbound> = names
        .iter()
        .map(|n| {
            let heartbeat = Box::new(Heartbeat { version: "1.0.0".to_owned(), uptime_s: 1, ..Default::default() });
            Inbound::Heartbeat { device: device(n), heartbeat }
        })
        .collect();
    s.store.commit(&items, NOW).unwrap();
}

// --- Store: readings -------------------------------------------------------------------

fn a_reading_committed_twice_is_stored_once(s: &Stores) {
    let first = s.store.commit(&[readings("kel-a", 1..=3)], NOW).unwrap();
    assert_eq!((first.stored, first.delivered), (3, 3));
    // A resend (the ack was lost) with one new reading, and the same seq twice in a commit.
    let again = s.store.commit(&[readings("kel-a", 1..=4), readings("kel-a", [4])], NOW).unwrap();
    assert_eq!((again.stored, again.delivered), (1, 1));
    assert_eq!(again.acks, vec![(device("kel-a"), 4)]);

    let summary = s.store.device(&device("kel-a")).unwrap().unwrap();
    assert_eq!((summary.readings_stored, summary.watermark), (4, 4));
    let seqs: Vec<u64> = read_all(s, 100).into_iter().map(|(_, _, seq)| seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

/// Two fleet processes: A received a box's last will (offline) at 1,000 but commits it
/// after B committed the box's newer "online", received at 2,000.
fn a_status_received_before_the_stored_one_does_not_replace_it(s: &Stores) {
    let status = |online, received_ms| Inbound::Status { device: device("kel-a"), online, received_ms };
    let online = || s.store.devices().unwrap().into_iter().find(|d| d.device == "kel-a").and_then(|d| d.status_online);
    s.store.commit(&[status(true, 2_000)], NOW).unwrap();
    s.store.commit(&[status(false, 1_000)], NOW + 5).unwrap();
    assert_eq!(online(), Some(true), "the older will does not mark a live box offline");
    s.store.commit(&[status(false, 3_000)], NOW + 10).unwrap();
    assert_eq!(online(), Some(false), "a newer status does");
    // Received in the same millisecond: the later commit wins, as in one process.
    s.store.commit(&[status(true, 3_000)], NOW + 15).unwrap();
    assert_eq!(online(), Some(true));
}

fn readings_after_pages_in_cursor_order_without_gaps(s: &Stores) {
    s.store.commit(&[readings("kel-a", 1..=4), readings("kel-b", 1..=3)], NOW).unwrap();
    s.store.commit(&[readings("kel-b", 4..=6)], NOW).unwrap();
    s.store.commit(&[readings("kel-a", 5..=7), readings("kel-a", 2..=3)], NOW).unwrap();

    let all = read_all(s, 3);
    let cursors: Vec<u64> = all.iter().map(|(c, _, _)| *c).collect();
    assert_eq!(cursors, (1..=13).collect::<Vec<_>>(), "cursors count up from 1 by one");
    assert_eq!(s.store.delivery_head().unwrap(), 13);
    for name in ["kel-a", "kel-b"] {
        let seqs: Vec<u64> = all.iter().filter(|(_, d, _)| d == name).map(|(_, _, seq)| *seq).collect();
        let expected: Vec<u64> = if name == "kel-a" { (1..=7).collect() } else { (1..=6).collect() };
        assert_eq!(seqs, expected, "{name}: each reading once, in commit order");
    }
    assert!(s.store.readings_after(13, 10).unwrap().is_empty());
    assert_eq!(s.store.readings_after(11, 10).unwrap().len(), 2);
}

fn the_ack_is_the_contiguous_watermark_and_dropped_seqs_close_gaps(s: &Stores) {
    let out = s.store.commit(&[readings("kel-a", [1, 2, 5])], NOW).unwrap();
    assert_eq!(out.acks, vec![(device("kel-a"), 2)], "3 and 4 are missing");
    // The agent evicted 3 and 4 under its quota; it says so, and again in a resend.
    let batch = ReadingBatch { readings: vec![reading(6)], dropped: vec![SeqRange { first: 3, last: 4 }] };
    let dropped = Inbound::Readings { device: device("kel-a"), batch };
    let out = s.store.commit(std::slice::from_ref(&dropped), NOW).unwrap();
    assert_eq!(out.acks, vec![(device("kel-a"), 6)]);
    s.store.commit(&[dropped], NOW).unwrap();

    let summary = s.store.device(&device("kel-a")).unwrap().unwrap();
    assert_eq!((summary.watermark, summary.dropped, summary.readings_stored), (6, 2, 4));
    assert_eq!(s.store.device(&device("kel-never")).unwrap(), None);
}

fn a_held_reading_is_released_once(s: &Stores) {
    let out = s.store.commit(&[unsynced_readings("kel-a", 1..=2)], NOW).unwrap();
    assert_eq!((out.stored, out.delivered), (2, 0), "held until the boot's clock offset is known");
    assert!(s.store.readings_after(0, 10).unwrap().is_empty());
    assert_eq!(s.store.device(&device("kel-a")).unwrap().unwrap().readings_held, 2);

    assert_eq!(s.store.release_held(NOW - 1).unwrap(), 0, "nothing arrived that early");
    assert_eq!(s.store.release_held(NOW).unwrap(), 2);
    assert_eq!(s.store.release_held(NOW + 60_000).unwrap(), 0, "released already");
    // A clock sync arriving late does not deliver them again.
    let synced = Inbound::ClockSynced { device: device("kel-a"), boot_id: BOOT, offset_ms: NOW };
    assert_eq!(s.store.commit(&[synced], NOW).unwrap().delivered, 0);

    let all = s.store.readings_after(0, 10).unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(all.iter().all(|r| !r.time_corrected && r.time_ms < NOW), "released as the box's own time");
    assert_eq!(s.store.device(&device("kel-a")).unwrap().unwrap().readings_held, 0);
}

fn a_clock_sync_delivers_its_boots_held_readings_with_corrected_times(s: &Stores) {
    s.store.commit(&[unsynced_readings("kel-a", 1..=2)], NOW).unwrap();
    let synced = Inbound::ClockSynced { device: device("kel-a"), boot_id: BOOT, offset_ms: NOW };
    assert_eq!(s.store.commit(&[synced], NOW).unwrap().delivered, 2);
    // Later readings of that boot take its offset at once.
    assert_eq!(s.store.commit(&[unsynced_readings("kel-a", [3])], NOW).unwrap().delivered, 1);

    let all = s.store.readings_after(0, 10).unwrap();
    assert_eq!(
        all.iter().map(|r| (r.seq, r.time_ms)).collect::<Vec<_>>(),
        vec![(1, NOW + 1000), (2, NOW + 2000), (3, NOW + 3000)]
    );
    assert!(all.iter().all(|r| r.time_corrected && !r.synced));
    assert_eq!(s.store.release_held(NOW + 60_000).unwrap(), 0);
}

fn a_consumer_cursor_keeps_the_last_value_set(s: &Stores) {
    assert_eq!(s.store.consumer_cursor("webhook").unwrap(), 0, "0 before it ever advanced");
    s.store.set_consumer_cursor("webhook", 5).unwrap();
    s.store.set_consumer_cursor("webhook", 9).unwrap();
    s.store.set_consumer_cursor("other", 2).unwrap();
    assert_eq!(s.store.consumer_cursor("webhook").unwrap(), 9);
    assert_eq!(s.store.consumer_cursor("other").unwrap(), 2);
}

// --- Store: desired config -------------------------------------------------------------

fn config_versions_increase_by_one(s: &Stores) {
    let kel = device("kel-a");
    let versions: Vec<u64> = (1..=3)
        .map(|i| s.store.set_device_config(&kel, &format!("[x]\nn = {i}\n"), &change("tune")).unwrap().version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    s.store.set_group_defaults("river", "[y]\nm = 1\n", &change("group")).unwrap();
    let joined = s.store.set_device_group(&kel, Some("river"), &change("join")).unwrap().unwrap();
    assert_eq!(joined.version, 4);
    assert!(joined.toml.contains("n = 3") && joined.toml.contains("m = 1"), "{}", joined.toml);
    let defaults = s.store.set_group_defaults("river", "[y]\nm = 2\n", &change("group")).unwrap();
    assert_eq!(defaults.iter().map(|v| (v.device.as_str(), v.version)).collect::<Vec<_>>(), vec![("kel-a", 5)]);

    let history: Vec<u64> = s.store.config_history(&kel, 10).unwrap().iter().map(|v| v.version).collect();
    assert_eq!(history, vec![5, 4, 3, 2, 1], "newest first");
    let latest = s.store.latest_desired(Some(&kel)).unwrap();
    assert_eq!(latest.iter().map(|v| v.version).collect::<Vec<_>>(), vec![5]);
    let config = s.store.device_config(&kel).unwrap().unwrap();
    assert_eq!((config.group.as_deref(), config.desired.map(|v| v.version)), (Some("river"), Some(5)));
}

fn a_device_joins_only_a_group_that_exists(s: &Stores) {
    let kel = device("kel-a");
    let refused = s.store.set_device_group(&kel, Some("nowhere"), &change("join")).unwrap();
    assert_eq!(refused, Err(ConfigRefused::NoSuchGroup("nowhere".to_owned())));
    assert!(s.store.config_history(&kel, 10).unwrap().is_empty(), "a refused change writes no version");
    s.store.set_group_defaults("river", "", &change("group")).unwrap();
    assert!(s.store.set_device_group(&kel, Some("river"), &change("join")).unwrap().is_ok());
    let groups = s.store.config_groups().unwrap();
    assert_eq!(
        groups.iter().map(|g| (g.name.as_str(), g.devices.clone())).collect::<Vec<_>>(),
        vec![("river", vec!["kel-a".to_owned()])]
    );
}

// --- AuthStore -------------------------------------------------------------------------

fn a_user_name_is_taken_once(s: &Stores) {
    let ana = User { name: "ana".to_owned(), role: Role::Ops, created_ms: NOW };
    assert!(s.auth.add_user(&ana, "hash-1").unwrap());
    let again = User { role: Role::Viewer, ..ana.clone() };
    assert!(!s.auth.add_user(&again, "hash-2").unwrap(), "the name is taken");
    assert_eq!(s.auth.user("ana").unwrap(), Some((ana.clone(), "hash-1".to_owned())), "the first one stays");
    assert_eq!(s.auth.users().unwrap(), vec![ana]);
    assert_eq!(s.auth.user("bob").unwrap(), None);
}

fn removing_a_user_ends_their_sessions_and_expired_tokens_go(s: &Stores) {
    let ana = User { name: "ana".to_owned(), role: Role::Ops, created_ms: NOW };
    s.auth.add_user(&ana, "hash").unwrap();
    let row = |id: &str, user: Option<&str>, expires_ms: Option<i64>| TokenRow {
        id: id.to_owned(),
        name: id.to_owned(),
        role: Role::Ops,
        secret_hash: "secret".to_owned(),
        user: user.map(str::to_owned),
        created_ms: NOW,
        expires_ms,
    };
    let session = row("session", Some("ana"), Some(NOW + 3_600_000));
    s.auth.add_token(&session).unwrap();
    s.auth.add_token(&row("platform", None, None)).unwrap();
    s.auth.add_token(&row("stale", None, Some(NOW - 1))).unwrap();
    assert_eq!(s.auth.token("session").unwrap(), Some(session));
    let listed: Vec<String> = s.auth.tokens().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, vec!["platform", "stale"], "API tokens only, not sessions");

    assert_eq!(s.auth.remove_expired(NOW).unwrap(), 1);
    assert!(s.auth.remove_user("ana").unwrap());
    assert!(!s.auth.remove_user("ana").unwrap());
    assert_eq!(s.auth.token("session").unwrap(), None, "the session went with its user");
    assert_eq!(s.auth.token("stale").unwrap(), None);
    assert!(s.auth.token("platform").unwrap().is_some());
    assert!(s.auth.remove_token("platform").unwrap());
    assert!(!s.auth.remove_token("platform").unwrap());
}

// --- ReleaseStore ----------------------------------------------------------------------

fn a_published_release_is_never_replaced(s: &Stores) {
    let key = SigningKey::from_bytes(&[1; 32]);
    let first = b"the agent 1.1.0".to_vec();
    let signed = Manifest::of(&first, "1.1.0", TARGET).unwrap().sign(&key);
    assert!(s.releases.add_release(&signed, &first, NOW, "ops").unwrap());
    let other = b"another agent 1.1.0".to_vec();
    let resigned = Manifest::of(&other, "1.1.0", TARGET).unwrap().sign(&key);
    assert!(!s.releases.add_release(&resigned, &other, NOW + 1, "ops").unwrap());

    let (manifest, binary) = s.releases.release("1.1.0", TARGET).unwrap().unwrap();
    assert_eq!((manifest, binary), (signed, first), "the first one stays");
    assert!(s.releases.has_version("1.1.0").unwrap());
    assert!(!s.releases.has_version("1.2.0").unwrap());
    assert_eq!(s.releases.release("1.1.0", "aarch64-unknown-linux-gnu").unwrap(), None);
    assert_eq!(s.releases.releases().unwrap().len(), 1);

    let kel = device("kel-a");
    s.releases.set_device_release(&kel, "1.0.0", None, NOW, "ops").unwrap();
    s.releases.set_device_release(&kel, "1.1.0", Some(3), NOW + 1, "rollout 3").unwrap();
    let desired = s.releases.device_releases(Some(&kel)).unwrap();
    assert_eq!(desired.iter().map(|d| (d.version.as_str(), d.rollout)).collect::<Vec<_>>(), vec![("1.1.0", Some(3))]);
}

// --- RolloutStore ----------------------------------------------------------------------

fn only_one_rollout_is_active_at_a_time(s: &Stores) {
    publish(s, "1.1.0");
    publish(s, "1.2.0");
    heartbeats(s, &["kel-a", "kel-b", "kel-c"]);
    let started = s.rollouts.start(&RolloutSpec::of("1.1.0"), NOW, "ops").unwrap().unwrap();
    let id = started.rollout.id;
    assert_eq!(started.rollout.state, RolloutState::Running);
    assert_eq!(started.devices.len(), 2, "the two canaries are ordered at once");
    assert_eq!(s.rollouts.active().unwrap(), vec![id]);

    let refused = s.rollouts.start(&RolloutSpec::of("1.2.0"), NOW, "ops").unwrap();
    assert_eq!(refused.map(|c| c.rollout.id), Err(StartRefused::Active(id)));
    s.rollouts.control(id, Control::Pause, NOW + 1, "ops").unwrap().unwrap();
    let refused = s.rollouts.start(&RolloutSpec::of("1.2.0"), NOW, "ops").unwrap();
    assert_eq!(refused.map(|c| c.rollout.id), Err(StartRefused::Active(id)), "paused is still active");

    let aborted = s.rollouts.control(id, Control::Abort, NOW + 2, "ops").unwrap().unwrap();
    assert_eq!(aborted.rollout.state, RolloutState::Aborted);
    assert!(s.rollouts.active().unwrap().is_empty());
    let next = s.rollouts.start(&RolloutSpec::of("1.2.0"), NOW + 3, "ops").unwrap().unwrap();
    assert!(next.rollout.id > id);
    assert_eq!(s.rollouts.active().unwrap(), vec![next.rollout.id]);
    let listed: Vec<u64> = s.rollouts.rollouts().unwrap().iter().map(|(r, _)| r.id).collect();
    assert_eq!(listed, vec![next.rollout.id, id], "newest first");
    let (_, devices) = s.rollouts.rollout(next.rollout.id).unwrap().unwrap();
    assert_eq!(devices.len(), 3);
}

fn a_rollout_needs_a_published_release_and_devices(s: &Stores) {
    let spec = RolloutSpec::of("1.1.0");
    let refused = s.rollouts.start(&spec, NOW, "ops").unwrap().map(|c| c.rollout.id);
    assert_eq!(refused, Err(StartRefused::NoRelease("1.1.0".to_owned())));
    publish(s, "1.1.0");
    let refused = s.rollouts.start(&spec, NOW, "ops").unwrap().map(|c| c.rollout.id);
    assert_eq!(refused, Err(StartRefused::NoDevices), "no device sent a heartbeat yet");
    let in_group = RolloutSpec { group: Some("river".to_owned()), ..spec.clone() };
    let refused = s.rollouts.start(&in_group, NOW, "ops").unwrap().map(|c| c.rollout.id);
    assert_eq!(refused, Err(StartRefused::NoGroup("river".to_owned())));
    assert!(s.rollouts.rollouts().unwrap().is_empty(), "a refused start writes nothing");

    heartbeats(s, &["kel-a"]);
    assert!(s.rollouts.start(&spec, NOW, "ops").unwrap().is_ok());
    let id = s.rollouts.active().unwrap()[0];
    assert_eq!(s.rollouts.advance(id, NOW + 1, Duration::from_secs(60)).unwrap(), vec![], "ordered already");
}

// --- TrustStore and Revocations --------------------------------------------------------

fn an_enrolment_token_is_spent_once(s: &Stores) {
    let trust = std::sync::Arc::clone(&s.trust).trust_store();
    trust.add_enrolment_token(&enrolment_token("tok-1"), "hash").unwrap();
    trust.add_enrolment_token(&enrolment_token("tok-2"), "hash").unwrap();
    assert_eq!(trust.spend_for_certificate("tok-1", &device("kel-a"), NOW, &issued(1)).unwrap(), Ok(()));

    let again = trust.spend_for_certificate("tok-1", &device("kel-b"), NOW + 1, &issued(2)).unwrap();
    assert_eq!(again, Err(SpendRefused::Spent { at_ms: NOW, device: "kel-a".to_owned() }));
    let twice = trust.spend_for_certificate("tok-2", &device("kel-a"), NOW + 1, &issued(3)).unwrap();
    assert_eq!(
        twice,
        Err(SpendRefused::DeviceHasCert { serial: issued(1).serial, not_after_ms: issued(1).not_after_ms })
    );

    let spent = trust.enrolment_token("tok-1").unwrap().unwrap().token;
    assert_eq!((spent.spent_ms, spent.spent_by.as_deref()), (Some(NOW), Some("kel-a")));
    assert_eq!(trust.enrolment_token("tok-2").unwrap().unwrap().token.spent_ms, None, "a refused spend spends nothing");
    assert_eq!(trust.device_certs(&device("kel-b")).unwrap(), vec![], "and issues nothing");
    assert_eq!(trust.enrolment_tokens().unwrap().len(), 2);
}

fn a_revoked_certificate_is_reported_revoked(s: &Stores) {
    let (trust, broker) =
        (std::sync::Arc::clone(&s.trust).trust_store(), std::sync::Arc::clone(&s.trust).revocations());
    trust.add_enrolment_token(&enrolment_token("tok-1"), "hash").unwrap();
    let cert = issued(0xab12);
    trust.spend_for_certificate("tok-1", &device("kel-a"), NOW, &cert).unwrap().unwrap();
    // rmqtt prints a serial as a number: no leading zeros, any case.
    for serial in [cert.serial.as_str(), "AB12"] {
        assert!(!trust.is_revoked(serial).unwrap());
        assert!(!broker.is_revoked(serial).unwrap());
    }
    let renewed = issued(0xab13);
    assert_eq!(trust.record_renewal("ab12", &device("kel-a"), NOW + 1, &renewed).unwrap(), Ok(()));

    let revoked = trust.revoke_device(&device("kel-a"), NOW + 2).unwrap();
    assert_eq!(revoked.len(), 2, "every live certificate of the device: {revoked:?}");
    for serial in [cert.serial.as_str(), "AB12", "ab13"] {
        assert!(trust.is_revoked(serial).unwrap(), "{serial}");
        assert!(broker.is_revoked(serial).unwrap(), "the broker's check reads the same tables: {serial}");
    }
    assert!(!trust.is_revoked("ffff").unwrap(), "a serial never issued is not revoked");
    let blocked = trust.record_renewal("ab13", &device("kel-a"), NOW + 3, &issued(0xab14)).unwrap();
    assert_eq!(blocked, Err(RenewBlocked::Revoked { at_ms: NOW + 2 }));
    assert_eq!(trust.revoke_device(&device("kel-a"), NOW + 4).unwrap(), Vec::<String>::new());
    let certs = trust.device_certs(&device("kel-a")).unwrap();
    assert!(certs.iter().all(|c| c.revoked_ms == Some(NOW + 2)), "{certs:?}");
}

fn security_events_are_listed_newest_first_by_identity(s: &Stores) {
    let trust = std::sync::Arc::clone(&s.trust).trust_store();
    for (i, identity) in ["kel-a", "kel-b", "kel-a"].into_iter().enumerate() {
        let event = SecurityEvent {
            at_ms: NOW + i as i64,
            identity: identity.to_owned(),
            kind: "publish_refused".to_owned(),
            detail: format!("topic {i}"),
            remote: "127.0.0.1:1".to_owned(),
        };
        trust.record_security_event(&event).unwrap();
    }
    let details = |identity, limit| -> Vec<String> {
        trust.security_events(identity, limit).unwrap().into_iter().map(|e| e.detail).collect()
    };
    assert_eq!(details(Some("kel-a"), 10), vec!["topic 2", "topic 0"]);
    assert_eq!(details(None, 2), vec!["topic 2", "topic 1"]);
    assert!(details(Some("kel-c"), 10).is_empty());
}

// --- Races between fleet processes (each side on its own connection) -------------------

/// Runs `a` on `first` and `b` on `second` at once (as near as a barrier gets them).
fn at_once<A: Send, B: Send>(
    first: &Stores,
    second: &Stores,
    a: impl FnOnce(&Stores) -> A + Send,
    b: impl FnOnce(&Stores) -> B + Send,
) -> (A, B) {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let one = scope.spawn(|| {
            barrier.wait();
            a(first)
        });
        let two = scope.spawn(|| {
            barrier.wait();
            b(second)
        });
        (one.join().unwrap(), two.join().unwrap())
    })
}

fn an_enrolment_token_spent_from_two_threads_at_once_is_spent_once(s: &Stores, other: &Stores) {
    let trust = Arc::clone(&s.trust).trust_store();
    for round in 0..5 {
        let id = format!("tok-{round}");
        trust.add_enrolment_token(&enrolment_token(&id), "hash").unwrap();
        let (kel_a, kel_b) = (format!("kel-a{round}"), format!("kel-b{round}"));
        let spend = |s: &Stores, name: &str, serial: u64| {
            Arc::clone(&s.trust).trust_store().spend_for_certificate(&id, &device(name), NOW, &issued(serial)).unwrap()
        };
        let (a, b) = at_once(s, other, |s| spend(s, &kel_a, 2 * round), |s| spend(s, &kel_b, 2 * round + 1));
        let winner = match (&a, &b) {
            (Ok(()), Err(SpendRefused::Spent { device, .. })) | (Err(SpendRefused::Spent { device, .. }), Ok(())) => {
                device.clone()
            }
            _ => panic!("round {round}: one spend wins and the other sees it spent: {a:?}, {b:?}"),
        };
        let token = trust.enrolment_token(&id).unwrap().unwrap().token;
        assert_eq!(token.spent_by.as_deref(), Some(winner.as_str()));
        let loser = if winner == kel_a { &kel_b } else { &kel_a };
        assert_eq!(trust.device_certs(&device(loser)).unwrap(), vec![], "the loser got no certificate");
        assert_eq!(trust.device_certs(&device(&winner)).unwrap().len(), 1);
    }
}

fn two_rollouts_started_at_once_leave_one_active(s: &Stores, other: &Stores) {
    publish(s, "1.1.0");
    publish(s, "1.2.0");
    heartbeats(s, &["kel-a", "kel-b", "kel-c"]);
    for round in 0..3 {
        let start = |s: &Stores, version: &str| s.rollouts.start(&RolloutSpec::of(version), NOW, "ops").unwrap();
        let (a, b) = at_once(s, other, |s| start(s, "1.1.0"), |s| start(s, "1.2.0"));
        let id = match (&a, &b) {
            (Ok(started), Err(StartRefused::Active(active))) | (Err(StartRefused::Active(active)), Ok(started)) => {
                assert_eq!(started.rollout.id, *active, "round {round}: refused for the one that started");
                started.rollout.id
            }
            _ => panic!("round {round}: one start wins and the other is refused: {a:?}, {b:?}"),
        };
        assert_eq!(s.rollouts.active().unwrap(), vec![id]);
        assert_eq!(other.rollouts.active().unwrap(), vec![id], "the other process sees the same one");
        s.rollouts.control(id, Control::Abort, NOW + 1, "ops").unwrap().unwrap();
    }
}

fn a_user_name_added_from_two_threads_at_once_is_taken_once(s: &Stores, other: &Stores) {
    for round in 0..5 {
        let name = format!("ana{round}");
        let add = |s: &Stores, role: Role| {
            s.auth.add_user(&User { name: name.clone(), role, created_ms: NOW }, &format!("{role:?}")).unwrap()
        };
        let (a, b) = at_once(s, other, |s| add(s, Role::Ops), |s| add(s, Role::Viewer));
        assert!(a ^ b, "round {round}: exactly one add wins: {a}, {b}");
        let (user, hash) = s.auth.user(&name).unwrap().unwrap();
        assert_eq!(hash, format!("{:?}", user.role), "the winner's row whole");
    }
}
