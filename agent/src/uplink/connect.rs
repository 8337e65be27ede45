//! The one place a connection to the broker is set up: MQTT options, last will, mutual
//! TLS with the box's identity, and the task that drives rumqttc's event loop.

use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use simpul_protocol::control::Status;
use simpul_protocol::{BootId, Channel, ControlMessage, DeviceId, Topic};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::UplinkError;
use crate::config::UplinkConfig;
use crate::trust::Identity;

/// rumqttc's in-flight window beyond `max_inflight`: room for the status and event
/// messages, which do not wait for a batch slot.
const CONTROL_HEADROOM: u16 = 4;

/// The largest packet the agent sends: any batch the decoder accepts, plus headers.
const MAX_OUTGOING_PACKET: usize = simpul_protocol::batch::MAX_BODY_BYTES + 64 * 1024;

/// The largest packet the agent takes (acks are tiny; this bounds a hostile broker).
const MAX_INCOMING_PACKET: usize = 64 * 1024;

/// Events between the event-loop task and the session.
const EVENT_QUEUE: usize = 64;

/// The agent's status message, for the connect and for the last will.
pub(super) fn status(online: bool, boot_id: BootId) -> Status {
    Status { online, version: Some(crate::version::current()), boot_id: Some(boot_id) }
}

/// MQTT options for `device`: client id = device id, clean session (the fleet's ack is the
/// truth, not broker session state), keepalive, a retained offline status as last will;
/// with `[uplink] tls`, mutual TLS with the identity in `identity_dir` (read at each
/// connect, so a renewed certificate is used from the next connection on).
pub(super) fn mqtt_options(
    config: &UplinkConfig,
    device: &DeviceId,
    boot_id: BootId,
    identity_dir: &Path,
) -> Result<MqttOptions, UplinkError> {
    let (host, port) = config.broker_host_port().ok_or_else(|| UplinkError::BadBroker(config.broker.clone()))?;
    let mut o = MqttOptions::new(device.as_str(), host, port);
    // rumqttc refuses (panics on) sub-second keepalives; validation asks for whole seconds.
    o.set_keep_alive(Duration::from_secs(config.keepalive.as_secs().clamp(1, u64::from(u16::MAX))));
    o.set_clean_session(true);
    o.set_inflight(config.max_inflight.saturating_add(CONTROL_HEADROOM));
    o.set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    o.set_request_channel_capacity(usize::from(config.max_inflight) + 16);
    let will = status(false, boot_id).to_json()?;
    o.set_last_will(LastWill::new(Topic::new(device.clone(), Channel::Status).name(), will, QoS::AtLeastOnce, true));
    if config.tls {
        if !Identity::exists(identity_dir) {
            return Err(UplinkError::NotEnrolled(identity_dir.display().to_string()));
        }
        let tls = Identity::load(identity_dir)?.client_config()?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(o)
}

/// One connection attempt: the client to publish with and the events of its event loop.
/// Dropping it drops the socket without a DISCONNECT (so the broker sends the last will).
#[derive(Debug)]
pub(super) struct Link {
    pub client: AsyncClient,
    events: mpsc::Receiver<Result<Event, ConnectionError>>,
    _poller: AbortOnDropHandle<()>,
}

impl Link {
    /// Starts connecting. The event loop runs in its own task (rumqttc's `poll` must not
    /// be cancelled mid-way) and stops at its first error: the uplink, not rumqttc,
    /// decides when to reconnect.
    pub fn open(options: MqttOptions, connect_timeout: Duration) -> Link {
        let capacity = options.request_channel_capacity();
        let (client, mut eventloop) = AsyncClient::new(options, capacity);
        let mut network = eventloop.network_options();
        network.set_connection_timeout(connect_timeout.as_secs().max(1));
        eventloop.set_network_options(network);
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let poller = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let failed = event.is_err();
                if tx.send(event).await.is_err() || failed {
                    break;
                }
            }
        });
        Link { client, events, _poller: AbortOnDropHandle::new(poller) }
    }

    /// The next event of the connection; an error ends the connection.
    pub async fn next(&mut self) -> Result<Event, UplinkError> {
        match self.events.recv().await {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(e.into()),
            None => Err(UplinkError::Closed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A broker that takes the connection and never answers (a fleet still busy with
    /// thousands of handshakes) is waited for `connect_timeout`, not rumqttc's 5 s.
    #[tokio::test(start_paused = true)]
    async fn a_broker_that_never_answers_is_given_up_after_connect_timeout_not_before() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
        let started = tokio::time::Instant::now();
        let mut link = Link::open(MqttOptions::new("kel-a", "127.0.0.1", port), Duration::from_secs(30));
        let e = link.next().await.unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(&e, UplinkError::Connection(c) if matches!(**c, ConnectionError::NetworkTimeout)), "{e:?}");
        assert!(waited >= Duration::from_secs(30) && waited < Duration::from_secs(31), "gave up after {waited:?}");
        drop(held);
    }
}
