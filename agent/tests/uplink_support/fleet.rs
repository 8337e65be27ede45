//! A fake fleet speaking the uplink contract: it decodes every batch on
//! `simpul/v1/dev/+/readings`, keeps the seqs, and publishes `Ack { watermark }` retained
//! on the device's ack topic (the highest contiguous seq, dropped ranges counting as
//! done), optionally capped to play a fleet that has not stored everything yet.

use std::collections::BTreeSet;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use simpul_protocol::control::{Ack, Event as ControlEvent, Status};
use simpul_protocol::{Channel, ControlMessage, DeviceId, ReadingBatch, Topic};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// What the fake fleet has seen.
#[derive(Clone, Debug, Default)]
pub struct FleetState {
    /// Every seq stored (readings and dropped seqs).
    pub seqs: BTreeSet<u64>,
    /// Seqs in the order they arrived, duplicates included.
    pub arrivals: Vec<u64>,
    /// Seqs that arrived again.
    pub duplicates: u64,
    /// Batches received.
    pub batches: u64,
    /// Payloads that did not decode.
    pub bad: u64,
    /// The watermark last published.
    pub acked: Option<u64>,
    /// Status messages, in arrival order (retained ones included).
    pub statuses: Vec<Status>,
    /// Events, in arrival order.
    pub events: Vec<ControlEvent>,
    /// Connects of the fleet's own client.
    pub connects: u64,
}

impl FleetState {
    /// The highest n such that 1..=n are all stored (0 when seq 1 is missing).
    pub fn contiguous(&self) -> u64 {
        let mut n = 0;
        for s in &self.seqs {
            if *s != n + 1 {
                break;
            }
            n = *s;
        }
        n
    }

    /// Whether exactly 1..=n arrived.
    pub fn has_all(&self, n: u64) -> bool {
        self.contiguous() >= n
    }

    /// Where `seq` first arrived in [`FleetState::arrivals`].
    pub fn arrival_index(&self, seq: u64) -> Option<usize> {
        self.arrivals.iter().position(|s| *s == seq)
    }
}

enum Command {
    AckCap(u64),
    ForgetAbove(u64),
}

/// The running fake fleet; its tasks end on drop.
#[derive(Debug)]
pub struct FakeFleet {
    state: watch::Receiver<FleetState>,
    commands: mpsc::UnboundedSender<Command>,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl FakeFleet {
    /// Connects to the broker on `port` and acknowledges up to `ack_cap` (0: never acks,
    /// `u64::MAX`: everything).
    pub fn start(port: u16, device: DeviceId, ack_cap: u64) -> FakeFleet {
        let mut o = MqttOptions::new(format!("fake-fleet-{}", rand_suffix()), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(32 << 20, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (commands, mut command_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(FleetState::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            loop {
                let ev = eventloop.poll().await;
                let failed = ev.is_err();
                if events_tx.send(ev).is_err() {
                    break;
                }
                if failed {
                    // The broker is down (a test killed it): try again soon.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        tasks.spawn(async move {
            let mut fleet = Fleet { client, device, cap: ack_cap, state: state_tx };
            loop {
                tokio::select! {
                    Some(ev) = events.recv() => fleet.on_event(ev).await,
                    Some(cmd) = command_rx.recv() => fleet.on_command(cmd).await,
                    else => break,
                }
            }
        });
        FakeFleet { state, commands, _tasks: tasks }
    }

    /// A copy of what it has seen.
    pub fn state(&self) -> FleetState {
        self.state.borrow().clone()
    }

    /// Waits until `pred` holds and returns that state.
    pub async fn wait_for(&self, pred: impl Fn(&FleetState) -> bool) -> FleetState {
        let mut rx = self.state.clone();
        let state = rx.wait_for(|s| pred(s)).await.expect("fake fleet alive");
        state.clone()
    }

    /// Acknowledge at most up to `cap` from now on (and at once, if it has more).
    pub fn set_ack_cap(&self, cap: u64) {
        let _ = self.commands.send(Command::AckCap(cap));
    }

    /// Forgets every seq above `seq`, as a fleet that crashed before storing them would.
    pub fn forget_above(&self, seq: u64) {
        let _ = self.commands.send(Command::ForgetAbove(seq));
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::from(d.subsec_nanos())).unwrap_or(0)
        ^ u64::from(std::process::id())
}

struct Fleet {
    client: AsyncClient,
    device: DeviceId,
    cap: u64,
    state: watch::Sender<FleetState>,
}

impl Fleet {
    async fn on_event(&mut self, ev: Result<Event, rumqttc::ConnectionError>) {
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                for channel in [Channel::Readings, Channel::Status, Channel::Events] {
                    let _ = self.client.subscribe(Topic::all_devices(channel), QoS::AtLeastOnce).await;
                }
                self.state.send_modify(|s| s.connects += 1);
                // A restarted broker forgot the retained ack: publish it again.
                let acked = self.state.borrow().acked;
                if let Some(w) = acked {
                    self.publish_ack(w).await;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Ok(topic) = Topic::parse(&p.topic) else { return };
                match topic.channel {
                    Channel::Readings => self.on_batch(&p.payload).await,
                    Channel::Status => match Status::from_json(&p.payload) {
                        Ok(st) => self.state.send_modify(|s| s.statuses.push(st)),
                        Err(_) => self.state.send_modify(|s| s.bad += 1),
                    },
                    Channel::Events => match ControlEvent::from_json(&p.payload) {
                        Ok(e) => self.state.send_modify(|s| s.events.push(e)),
                        Err(_) => self.state.send_modify(|s| s.bad += 1),
                    },
                    _ => {}
                }
            }
            _ => {}
        }
    }

    async fn on_batch(&mut self, payload: &[u8]) {
        let Ok(batch) = ReadingBatch::decode(payload) else {
            self.state.send_modify(|s| s.bad += 1);
            return;
        };
        self.state.send_modify(|s| {
            s.batches += 1;
            let dropped = batch.dropped.iter().flat_map(|d| d.first..=d.last);
            for seq in batch.readings.iter().map(|r| r.seq).chain(dropped) {
                s.arrivals.push(seq);
                if !s.seqs.insert(seq) {
                    s.duplicates += 1;
                }
            }
        });
        self.maybe_ack().await;
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::AckCap(cap) => self.cap = cap,
            Command::ForgetAbove(seq) => self.state.send_modify(|s| s.seqs.retain(|x| *x <= seq)),
        }
        self.maybe_ack().await;
    }

    /// Publishes the watermark when it moved (the "durable commit" is the set insert).
    async fn maybe_ack(&mut self) {
        let (contiguous, acked) = {
            let s = self.state.borrow();
            (s.contiguous(), s.acked)
        };
        let w = contiguous.min(self.cap);
        if w > 0 && acked.is_none_or(|a| w > a) {
            self.publish_ack(w).await;
        }
    }

    async fn publish_ack(&mut self, w: u64) {
        let json = Ack { watermark: w }.to_json().expect("ack json");
        let topic = Topic::new(self.device.clone(), Channel::Ack).name();
        if self.client.publish(topic, QoS::AtLeastOnce, true, json).await.is_ok() {
            self.state.send_modify(|s| s.acked = Some(w));
        }
    }
}
