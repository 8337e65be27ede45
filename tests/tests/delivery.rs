//! Every reading delivered, late but never lost, never twice: the real fleet and agent
//! binaries, a real broker (Mosquitto, and the fleet's embedded one), faults injected
//! mid-run, and a consumer of the cursor API that must see every produced reading once.

use std::collections::BTreeSet;
use std::time::Duration;

use simpul_tests::system::{Agent, AgentSpec, BrokerKind, Consumer, Enrolment, Fleet, PATIENCE, Stack};
use simpul_tests::{LinkProxy, Mosquitto};

/// Four sensors every 10 ms: 400 readings a second, so each phase of a test sees many
/// batches in flight.
fn fast(device: &str) -> AgentSpec {
    AgentSpec::new(device, 4, Duration::from_millis(10))
}

struct System {
    dir: tempfile::TempDir,
    mosquitto: Option<Mosquitto>,
    link: LinkProxy,
    fleet: Fleet,
    consumer: Consumer,
    /// Set on the embedded broker: agents enrol and speak mutual TLS.
    enrolment: Option<Enrolment>,
}

impl System {
    async fn start(kind: BrokerKind) -> System {
        let dir = tempfile::tempdir().expect("tempdir");
        let Stack { mosquitto, broker, fleet, enrolment } =
            Stack::start(dir.path(), kind).await.expect("broker and fleet");
        let link = LinkProxy::start(broker).await.expect("proxy");
        let consumer = Consumer::new(&fleet);
        System { dir, mosquitto, link, fleet, consumer, enrolment }
    }

    fn agent(&self, mut spec: AgentSpec) -> Agent {
        spec.enrolment.clone_from(&self.enrolment);
        Agent::start(self.dir.path(), self.link.addr(), spec).expect("agent")
    }

    /// Stops the agent's sensors (SIGTERM flushes), lets its uplink drain what is left,
    /// and checks the consumer got every seq the agent ever gave, once.
    async fn finish(&mut self, agent: &mut Agent) {
        assert_eq!(agent.terminate().expect("sigterm"), Some(0), "graceful stop\n{}", agent.log());
        if self.enrolment.is_some() {
            assert!(agent.enrolled(), "the agent enrolled and spoke mutual TLS\n{}", agent.log());
        }
        let last = agent.last_seq().expect("last seq");
        agent.restart(self.link.addr(), false).expect("restart for draining");
        self.consumer.wait_for(&agent.spec.device, usize::try_from(last).expect("fits")).await;
        // One more page: a duplicate arriving late must be seen too.
        self.consumer.poll().await;
        let expected: BTreeSet<u64> = (1..=last).collect();
        self.consumer.assert_exactly_once(&agent.spec.device, &expected);
    }
}

async fn broker_restart(kind: BrokerKind) {
    let mut sys = System::start(kind).await;
    let mut agent = sys.agent(fast("kel-broker"));
    sys.consumer.wait_for("kel-broker", 500).await;
    // Without persistence: sessions, in-flight messages and retained acks are gone.
    sys.mosquitto.as_mut().expect("an external broker").restart().await.expect("broker restart");
    sys.consumer.wait_for("kel-broker", 1500).await;
    sys.finish(&mut agent).await;
}

async fn fleet_sigkill(kind: BrokerKind) {
    let mut sys = System::start(kind).await;
    let mut agent = sys.agent(fast("kel-fleet"));
    sys.consumer.wait_for("kel-fleet", 500).await;
    sys.fleet.kill();
    sys.fleet.restart().await.expect("fleet restart");
    sys.consumer.wait_for("kel-fleet", 1500).await;
    sys.finish(&mut agent).await;
}

async fn agent_sigkill(kind: BrokerKind) {
    let mut sys = System::start(kind).await;
    let mut agent = sys.agent(fast("kel-agent"));
    sys.consumer.wait_for("kel-agent", 500).await;
    agent.kill();
    agent.restart(sys.link.addr(), true).expect("agent restart");
    sys.consumer.wait_for("kel-agent", 1500).await;
    sys.finish(&mut agent).await;
}

async fn link_cuts(kind: BrokerKind) {
    let mut sys = System::start(kind).await;
    let mut agent = sys.agent(fast("kel-link"));
    let mut target = 400;
    for _ in 0..5 {
        sys.consumer.wait_for("kel-link", target).await;
        sys.link.cut();
        // While cut, readings pile up in the buffer until there are 800 waiting.
        wait_until(|| agent.held().is_ok_and(|n| n >= 800)).await;
        sys.link.restore();
        target = sys.consumer.count("kel-link") + 1200;
    }
    sys.finish(&mut agent).await;
}

/// Polls a condition on another process's state (there is no event to await across a
/// process boundary) every 50 ms, failing after [`PATIENCE`].
async fn wait_until(mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod mosquitto {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_restart_mid_batch_loses_nothing_and_duplicates_nothing() {
        broker_restart(BrokerKind::Mosquitto).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fleet_sigkill_mid_batch_loses_nothing_and_duplicates_nothing() {
        fleet_sigkill(BrokerKind::Mosquitto).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agent_sigkill_mid_batch_loses_nothing_it_flushed_and_duplicates_nothing() {
        agent_sigkill(BrokerKind::Mosquitto).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_cut_and_restored_again_and_again_loses_nothing_and_duplicates_nothing() {
        link_cuts(BrokerKind::Mosquitto).await;
    }
}

mod embedded {
    use super::*;

    /// The embedded broker restarts with the fleet: a fleet SIGKILL is its restart too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fleet_and_broker_sigkill_mid_batch_loses_nothing_and_duplicates_nothing() {
        fleet_sigkill(BrokerKind::Embedded).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agent_sigkill_mid_batch_loses_nothing_it_flushed_and_duplicates_nothing() {
        agent_sigkill(BrokerKind::Embedded).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_cut_and_restored_again_and_again_loses_nothing_and_duplicates_nothing() {
        link_cuts(BrokerKind::Embedded).await;
    }
}
