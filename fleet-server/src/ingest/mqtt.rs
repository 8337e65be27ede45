//! The MQTT side of ingest: options, subscriptions, and the event loop task.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS, TlsConfiguration, Transport,
};
use simpul_protocol::{Channel, Topic};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::IngestError;
use crate::config::MqttConfig;

/// The largest packet accepted: a full batch (16 MiB body) plus headroom.
const MAX_PACKET: usize = 17 << 20;

/// `host:port` -> (host, port).
pub fn parse_broker(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The topic filters ingest subscribes to: readings, events, status, heartbeats and config reports of every device,
/// as a shared subscription when a group is configured.
pub fn filters(config: &MqttConfig) -> Vec<String> {
    [Channel::Readings, Channel::Events, Channel::Status, Channel::Heartbeat, Channel::ConfigReported]
        .into_iter()
        .map(|c| {
            let f = Topic::all_devices(c);
            if config.shared_group.is_empty() { f } else { format!("$share/{}/{f}", config.shared_group) }
        })
        .collect()
}

/// The options every MQTT client of the fleet shares: the broker, the fleet's identity as
/// the username, keep-alive, packet size, and TLS when `tls` is given (`[mqtt] tls`).
pub fn options(
    config: &MqttConfig,
    client_id: String,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<MqttOptions, IngestError> {
    let broker = config.broker.as_deref().ok_or(IngestError::NoBroker)?;
    let (host, port) = parse_broker(broker).ok_or_else(|| IngestError::BadBroker(broker.to_owned()))?;
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(config.keep_alive)
        .set_credentials(config.identity.clone(), "")
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(tls) = tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::clone(tls))));
    }
    Ok(opts)
}

/// A client with manual acks, its session persistent unless `clean_session`.
pub fn connect(
    config: &MqttConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(AsyncClient, EventLoop), IngestError> {
    let mut opts = options(config, config.client_id.clone(), tls)?;
    opts.set_clean_session(config.clean_session)
        .set_manual_acks(true)
        // Acks to devices are QoS 1 publishes; one commit may ack thousands of devices.
        .set_inflight(4096);
    Ok(AsyncClient::new(opts, 4096))
}

/// The event loop task's parts.
pub struct Poll {
    pub client: AsyncClient,
    pub filters: Vec<String>,
    /// Where publishes go (the committer).
    pub tx: mpsc::Sender<Publish>,
    pub shutdown: CancellationToken,
    /// Cancelled when the broker acknowledged the first subscriptions.
    pub ready: CancellationToken,
    /// Cancelled when the task ends.
    pub done: CancellationToken,
}

impl Poll {
    /// Polls the event loop: (re)subscribes on every connection and forwards publishes to
    /// the committer. Reconnects with a capped backoff. After `shutdown` it keeps polling
    /// until the committer's disconnect went out (so the last acks are sent).
    pub async fn run(self, mut eventloop: EventLoop) {
        let _done = self.done.clone().drop_guard();
        let mut delay = Duration::from_millis(100);
        let mut subacks = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(session_present = ack.session_present, "connected to the broker");
                    delay = Duration::from_millis(100);
                    for f in &self.filters {
                        if let Err(e) = self.client.subscribe(f.clone(), QoS::AtLeastOnce).await {
                            tracing::error!(filter = %f, error = %e, "cannot subscribe");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subacks += 1;
                    if subacks == self.filters.len() {
                        tracing::info!(filters = ?self.filters, "subscribed");
                        self.ready.cancel();
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if self.shutdown.is_cancelled() {
                        continue; // not acked: the broker redelivers it next session
                    }
                    if self.tx.send(p).await.is_err() {
                        tracing::debug!("committer gone");
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, "broker connection lost");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
