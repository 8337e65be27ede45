//! Past one machine: two fleet servers share ingest through a shared subscription on
//! Mosquitto and store into one PostgreSQL database (each Debian's own package, started by
//! the test). One fleet server is SIGKILLed mid-run and stays dead; every reading still
//! reaches the platform, which pages the cursor API of both, exactly once.
//!
//! What the dead member had in hand goes two ways. What it had not PUBACKed, Mosquitto
//! keeps for its persistent session; nothing gets it while it is dead. What it PUBACKed but
//! did not commit is gone from the broker. Either way the boxes were not acknowledged
//! above their watermark, so after `[uplink] ack_timeout` each sends again from its
//! watermark, and the surviving fleet stores the repeats once (docs/design/scale-out.md §5).

use std::collections::BTreeSet;
use std::time::Duration;

use simpul_tests::system::{Agent, AgentSpec, Consumer, Fleet, PATIENCE};
use simpul_tests::{LinkProxy, Mosquitto, Postgres};

const DEVICES: [&str; 3] = ["kel-scale-1", "kel-scale-2", "kel-scale-3"];
const STORED: &str = "simpul_fleet_readings_stored_total";

/// Four sensors every 10 ms, and a short ack timeout so that what the dead fleet took is
/// sent again within the test.
fn fast(device: &str) -> AgentSpec {
    AgentSpec {
        uplink_extra: "ack_timeout = \"2s\"\n".to_owned(),
        ..AgentSpec::new(device, 4, Duration::from_millis(10))
    }
}

/// Waits until `fleet` has stored at least one reading (by its own metrics).
async fn storing(fleet: &Fleet, name: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fleet.metric(STORED).await.unwrap_or(0.0) < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stored nothing: the shared subscription gave it no work"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_server_sigkilled_mid_run_loses_nothing_and_duplicates_nothing_while_another_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = tokio::task::spawn_blocking(Postgres::start).await.expect("join").expect("postgres");
    let mosquitto = Mosquitto::start().await.expect("mosquitto");
    let url = pg.url();
    // fleet-a commits every 2 s, so whenever it dies it holds batches the broker gave it and
    // it never committed: the case that strands readings.
    let slow = "commit_interval = \"2s\"\n";
    let mut fleet_a = Fleet::start_postgres(&dir.path().join("fleet-a"), mosquitto.addr(), &url, "fleet-a", slow)
        .await
        .expect("fleet a");
    let fleet_b = Fleet::start_postgres(&dir.path().join("fleet-b"), mosquitto.addr(), &url, "fleet-b", "")
        .await
        .expect("fleet b");
    let link = LinkProxy::start(mosquitto.addr()).await.expect("proxy");
    let mut consumer = Consumer::rotating(&[&fleet_a, &fleet_b]);
    let mut agents: Vec<Agent> =
        DEVICES.iter().map(|d| Agent::start(dir.path(), link.addr(), fast(d)).expect("agent")).collect();

    // Both members are working: each has stored readings of its share.
    storing(&fleet_a, "fleet-a").await;
    storing(&fleet_b, "fleet-b").await;
    for d in DEVICES {
        consumer.wait_for(d, 500).await;
    }

    // fleet-a dies with batches in hand and is not restarted. The boxes keep running and
    // keep their connections: the gaps fleet-a leaves are filled through `ack_timeout`,
    // and everything up to well past the kill arrives without a gap.
    fleet_a.kill();
    for d in DEVICES {
        let past_the_kill = consumer.count(d) as u64 + 1000;
        consumer.wait_for_contiguous(d, past_the_kill).await;
    }
    let resent: usize =
        agents.iter().map(|a| a.log().matches("did not acknowledge a batch the broker took").count()).sum();
    assert!(
        resent > 0,
        "no box had to send again: fleet-a died holding nothing, and the test proved less than it says"
    );

    for agent in &mut agents {
        assert_eq!(agent.terminate().expect("sigterm"), Some(0), "graceful stop\n{}", agent.log());
        let last = agent.last_seq().expect("last seq");
        agent.restart(link.addr(), false).expect("restart for draining");
        consumer.wait_for(&agent.spec.device, usize::try_from(last).expect("fits")).await;
        // One more page from each fleet: a duplicate arriving late must be seen too.
        consumer.poll().await;
        consumer.poll().await;
        let expected: BTreeSet<u64> = (1..=last).collect();
        consumer.assert_exactly_once(&agent.spec.device, &expected);
    }
}
