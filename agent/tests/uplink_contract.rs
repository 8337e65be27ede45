//! The uplink against a real Mosquitto and a fake fleet: the end-to-end ack contract
//! (docs/design/uplink.md). Real time, real sockets; every wait is for an event, with a
//! generous timeout as a safety net.

mod uplink_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_agent::clock::{Clock, ManualClock};
use simpul_protocol::control::Event;
use tokio_util::sync::CancellationToken;
use uplink_support::fleet::FakeFleet;
use uplink_support::proxy::SlowProxy;
use uplink_support::{Agent, Rig, append, device, open, synced_clock, uplink_config, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_buffered_reading_reaches_the_fleet_exactly_once_and_is_deleted_after_the_ack() {
    let rig = Rig::start(u64::MAX).await;
    let mut writer = open(&rig.path);
    let backlog = append(&mut writer, 1_000);

    let agent = Agent::start(uplink_config(rig.broker.port(), 100), &rig.path, synced_clock());
    within("the backlog acknowledged", agent.up.stats.wait_for(|s| s.watermark == Some(backlog))).await;
    // Live readings flushed while connected follow.
    let last = append(&mut writer, 50);
    within("live readings acknowledged", agent.up.stats.wait_for(|s| s.watermark == Some(last))).await;

    let seen = rig.fleet.state();
    assert!(seen.has_all(last) && seen.seqs.len() == 1_050, "fleet has {} seqs", seen.seqs.len());
    assert_eq!(seen.duplicates, 0, "a fresh session sends each reading once");
    assert_eq!(seen.bad, 0);
    assert_eq!(writer.stats().expect("stats").readings, 0, "everything acknowledged is deleted");
    assert_eq!(agent.up.stats.snapshot().deleted, 1_050);

    agent.stop().await;
    let is_offline = |s: &uplink_support::fleet::FleetState| s.statuses.last().is_some_and(|st| !st.online);
    let offline = within("the offline status", rig.fleet.wait_for(is_offline)).await;
    assert!(offline.statuses.iter().any(|st| st.online), "online was announced first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_until_the_fleet_acknowledges_it() {
    let rig = Rig::start(0).await;
    let mut writer = open(&rig.path);
    let last = append(&mut writer, 500);

    let agent = Agent::start(uplink_config(rig.broker.port(), 100), &rig.path, synced_clock());
    let stats = &agent.up.stats;
    within("the fleet stores everything", rig.fleet.wait_for(|s| s.has_all(last))).await;
    within("every batch PUBACKed", stats.wait_for(|s| s.batches_sent >= 5 && s.pubacks > s.batches_sent)).await;
    assert_eq!(stats.snapshot().watermark, None);
    assert_eq!(writer.stats().expect("stats").readings, 500, "PUBACKs delete nothing");

    rig.fleet.set_ack_cap(200);
    within("the partial ack", stats.wait_for(|s| s.watermark == Some(200))).await;
    let held = writer.stats().expect("stats");
    assert_eq!((held.readings, held.first_seq), (300, Some(201)), "deleted through the watermark, not above");

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_puback_without_a_fleet_ack_is_not_trusted_after_reconnect() {
    let Rig { mut broker, fleet, path, dir: _dir } = Rig::start(300).await;
    let mut writer = open(&path);
    let last = append(&mut writer, 1_000);

    let agent = Agent::start(uplink_config(broker.port(), 100), &path, synced_clock());
    let stats = &agent.up.stats;
    within("all sent and PUBACKed", stats.wait_for(|s| s.readings_sent >= last && s.pubacks > s.batches_sent)).await;
    within("the fleet has it all (not durably)", fleet.wait_for(|s| s.has_all(last))).await;
    within("the capped ack", stats.wait_for(|s| s.watermark == Some(300))).await;
    assert_eq!(writer.stats().expect("stats").first_seq, Some(301));

    // The broker dies; the fleet had not durably stored what it had not acknowledged.
    broker.kill();
    within("the agent notices", stats.wait_for(|s| !s.connected)).await;
    fleet.forget_above(300);
    fleet.set_ack_cap(u64::MAX);
    assert_eq!(writer.stats().expect("stats").first_seq, Some(301), "nothing above the watermark deleted");
    broker.restart().await.expect("broker back on the same port");

    within("everything acknowledged", stats.wait_for(|s| s.watermark == Some(last))).await;
    let snap = stats.snapshot();
    let seen = fleet.state();
    assert!(seen.has_all(last), "nothing lost");
    assert!(snap.connects >= 2 && snap.resends >= 1, "{snap:?}");
    assert!(snap.readings_sent >= last + 700, "everything above the watermark was sent again: {snap:?}");
    eprintln!("duplicates at the fleet: {} (allowed)", seen.duplicates);
    assert_eq!(writer.stats().expect("stats").readings, 0);

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_broker_took_but_no_fleet_acknowledged_is_sent_again_after_ack_timeout_without_reconnecting() {
    // A fleet process that takes the batches (the broker PUBACKs them to the box) and never
    // acknowledges: a shared-subscription member killed with the messages in hand.
    let rig = Rig::start(0).await;
    let mut writer = open(&rig.path);
    let last = append(&mut writer, 300);
    let mut config = uplink_config(rig.broker.port(), 100);
    config.ack_timeout = Duration::from_secs(1);
    let agent = Agent::start(config, &rig.path, synced_clock());
    let stats = &agent.up.stats;
    within("the batches taken", rig.fleet.wait_for(|s| s.has_all(last))).await;
    within("every batch PUBACKed", stats.wait_for(|s| s.batches_sent >= 3 && s.pubacks > s.batches_sent)).await;
    // That process is gone with what it took; the one that remains would acknowledge.
    rig.fleet.forget_above(0);
    rig.fleet.set_ack_cap(u64::MAX);

    within("everything acknowledged", stats.wait_for(|s| s.watermark == Some(last))).await;
    let snap = stats.snapshot();
    assert_eq!(snap.connects, 1, "the same session sent it again: {snap:?}");
    assert!(snap.ack_timeouts >= 1 && snap.resends >= 1, "{snap:?}");
    assert!(rig.fleet.state().has_all(last), "nothing lost");
    assert_eq!(writer.stats().expect("stats").readings, 0);

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_readings_are_not_stuck_behind_a_large_backlog() {
    let rig = Rig::start(u64::MAX).await;
    // A slow link: every chunk of 256 bytes towards the broker waits 5 ms.
    let proxy = SlowProxy::start(rig.broker.port(), 256, Duration::from_millis(5)).await;
    let mut writer = open(&rig.path);
    let backlog = append(&mut writer, 10_000);

    let started = Instant::now();
    let agent = Agent::start(uplink_config(proxy.port(), 20), &rig.path, synced_clock());
    within("the first backlog batch", rig.fleet.wait_for(|s| s.batches > 0)).await;
    let live = append(&mut writer, 5);
    let live_at = within("the live readings", rig.fleet.wait_for(|s| s.seqs.contains(&live))).await;
    let live_latency = started.elapsed();
    assert!(!live_at.has_all(backlog), "the backlog was already done when live data arrived: the test proves nothing");
    let done = within("the backlog", rig.fleet.wait_for(|s| s.has_all(live))).await;
    let (first_live, last_backlog) = (done.arrival_index(live - 4), done.arrival_index(backlog));
    assert!(first_live < last_backlog, "live {first_live:?} must arrive before the backlog's end {last_backlog:?}");
    eprintln!("live after {live_latency:?}, backlog done after {:?}", started.elapsed());
    within("everything acknowledged", agent.up.stats.wait_for(|s| s.watermark == Some(live))).await;

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_will_marks_the_device_offline_when_the_agent_dies() {
    let rig = Rig::start(u64::MAX).await;
    let agent = Agent::start(uplink_config(rig.broker.port(), 100), &rig.path, synced_clock());
    within("online", rig.fleet.wait_for(|s| s.statuses.last().is_some_and(|st| st.online))).await;

    // As a crash looks to the broker: the socket closes without a DISCONNECT.
    agent.up.abort();
    let seen = within("the last will", rig.fleet.wait_for(|s| s.statuses.last().is_some_and(|st| !st.online))).await;
    let will = seen.statuses.last().cloned().expect("a status");
    assert_eq!(will.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));

    // Retained: a fleet that connects later learns at once that the device is offline.
    let late = FakeFleet::start(rig.broker.port(), device(), u64::MAX);
    let retained = within("the retained status", late.wait_for(|s| !s.statuses.is_empty())).await;
    assert!(!retained.statuses[0].online);
    agent.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_that_syncs_later_reports_its_offset_once() {
    const TRUE_NOW: i64 = 1_800_000_000_000;
    let rig = Rig::start(u64::MAX).await;
    let mut writer = open(&rig.path);
    // A Pi back from a power cut, believing it is 1970 (wall 1000 ms at mono 0).
    let clock = Arc::new(ManualClock::new(1_000, false));
    let agent = Agent::start(uplink_config(rig.broker.port(), 100), &rig.path, clock.clone());
    let stats = &agent.up.stats;
    within("connected", stats.wait_for(|s| s.connected)).await;

    clock.advance(Duration::from_secs(5));
    clock.set_wall(TRUE_NOW, true);
    let seen = within("the clock_synced event", rig.fleet.wait_for(|s| !s.events.is_empty())).await;
    let Event::ClockSynced { boot_id, offset_ms, at_mono_ms } = seen.events[0].clone() else {
        panic!("unexpected event {:?}", seen.events[0])
    };
    assert_eq!((boot_id, at_mono_ms), (clock.now().boot_id, 5_000));
    // A reading taken unsynced at mono 5000 said wall 6000; its true time is TRUE_NOW.
    assert_eq!(6_000 + offset_ms, TRUE_NOW);

    // Many checks later (each round trip spans several batch intervals), still one event.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        let last = append(&mut writer, 1);
        within("a round trip", stats.wait_for(|s| s.watermark == Some(last))).await;
    }
    assert_eq!(rig.fleet.state().events.len(), 1);
    assert_eq!(stats.snapshot().events_sent, 1);

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_started_with_the_uplink_enabled_delivers_its_sensor_readings() {
    let rig = Rig::start(u64::MAX).await;
    let toml = format!(
        "[device]\nid = \"{}\"\n[buffer]\npath = {:?}\nflush_interval = \"50ms\"\n\
         [uplink]\nenabled = true\nbroker = \"127.0.0.1:{}\"\nkeepalive = \"5s\"\nbatch_interval = \"50ms\"\n\
         reconnect_min = \"50ms\"\nreconnect_max = \"500ms\"\n\
         [sensors.demo]\nkind = \"simulated\"\ninterval = \"10ms\"\n",
        device(),
        rig.path.display().to_string(),
        rig.broker.port()
    );
    let config = simpul_agent::config::load_str("agent.toml", &toml).expect("config");
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(simpul_agent::run::run_with_clock(config, synced_clock(), shutdown.clone()));

    within("sensor readings acknowledged", rig.fleet.wait_for(|s| s.acked.is_some_and(|w| w >= 20))).await;
    // The agent deletes once the ack reaches it; check at each new batch the fleet gets.
    let reader = open(&rig.path);
    within("acknowledged readings deleted", async {
        loop {
            let batches = rig.fleet.state().batches;
            if reader.stats().expect("stats").first_seq.is_none_or(|f| f > 20) {
                break;
            }
            rig.fleet.wait_for(|s| s.batches > batches).await;
        }
    })
    .await;
    shutdown.cancel();
    within("the agent stops", agent).await.expect("join").expect("run");

    // Nothing lost: every seq given is at the fleet or still in the buffer.
    let held = reader.stats().expect("stats");
    let seen = rig.fleet.state();
    let missing: Vec<u64> =
        (1..held.next_seq).filter(|s| !seen.seqs.contains(s) && held.first_seq.is_none_or(|f| *s < f)).collect();
    assert!(missing.is_empty(), "lost {missing:?}");
}
