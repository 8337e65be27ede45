//! One connection to the broker: connect, learn the watermark, send, delete on acks.

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::{Event, Outgoing, Packet, QoS};
use simpul_protocol::control::{Ack, Event as ControlEvent};
use simpul_protocol::{Channel, ControlMessage, Topic};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::connect::{Link, mqtt_options, status};
use super::cursors::Cursors;
use super::{Message, Uplink, UplinkError};
use crate::sensor::retry::Backoff;

/// How long a clean shutdown waits for the offline status's PUBACK and the disconnect.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// What was published and awaits its PUBACK. MQTT 3.1.1 (4.6) makes the broker PUBACK
/// QoS 1 messages in the order it received them, so PUBACKs pop this queue from the
/// front, whatever their packet ids.
#[derive(Debug)]
enum Sent {
    /// A reading batch; `covered` is the highest seq it holds.
    Batch {
        covered: u64,
    },
    Status,
    Event(ControlEvent),
    Message(Message),
}

/// The state of one connection.
struct Session {
    link: Link,
    in_flight: VecDeque<Sent>,
    /// Batches the broker PUBACKed and the fleet has not acknowledged yet: the highest seq
    /// of each and when its PUBACK came, oldest first.
    taken: VecDeque<(u64, Instant)>,
}

impl Session {
    fn batches_in_flight(&self) -> usize {
        self.in_flight.iter().filter(|s| matches!(s, Sent::Batch { .. })).count()
    }
}

impl Uplink {
    fn topic(&self, channel: Channel) -> String {
        Topic::new(self.device.clone(), channel).name()
    }

    /// One session: returns `Ok` only after a clean shutdown; any error ends it.
    pub(super) async fn session(
        &mut self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), UplinkError> {
        let options = mqtt_options(&self.config, &self.device, self.boot_id, &self.identity_dir)?;
        let mut s = Session {
            link: Link::open(options, self.config.connect_timeout),
            in_flight: VecDeque::new(),
            taken: VecDeque::new(),
        };
        let result = self.drive(&mut s, shutdown, backoff).await;
        self.stats.set_connected(false);
        // Events the broker never confirmed go out again next time, in order.
        for sent in s.in_flight.drain(..).rev() {
            match sent {
                Sent::Event(e) => self.pending_events.push_front(e),
                Sent::Message(m) => self.pending_messages.push_front(m),
                Sent::Batch { .. } | Sent::Status => {}
            }
        }
        result
    }

