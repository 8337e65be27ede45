//! One simulated box, doing what the agent's uplink does (agent/src/uplink): a clean
//! session over mutual TLS; on connect it subscribes to its ack, desired config and update
//! topics, publishes a retained `online` status (its last will says `offline`) and re-sends
//! every batch the fleet has not acknowledged, from the watermark on; it keeps producing
//! while the link is down; a lost link is retried after 1 s doubling to 60 s, with jitter.
//! Each batch is timed from when it was due to the ack that covers it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use simpul_protocol::control::{Ack, ControlMessage, Heartbeat, LinkHealth, SensorHealth, SensorState, Status};
use simpul_protocol::topic::Channel;
use simpul_protocol::{DeviceId, Topic};
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::common::{BATCH, batch, publish_wire_bytes};

/// What the boxes are doing; the bench moves them from one phase to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connecting; nothing produced yet.
    Connect = 0,
    /// A batch and a heartbeat a minute.
    Steady = 1,
    /// Batches as fast as the burst interval.
    Burst = 2,
    /// The fleet was restarted at the plan's `since`; a batch and a heartbeat a minute.
    Storm = 3,
    /// Nothing new: each box waits until all it produced is acked, then disconnects.
    Drain = 4,
    /// Stop now, acked or not.
    Done = 5,
}

pub const PHASES: usize = 6;

/// The current phase, since when, and how often each box sends a batch in it.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub phase: Phase,
    pub since: Instant,
    pub batch_every: Option<Duration>,
    pub heartbeat_every: Duration,
}

/// What all boxes counted, read by the bench while they run.
#[derive(Default)]
pub struct Stats {
    /// Boxes that connected at least once.
    pub ready: AtomicU64,
    /// Boxes connected now.
    pub connected: AtomicI64,
    /// Successful connects, all boxes.
    pub connects: AtomicU64,
    /// Connection attempts that failed (refused, reset, handshake).
    pub failed_attempts: AtomicU64,
    /// Boxes reconnected after the restart with every batch due before it acked.
    pub settled: AtomicU64,
    /// Readings acked, by the phase they were acked in.
    pub acked_while: [AtomicU64; PHASES],
    /// Publish-to-ack in microseconds, by the phase each batch was due in.
    pub latencies_us: [std::sync::Mutex<Vec<u64>>; PHASES],
    /// Bytes of reading batches on the wire (MQTT framing included), re-sends counted.
    pub wire_bytes: AtomicU64,
    /// Batches sent again after a reconnect.
    pub resent_batches: AtomicU64,
}

/// What one box produced and what was never acked.
pub struct Outcome {
    pub device: String,
    pub last_seq: u64,
    pub unacked_readings: u64,
}

/// A batch produced and not yet acknowledged.
struct Pending {
    first: u64,
    due: Instant,
    phase: Phase,
}

/// Simulated box `n` of `devices`, until the plan says `Done` (or it drained).
pub async fn run(
    id: DeviceId,
    n: u64,
    devices: u64,
    tls: Arc<rustls::ClientConfig>,
    broker: u16,
    mut plan: watch::Receiver<Plan>,
    stats: Arc<Stats>,
) -> Outcome {
    let mut b = SimBox::new(id, n, devices);
    let mut backoff = backoff();
    let mut ever_connected = false;
    loop {
        if plan.borrow().phase == Phase::Done {
            break;
        }
        let end = b.session(&tls, broker, &mut plan, &stats, &mut ever_connected).await;
        match end {
            SessionEnd::Finished => break,
            SessionEnd::Lost { connected } => {
                if connected {
                    stats.connected.fetch_sub(1, Ordering::Relaxed);
                    backoff = self::backoff();
                } else {
                    stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                }
                let delay = backoff.next().unwrap_or(Duration::from_secs(60)).min(Duration::from_secs(60));
                let wake = tokio::time::Instant::now() + delay;
                // Produce while away, as the agent buffers while its link is down.
                while tokio::time::Instant::now() < wake && plan.borrow().phase != Phase::Done {
                    b.produce(&plan.borrow());
                    let next = b.next_wake(&plan.borrow()).map(Into::into).unwrap_or(wake).min(wake);
                    tokio::select! {
                        () = tokio::time::sleep_until(next) => {}
                        r = plan.changed() => { if r.is_err() { break } b.replan(&plan.borrow()) }
                    }
                }
            }
        }
    }
    Outcome { device: b.id.to_string(), last_seq: b.next_seq - 1, unacked_readings: b.pending.len() as u64 * BATCH }
}

/// The agent's connect timeout (`[uplink] connect_timeout`, default 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The agent's reconnect backoff: 1 s doubling to 60 s, with jitter.
fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

