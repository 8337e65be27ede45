//! The uplink: every reading in the buffer reaches the fleet, and leaves the buffer only
//! when the fleet's watermark covers it.
//!
//! The contract with the fleet (docs/design/uplink.md has the why):
//! - Connect with client id = device id, clean session, a retained QoS 1 last will
//!   `Status { online: false }` on `simpul/v1/dev/{d}/status`; on connect publish
//!   `Status { online: true, version, boot_id }` retained.
//! - Subscribe (QoS 1) to `simpul/v1/dev/{d}/ack`. The fleet keeps `Ack { watermark }`
//!   there retained, so every (re)connect learns the watermark at once. On an ack the
//!   uplink calls [`Buffer::delete_through`]`(watermark)`: nothing above it is ever deleted.
//! - Publish [`simpul_protocol::ReadingBatch`]es QoS 1 on `simpul/v1/dev/{d}/readings`:
//!   at most `batch_max` readings, live batches at most one per `batch_interval`, dropped
//!   ranges riding along. After every connect, everything above the watermark is sent
//!   again (the fleet dedupes on (device, seq)): a PUBACK only frees an in-flight slot.
//! - At most `max_inflight` batches are not yet PUBACKed; the backlog never blocks live
//!   data ([`cursors`]).
//! - Reconnects back off with jitter from `reconnect_min` to `reconnect_max`.
//! - When the clock syncs, one `Event::ClockSynced` goes to `simpul/v1/dev/{d}/events`
//!   ([`clock_sync`]).
//! - A [`Notice`] (the heartbeat) sent to [`UplinkHandle::notices`] is published QoS 0,
//!   not retained, if connected; nothing keeps it for a later session.
//! - Subscribe (QoS 1) to `simpul/v1/dev/{d}/config/desired`; each payload there (the
//!   fleet's retained `DesiredConfig`) is handed on, undecoded, through
//!   [`UplinkHandle::desired`] (the remote config decodes and answers it).
//! - A [`Message`] sent to [`UplinkHandle::messages`] is published QoS 1 (retained if it
//!   says so) when connected, and kept until its PUBACK like an event.
//! - A new [`UplinkConfig`] sent on [`UplinkHandle::config`] ends the session cleanly and
//!   the next one uses it (no backoff wait); a backoff wait is cut short by it too.