    async fn drive(
        &mut self,
        s: &mut Session,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), UplinkError> {
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                event = s.link.next() => event?,
                Ok(()) = self.config_rx.changed() => return Ok(()),
            };
            if let Event::Incoming(Packet::ConnAck(_)) = event {
                break;
            }
        }
        backoff.reset();
        self.stats.set_connected(true);
        tracing::info!(broker = %self.config.broker, "uplink connected");
        s.link.client.subscribe(self.topic(Channel::Ack), QoS::AtLeastOnce).await?;
        s.link.client.subscribe(self.topic(Channel::ConfigDesired), QoS::AtLeastOnce).await?;
        s.link.client.subscribe(self.topic(Channel::Update), QoS::AtLeastOnce).await?;
        self.publish_status(s, true).await?;

        let newest = self.store.newest_seq().await?;
        self.known_top = self.known_top.max(newest);
        let mut cursors = Cursors::new(self.watermark.unwrap_or(0), newest);
        tracing::debug!(?self.watermark, newest, "uplink cursors");
        while let Some(e) = self.pending_events.pop_front() {
            self.publish_event(s, e).await?;
        }
        while let Some(m) = self.pending_messages.pop_front() {
            self.publish_message(s, m).await?;
        }
        let mut tick = tokio::time::interval(self.config.batch_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.pump(s, &mut cursors).await?;
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return self.goodbye(s, &mut cursors).await,
                event = s.link.next() => self.on_event(event?, s, &mut cursors).await?,
                Some(e) = self.clock_events.recv() => self.publish_event(s, e).await?,
                Some(m) = self.messages.recv() => self.publish_message(s, m).await?,
                Ok(()) = self.config_rx.changed() => {
                    tracing::info!("uplink config changed; disconnecting to reconnect with it");
                    return self.goodbye(s, &mut cursors).await;
                }
                Some(n) = self.notices.recv() => {
                    s.link.client.publish(self.topic(n.channel), QoS::AtMostOnce, false, n.payload).await?;
                    self.stats.notice_sent();
                }
                _ = tick.tick() => {
                    cursors.tick();
                    self.check_ack_timeout(s, &mut cursors);
                }
            }
        }
    }

    /// Publishes batches while the cursors want them and slots are free.
    async fn pump(&mut self, s: &mut Session, cursors: &mut Cursors) -> Result<(), UplinkError> {
        let max = usize::from(self.config.max_inflight);
        while let Some(read) = cursors.next(s.batches_in_flight(), max) {
            let fetched = self.store.fetch(read, self.config.batch_max).await?;
            cursors.advance(read, fetched.covered, fetched.full);
            let (Some(first), Some(covered)) = (fetched.first, fetched.covered) else { continue };
            self.known_top = self.known_top.max(covered);
            let resend = self.highest_sent.is_some_and(|h| first <= h);
            self.highest_sent = Some(self.highest_sent.map_or(covered, |h| h.max(covered)));
            s.link.client.publish(self.topic(Channel::Readings), QoS::AtLeastOnce, false, fetched.payload).await?;
            s.in_flight.push_back(Sent::Batch { covered });
            self.stats.batch_sent(fetched.readings, resend);
            tracing::trace!(?read, first, covered, resend, "batch published");
        }
        Ok(())
    }

    async fn on_event(&mut self, event: Event, s: &mut Session, cursors: &mut Cursors) -> Result<(), UplinkError> {
        match event {
            Event::Incoming(Packet::Publish(p)) if p.topic == self.topic(Channel::Ack) => {
                self.on_ack(&p.payload, cursors).await?;
                if let Some(w) = self.watermark {
                    s.taken.retain(|&(covered, _)| covered > w);
                }
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == self.topic(Channel::ConfigDesired) => {
                self.desired.send_replace(Some(p.payload.to_vec()));
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == self.topic(Channel::Update) => {
                self.update.send_replace(Some(p.payload.to_vec()));
            }
            Event::Incoming(Packet::Publish(p)) => {
                tracing::debug!(topic = %p.topic, "ignoring a message on a topic the uplink does not use");
            }
            Event::Incoming(Packet::PubAck(_)) => {
                let confirmed = s.in_flight.pop_front();
                if let Some(Sent::Batch { covered }) = confirmed
                    && self.watermark.is_none_or(|w| covered > w)
                {
                    s.taken.push_back((covered, Instant::now()));
                }
                self.stats.puback(matches!(confirmed, Some(Sent::Event(_))));
            }
            _ => {}
        }
        Ok(())
    }

    /// A batch the broker took is still unacknowledged `ack_timeout` after its PUBACK: the
    /// fleet process that took it may be gone (a shared-subscription member killed, its
    /// messages stranded at the broker). Everything above the watermark goes out again in
    /// this session; the fleet stores a seq once however often it arrives.
    fn check_ack_timeout(&mut self, s: &mut Session, cursors: &mut Cursors) {
        let Some(&(covered, since)) = s.taken.front() else { return };
        if since.elapsed() < self.config.ack_timeout {
            return;
        }
        let watermark = self.watermark.unwrap_or(0);
        tracing::warn!(
            covered,
            watermark,
            timeout = ?self.config.ack_timeout,
            "the fleet did not acknowledge a batch the broker took; sending everything above the watermark again"
        );
        s.taken.clear();
        cursors.rewind(watermark);
        self.stats.ack_timed_out();
    }

    /// The fleet's watermark: delete through it, never above; move the cursors up.
    async fn on_ack(&mut self, payload: &[u8], cursors: &mut Cursors) -> Result<(), UplinkError> {
        let watermark = match Ack::from_json(payload) {
            Ok(ack) => ack.watermark,
            Err(e) => {
                tracing::warn!(error = %e, "an ack that does not decode; ignored");
                self.stats.bad_message(e);
                return Ok(());
            }
        };
        if watermark > self.known_top {
            let e = format!("ack watermark {watermark} is above seq {}, the highest this buffer gave", self.known_top);
            tracing::warn!("{e}; ignored");
            self.stats.bad_message(e);
            return Ok(());
        }
        cursors.acknowledged(watermark);
        if self.watermark.is_some_and(|w| watermark <= w) {
            return Ok(());
        }
        let deleted = self.store.delete_through(watermark).await?;
        self.watermark = Some(watermark);
        self.stats.acknowledged(watermark, deleted);
        tracing::debug!(watermark, deleted, "fleet acknowledged");
        Ok(())
    }

    async fn publish_status(&mut self, s: &mut Session, online: bool) -> Result<(), UplinkError> {
        let json = status(online, self.boot_id).to_json()?;
        s.link.client.publish(self.topic(Channel::Status), QoS::AtLeastOnce, true, json).await?;
        s.in_flight.push_back(Sent::Status);
        Ok(())
    }

    async fn publish_event(&mut self, s: &mut Session, event: ControlEvent) -> Result<(), UplinkError> {
        let json = event.to_json()?;
        s.link.client.publish(self.topic(Channel::Events), QoS::AtLeastOnce, false, json).await?;
        s.in_flight.push_back(Sent::Event(event));
        Ok(())
    }

    async fn publish_message(&mut self, s: &mut Session, m: Message) -> Result<(), UplinkError> {
        s.link.client.publish(self.topic(m.channel), QoS::AtLeastOnce, m.retain, m.payload.clone()).await?;
        s.in_flight.push_back(Sent::Message(m));
        Ok(())
    }

    /// A clean stop: retained `online: false`, its PUBACK (briefly), then DISCONNECT so the
    /// broker does not also send the last will.
    async fn goodbye(&mut self, s: &mut Session, cursors: &mut Cursors) -> Result<(), UplinkError> {
        self.publish_status(s, false).await?;
        let confirm = async {
            while !s.in_flight.is_empty() {
                let event = s.link.next().await?;
                self.on_event(event, s, cursors).await?;
            }
            s.link.client.disconnect().await?;
            loop {
                if let Event::Outgoing(Outgoing::Disconnect) = s.link.next().await? {
                    return Ok::<(), UplinkError>(());
                }
            }
        };
        match tokio::time::timeout(GOODBYE_TIMEOUT, confirm).await {
            Ok(Ok(())) => tracing::info!("uplink disconnected"),
            Ok(Err(e)) => tracing::warn!(error = %e, "uplink stopped before a clean disconnect"),
            Err(_) => tracing::warn!(timeout = ?GOODBYE_TIMEOUT, "uplink stopped before a clean disconnect"),
        }
        Ok(())
    }
}