type Polled = Result<Event, rumqttc::ConnectionError>;

/// Polls `eventloop` in its own task until the first error; its events arrive on the channel.
fn poll_in_task(
    mut eventloop: rumqttc::EventLoop,
) -> (tokio::sync::mpsc::UnboundedReceiver<Polled>, AbortOnDropHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let event = eventloop.poll().await;
            let failed = event.is_err();
            if tx.send(event).is_err() || failed {
                break;
            }
        }
    });
    (rx, AbortOnDropHandle::new(task))
}

enum SessionEnd {
    /// Drained or told to stop.
    Finished,
    /// The connection failed or broke; `connected` if it had got its CONNACK.
    Lost { connected: bool },
}

struct SimBox {
    id: DeviceId,
    /// Where this box's schedule sits inside each interval (0..1), so boxes spread out.
    offset: f64,
    next_seq: u64,
    acked: u64,
    pending: VecDeque<Pending>,
    batch_due: Option<Instant>,
    heartbeat_due: Instant,
    started: Instant,
    connects: u64,
    settled: bool,
}

impl SimBox {
    fn new(id: DeviceId, n: u64, devices: u64) -> SimBox {
        let now = Instant::now();
        SimBox {
            id,
            offset: n as f64 / devices.max(1) as f64,
            next_seq: 1,
            acked: 0,
            pending: VecDeque::new(),
            batch_due: None,
            heartbeat_due: now,
            started: now,
            connects: 0,
            settled: false,
        }
    }

    fn topic(&self, channel: Channel) -> String {
        Topic::new(self.id.clone(), channel).name()
    }

    /// A new phase: restart the schedules, spread by this box's offset.
    fn replan(&mut self, plan: &Plan) {
        self.batch_due = plan.batch_every.map(|every| plan.since + every.mul_f64(self.offset));
        self.heartbeat_due = plan.since + plan.heartbeat_every.mul_f64(self.offset);
        if plan.phase == Phase::Storm {
            self.settled = false;
        }
    }

    /// Produces the batch that is due, if one is; returns its first seq.
    fn produce(&mut self, plan: &Plan) -> Option<u64> {
        let (Some(due), Some(every)) = (self.batch_due, plan.batch_every) else { return None };
        if Instant::now() < due {
            return None;
        }
        let first = self.next_seq;
        self.next_seq += BATCH;
        self.pending.push_back(Pending { first, due, phase: plan.phase });
        self.batch_due = Some(due + every);
        Some(first)
    }

    /// When something is next due (a batch or, when connected, a heartbeat).
    fn next_wake(&self, plan: &Plan) -> Option<Instant> {
        let batch = self.batch_due.filter(|_| plan.batch_every.is_some());
        match (batch, plan.phase) {
            (_, Phase::Connect | Phase::Drain | Phase::Done) => batch,
            (Some(b), _) => Some(b.min(self.heartbeat_due)),
            (None, _) => Some(self.heartbeat_due),
        }
    }

    fn heartbeat(&self) -> Heartbeat {
        let mut sensor = SensorHealth { state: SensorState::Ok, last_reading_age_s: Some(1), ..Default::default() };
        sensor.last_values.insert("level".into(), 120.0);
        Heartbeat {
            version: "0.0.0-province".into(),
            uptime_s: self.started.elapsed().as_secs(),
            link: Some(LinkHealth {
                connected: true,
                connects: self.connects,
                watermark: Some(self.acked),
                last_error: None,
            }),
            buffer_depth: Some(self.pending.len() as u64 * BATCH),
            sensors: BTreeMap::from([("sungai".to_owned(), sensor)]),
            ..Default::default()
        }
    }

    /// The fleet acknowledged up to `watermark`: drop what it covers and time it.
    fn on_ack(&mut self, watermark: u64, phase: Phase, stats: &Stats) {
        if watermark <= self.acked {
            return;
        }
        self.acked = watermark;
        let at = Instant::now();
        while let Some(front) = self.pending.front() {
            if front.first + BATCH - 1 > watermark {
                break;
            }
            let us = u64::try_from(at.duration_since(front.due).as_micros()).unwrap_or(u64::MAX);
            if let Ok(mut l) = stats.latencies_us[front.phase as usize].lock() {
                l.push(us);
            }
            stats.acked_while[phase as usize].fetch_add(BATCH, Ordering::Relaxed);
            self.pending.pop_front();
        }
    }

