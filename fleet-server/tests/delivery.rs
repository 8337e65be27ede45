//! Delivery to the central platform: the cursor API, hold-and-correct of unsynced
//! readings, and the webhook.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{BOOT, Fleet, Setup, WAIT, batch, read_all, reading, unsynced};
use simpul_fleet::protocol::{BootId, ReadingBatch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_api_returns_every_reading_once_in_a_stable_order() {
    let s = Setup::start(|_| {}).await;
    let fleet = &s.fleet;
    let mut a = s.agent("kel-f").await;
    let mut b = s.agent("kel-g").await;
    a.publish(&batch(1..=4)).await;
    b.publish(&batch(1..=3)).await;
    a.publish(&batch(3..=7)).await;
    a.wait_ack(7).await;
    b.wait_ack(3).await;

    // JSON, paged by 3.
    let (all, next) = read_all(fleet, "", 3).await;
    let keys: Vec<String> = all.iter().map(|r| r["idempotency_key"].as_str().unwrap().to_owned()).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((all.len(), unique.len()), (10, 10), "{keys:?}");
    let cursors: Vec<u64> = all.iter().map(|r| r["cursor"].as_str().unwrap().parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert_eq!(next, cursors[9].to_string());
    let first = &all[0];
    assert_eq!(first["time"], "2026-11-18T11:06:41.000Z", "{first}");
    for field in ["device", "seq", "sensor", "metric", "unit", "value", "time_ms", "synced", "time_corrected"] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }

    // The same `after` gives the same page.
    let c = cursors[2];
    let p1 = fleet.get_json(&format!("/api/v1/readings?after={c}&limit=4")).await;
    let p2 = fleet.get_json(&format!("/api/v1/readings?after={c}&limit=4")).await;
    assert_eq!(p1, p2);
    assert_eq!(p1["readings"].as_array().unwrap()[..], all[3..7]);

    // NDJSON, by query and by Accept header: one reading a line, then the next cursor.
    for req in [
        fleet.get("/api/v1/readings?format=ndjson&limit=10000"),
        fleet.get("/api/v1/readings").header("accept", "application/x-ndjson"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        assert_eq!(resp.headers()["simpul-next-cursor"].to_str().unwrap(), next);
        let text = resp.text().await.unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[..10], all[..]);
        assert_eq!(lines[10], serde_json::json!({ "next": next }));
    }

    // A limit above the cap is capped; a bad cursor is a 400; an unknown device a 404.
    let resp = fleet.get("/api/v1/readings?after=x").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = fleet.get("/api/v1/devices/nobody").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

/// Reads until at least `n` readings are deliverable (waits for the event, not a time).
async fn wait_readings(fleet: &Fleet, n: usize) -> Vec<serde_json::Value> {
    tokio::time::timeout(WAIT, async {
        loop {
            let (all, _) = read_all(fleet, "", 1000).await;
            if all.len() >= n {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("fewer than {n} readings became deliverable"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_readings_are_held_until_the_clock_offset_arrives_then_delivered_corrected() {
    let s = Setup::start(|_| {}).await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-h").await;
    let boot = BootId([9; 16]);

    agent
        .publish(&ReadingBatch { readings: vec![unsynced(1, boot), unsynced(2, boot), reading(3)], dropped: vec![] })
        .await;
    agent.wait_ack(3).await;
    let (seen, _) = read_all(fleet, "", 100).await;
    assert_eq!(seen.len(), 1, "only the synced reading is delivered: {seen:?}");
    assert_eq!(seen[0]["seq"], 3);
    assert_eq!(fleet.get_json("/api/v1/devices/kel-h").await["readings_held"], 2);

    let offset = 1_795_000_000_000;
    agent.clock_synced(boot, offset).await;
    let all = wait_readings(fleet, 3).await;
    assert_eq!(all[0], seen[0], "what was delivered did not change");
    for (r, seq) in all[1..].iter().zip([1i64, 2]) {
        assert_eq!(r["seq"], seq);
        assert_eq!(r["time_ms"], offset + seq * 1000, "{r}");
        assert_eq!((r["synced"].as_bool(), r["time_corrected"].as_bool()), (Some(false), Some(true)), "{r}");
    }

    // A reading of that boot arriving after the sync is corrected at once.
    agent.publish(&ReadingBatch { readings: vec![unsynced(4, boot)], dropped: vec![] }).await;
    agent.wait_ack(4).await;
    let all = wait_readings(fleet, 4).await;
    assert_eq!((all[3]["time_ms"].as_i64(), all[3]["time_corrected"].as_bool()), (Some(offset + 4000), Some(true)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_readings_are_released_uncorrected_when_the_hold_times_out() {
    let s = Setup::start(|c| c.time.hold_unsynced = Duration::from_millis(300)).await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-i").await;

    agent.publish(&ReadingBatch { readings: vec![unsynced(1, BOOT)], dropped: vec![] }).await;
    agent.wait_ack(1).await;
    let all = wait_readings(fleet, 1).await;
    assert_eq!(all[0]["time_ms"], 1000);
    assert_eq!((all[0]["synced"].as_bool(), all[0]["time_corrected"].as_bool()), (Some(false), Some(false)));

    // An offset that comes later changes nothing already delivered.
    agent.clock_synced(BOOT, 5_000).await;
    agent.publish(&batch([2])).await;
    agent.wait_ack(2).await;
    let all = wait_readings(fleet, 2).await;
    assert_eq!(all[0]["time_ms"], 1000);
    s.stop().await;
}

/// A platform that refuses the first `fail` POSTs, then records what it gets.
#[derive(Clone, Default)]
struct Platform {
    fail: usize,
    calls: Arc<Mutex<usize>>,
    keys: Arc<Mutex<Vec<String>>>,
    batch_keys: Arc<Mutex<Vec<String>>>,
    got: Arc<tokio::sync::Notify>,
}

async fn platform_post(
    State(p): State<Platform>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let call = {
        let mut c = p.calls.lock().unwrap();
        *c += 1;
        *c
    };
    if call <= p.fail {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let batch_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    p.batch_keys.lock().unwrap().push(batch_key);
    for r in body["readings"].as_array().unwrap() {
        p.keys.lock().unwrap().push(r["idempotency_key"].as_str().unwrap().to_owned());
    }
    p.got.notify_waiters();
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_until_2xx_and_delivers_each_reading_once_with_its_idempotency_key() {
    let platform = Platform { fail: 3, ..Default::default() };
    let app = axum::Router::new().route("/ingest", axum::routing::post(platform_post)).with_state(platform.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = Setup::start(|c| {
        c.webhook.url = Some(url);
        c.webhook.batch_size = 4;
        c.webhook.min_backoff = Duration::from_millis(10);
        c.webhook.max_backoff = Duration::from_millis(50);
    })
    .await;
    let fleet = &s.fleet;
    let mut agent = s.agent("kel-j").await;
    agent.publish(&batch(1..=6)).await;
    agent.wait_ack(6).await;
    agent.publish(&batch(4..=10)).await;
    agent.wait_ack(10).await;

    tokio::time::timeout(WAIT, async {
        loop {
            let got = platform.got.notified();
            if platform.keys.lock().unwrap().len() >= 10 {
                return;
            }
            got.await;
        }
    })
    .await
    .expect("every reading delivered");

    let keys = platform.keys.lock().unwrap().clone();
    let mut counts = BTreeMap::new();
    for k in &keys {
        *counts.entry(k.clone()).or_insert(0) += 1;
    }
    let expected: BTreeMap<String, i32> = (1..=10).map(|s| (format!("kel-j:{s}"), 1)).collect();
    assert_eq!(counts, expected, "each reading once, none skipped");
    assert!(*platform.calls.lock().unwrap() >= 3 + 3, "three refusals, then at least three batches of <= 4");
    let batch_keys = platform.batch_keys.lock().unwrap().clone();
    assert!(batch_keys.iter().all(|k| k.starts_with("readings:")), "{batch_keys:?}");
    let store = Arc::clone(&fleet.running.as_ref().unwrap().store);
    let (all, next) = read_all(fleet, "", 100).await;
    assert_eq!(all.len(), 10);
    // The cursor is persisted once the last 2xx is in.
    tokio::time::timeout(WAIT, async {
        while store.consumer_cursor(simpul_fleet::webhook::CONSUMER).unwrap().to_string() != next {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("cursor persisted");
    s.stop().await;
}