pub mod clock_sync;
mod connect;
pub mod cursors;
mod error;
mod message;
mod session;
mod stats;
mod store;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use simpul_protocol::control::Event;
use simpul_protocol::{BootId, Channel, DeviceId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::UplinkError;
pub use message::Message;
pub use stats::{UplinkSnapshot, UplinkStats};

use crate::buffer::Buffer;
use crate::clock::Clock;
use crate::config::{RetryConfig, UplinkConfig};
use crate::sensor::retry::Backoff;
use store::Store;

/// A running uplink.
#[derive(Debug)]
pub struct UplinkHandle {
    /// Its counters, for health reporting and tests.
    pub stats: Arc<UplinkStats>,
    /// Messages to publish at QoS 0 while connected (the heartbeat).
    pub notices: mpsc::Sender<Notice>,
    /// QoS 1 messages to publish, kept until PUBACKed (the reported config, its events).
    pub messages: mpsc::Sender<Message>,
    /// The last payload received on `config/desired` (retained there, so every connect
    /// sends it again); `None` until one came.
    pub desired: watch::Receiver<Option<Vec<u8>>>,
    /// The last payload received on `update` (retained: the release to run); `None` until
    /// one came.
    pub update: watch::Receiver<Option<Vec<u8>>>,
    /// The uplink's config: a new value reconnects with it.
    pub config: watch::Sender<UplinkConfig>,
    task: JoinHandle<()>,
}

/// A control message published QoS 0, not retained, on the device's `channel`: the
/// heartbeat. Best effort: the sender drops it when the queue is full.
#[derive(Debug)]
pub struct Notice {
    pub channel: Channel,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// Notices waiting for the uplink; a heartbeat a minute needs few.
const NOTICE_QUEUE: usize = 4;

/// QoS 1 messages waiting for a connection; config reports are rare.
const MESSAGE_QUEUE: usize = 16;

impl UplinkHandle {
    /// Waits until the uplink has stopped (after its shutdown token was cancelled).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the uplink task failed");
        }
    }

    /// Stops the uplink at once, as a crash would: the socket closes without a
    /// DISCONNECT, so the broker publishes the last will.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the uplink for `device` on `buffer` (the uplink's own connection to the buffer
/// file; the writer keeps its own). It runs until `shutdown` is cancelled, then
/// publishes `online: false` and disconnects cleanly. With `[uplink] tls` it connects
/// with the identity in `identity_dir` (`[trust] dir`).
pub fn spawn(
    config: UplinkConfig,
    identity_dir: PathBuf,
    device: DeviceId,
    buffer: Buffer,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> UplinkHandle {
    let stats = Arc::new(UplinkStats::new());
    let boot_id = clock.now().boot_id;
    let clock_events = clock_sync::spawn(clock, config.batch_interval, shutdown.clone());
    let (notices, notice_rx) = mpsc::channel(NOTICE_QUEUE);
    let (messages, message_rx) = mpsc::channel(MESSAGE_QUEUE);
    let (desired_tx, desired) = watch::channel(None);
    let (update_tx, update) = watch::channel(None);
    let (config_tx, config_rx) = watch::channel(config.clone());
    let uplink = Uplink {
        config,
        config_rx,
        desired: desired_tx,
        update: update_tx,
        messages: message_rx,
        pending_messages: VecDeque::new(),
        device,
        identity_dir,
        boot_id,
        store: Store::new(buffer),
        stats: Arc::clone(&stats),
        watermark: None,
        highest_sent: None,
        known_top: 0,
        pending_events: VecDeque::new(),
        clock_events,
        notices: notice_rx,
    };
    let task = tokio::spawn(uplink.run(shutdown));
    UplinkHandle { stats, notices, messages, desired, update, config: config_tx, task }
}

/// The uplink's state across sessions.
struct Uplink {
    config: UplinkConfig,
    /// Where a new config comes from (read before each session).
    config_rx: watch::Receiver<UplinkConfig>,
    /// Where desired-config payloads go.
    desired: watch::Sender<Option<Vec<u8>>>,
    /// Where update orders go.
    update: watch::Sender<Option<Vec<u8>>>,
    messages: mpsc::Receiver<Message>,
    /// QoS 1 messages to publish first on the next connection (not PUBACKed on the last).
    pending_messages: VecDeque<Message>,
    device: DeviceId,
    /// `[trust] dir`: the identity for mutual TLS.
    identity_dir: PathBuf,
    boot_id: BootId,
    store: Store,
    stats: Arc<UplinkStats>,
    /// The last watermark the fleet acknowledged (and the buffer deleted through).
    watermark: Option<u64>,
    /// The highest seq published so far in this process (to count resends).
    highest_sent: Option<u64>,
    /// The highest seq the buffer is known to have given: a watermark above it is bogus.
    known_top: u64,
    /// Events to publish, kept until their PUBACK (or a later session sends them again).
    pending_events: VecDeque<Event>,
    clock_events: mpsc::UnboundedReceiver<Event>,
    notices: mpsc::Receiver<Notice>,
}

impl Uplink {
    /// Sessions, with a backoff between them, until shutdown.
    async fn run(mut self, shutdown: CancellationToken) {
        let retry = |c: &UplinkConfig| RetryConfig { min_delay: c.reconnect_min, max_delay: c.reconnect_max };
        let mut backoff = Backoff::new(&retry(&self.config));
        tracing::info!(broker = %self.config.broker, device = %self.device, "uplink starting");
        while !shutdown.is_cancelled() {
            let latest = self.config_rx.borrow_and_update().clone();
            if latest != self.config {
                self.config = latest;
                backoff = Backoff::new(&retry(&self.config));
                tracing::info!(broker = %self.config.broker, "uplink config changed; connecting with it");
            }
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) if shutdown.is_cancelled() => break,
                Ok(()) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "uplink session ended; reconnecting after a backoff");
                    self.stats.error(&e);
                }
            }
            tokio::select! {
                waited = backoff.wait(&shutdown) => if !waited { break },
                Ok(()) = self.config_rx.changed() => {}
            }
        }
        tracing::info!("uplink stopped");
    }
}