    /// One MQTT session, from CONNECT to a lost link or the end of the run.
    async fn session(
        &mut self,
        tls: &Arc<rustls::ClientConfig>,
        broker: u16,
        plan: &mut watch::Receiver<Plan>,
        stats: &Stats,
        ever_connected: &mut bool,
    ) -> SessionEnd {
        let status_topic = self.topic(Channel::Status);
        let readings_topic = self.topic(Channel::Readings);
        let ack_topic = self.topic(Channel::Ack);
        let offline = Status { online: false, version: None, boot_id: None }.to_json().unwrap_or_default();
        let mut o = MqttOptions::new(self.id.as_str(), "127.0.0.1", broker);
        o.set_keep_alive(Duration::from_secs(60));
        o.set_clean_session(true);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_inflight(16);
        o.set_last_will(LastWill::new(&status_topic, offline, QoS::AtLeastOnce, true));
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        let (client, mut eventloop) = AsyncClient::new(o, 256);
        // The agent's `[uplink] connect_timeout` default (rumqttc's own is 5 s).
        let mut network = eventloop.network_options();
        network.set_connection_timeout(CONNECT_TIMEOUT.as_secs());
        eventloop.set_network_options(network);
        // rumqttc's poll must not be cancelled half-way (a TLS handshake would be cut off and
        // started again): it runs in a task of its own, as in the agent, until its first error.
        let (mut events, _poller) = poll_in_task(eventloop);
        let mut connected_at: Option<Instant> = None;
        // First seqs of the batches to hand to the client, in order.
        let mut unsent: VecDeque<u64> = VecDeque::new();
        loop {
            let p = *plan.borrow();
            if p.phase == Phase::Done {
                return SessionEnd::Finished;
            }
            if let Some(first) = self.produce(&p)
                && connected_at.is_some()
            {
                unsent.push_back(first);
            }
            while let Some(&first) = unsent.front() {
                let payload = batch(first, 1_790_000_000_000).encode();
                let bytes = publish_wire_bytes(&readings_topic, payload.len());
                if client.try_publish(&readings_topic, QoS::AtLeastOnce, false, payload).is_err() {
                    break;
                }
                stats.wire_bytes.fetch_add(bytes, Ordering::Relaxed);
                unsent.pop_front();
            }
            if let Some(at) = connected_at {
                if p.phase != Phase::Connect && p.phase != Phase::Drain && Instant::now() >= self.heartbeat_due {
                    if let Ok(json) = self.heartbeat().to_json() {
                        let _ = client.try_publish(self.topic(Channel::Heartbeat), QoS::AtLeastOnce, false, json);
                    }
                    // Missed while away: the next one an interval from now, not a burst.
                    let (next, now) = (self.heartbeat_due + p.heartbeat_every, Instant::now());
                    self.heartbeat_due = if next < now { now + p.heartbeat_every } else { next };
                }
                if p.phase == Phase::Storm
                    && !self.settled
                    && at > p.since
                    && self.pending.front().is_none_or(|b| b.due > p.since)
                {
                    self.settled = true;
                    stats.settled.fetch_add(1, Ordering::Relaxed);
                }
                if p.phase == Phase::Drain && self.pending.is_empty() {
                    let _ = client.try_disconnect();
                    stats.connected.fetch_sub(1, Ordering::Relaxed);
                    return SessionEnd::Finished;
                }
            }
            let wake = self.next_wake(&p).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let event = tokio::select! {
                e = events.recv() => e.unwrap_or(Err(rumqttc::ConnectionError::RequestsDone)),
                () = tokio::time::sleep_until(wake.into()) => continue,
                r = plan.changed() => {
                    if r.is_err() { return SessionEnd::Finished }
                    self.replan(&plan.borrow());
                    continue;
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected_at = Some(Instant::now());
                    self.connects += 1;
                    stats.connects.fetch_add(1, Ordering::Relaxed);
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                    if !*ever_connected {
                        *ever_connected = true;
                        stats.ready.fetch_add(1, Ordering::Relaxed);
                    }
                    for channel in [Channel::Ack, Channel::ConfigDesired, Channel::Update] {
                        let _ = client.try_subscribe(self.topic(channel), QoS::AtLeastOnce);
                    }
                    let online = Status { online: true, version: Some("0.0.0-province".into()), boot_id: None };
                    if let Ok(json) = online.to_json() {
                        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, json);
                    }
                    // The backlog from the watermark on, as the agent re-sends it.
                    unsent = self.pending.iter().map(|b| b.first).collect();
                    if self.connects > 1 {
                        stats.resent_batches.fetch_add(unsent.len() as u64, Ordering::Relaxed);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(m))) if m.topic == ack_topic => {
                    if let Ok(ack) = Ack::from_json(&m.payload) {
                        self.on_ack(ack.watermark, p.phase, stats);
                        unsent.retain(|first| first + BATCH - 1 > ack.watermark);
                    }
                }
                Ok(_) => {}
                Err(_) => return SessionEnd::Lost { connected: connected_at.is_some() },
            }
        }
    }
}
