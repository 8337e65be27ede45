//! Publishes each device's latest desired config, retained, QoS 1, on
//! `simpul/v1/dev/{d}/config/desired` (docs/design/fleet-config-distribution.md), and the
//! release it should run on `simpul/v1/dev/{d}/update` (docs/design/updates.md).
//!
//! - After a change commits, the API names the devices it gave a new version
//!   ([`ConfigPublisher::changed`]); the publisher reads each one's latest version from the
//!   store and publishes it.
//! - On every connection to the broker (so at start, and after a broker restart) it
//!   republishes the latest version of every device: the embedded broker keeps retained
//!   messages in memory only.
//!
//! One task does every read-and-publish, in order, over one MQTT connection, and reads the
//! version at publish time rather than when the change was announced: a republish of all
//! devices racing a change can never leave an older version retained after a newer one.
//! Requests are coalesced (a set of devices and an "all" flag), so memory stays bounded by
//! the number of devices however fast changes come.
//!
//! The publisher has its own small MQTT client (client id `{mqtt.client_id}-config`,
//! username `mqtt.client_id`, the fleet's identity at the embedded broker's ACL), so it
//! never waits behind ingest's acks.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use simpul_protocol::control::{DesiredConfig, UpdateOrder};
use simpul_protocol::{Channel, ControlMessage, DeviceId, Topic};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FleetConfig;
use crate::ingest::IngestError;
use crate::releases::{DeviceRelease, ReleaseStore};
use crate::store::{self, ConfigVersion, Store, StoreError};

/// What waits to be published.
#[derive(Debug, Default)]
struct Queue {
    all: bool,
    devices: BTreeSet<DeviceId>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle to the publisher: tell it which devices have a new desired version.
#[derive(Clone, Debug, Default)]
pub struct ConfigPublisher {
    shared: Arc<Shared>,
}

impl ConfigPublisher {
    /// These devices have a new desired version (already committed): publish their latest.
    pub fn changed(&self, devices: impl IntoIterator<Item = DeviceId>) {
        self.shared.queue().devices.extend(devices);
        self.shared.wake.notify_one();
    }

    /// Publish the latest desired version of every device.
    pub fn republish_all(&self) {
        self.shared.queue().all = true;
        self.shared.wake.notify_one();
    }

    fn take(&self) -> Queue {
        std::mem::take(&mut *self.shared.queue())
    }

    fn put_back(&self, q: Queue) {
        let mut queue = self.shared.queue();
        queue.all |= q.all;
        queue.devices.extend(q.devices);
    }
}

/// Starts the publisher's MQTT client and task on `tracker`.
pub fn spawn(
    config: &FleetConfig,
    store: Arc<dyn Store>,
    releases: Arc<dyn ReleaseStore>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<ConfigPublisher, IngestError> {
    let mut opts = crate::ingest::mqtt::options(&config.mqtt, format!("{}-config", config.mqtt.client_id), tls)?;
    opts.set_clean_session(true);
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    let publisher = ConfigPublisher::default();
    let loop_done = CancellationToken::new();
    tracker.spawn(poll(eventloop, publisher.clone(), shutdown.clone(), loop_done.clone()));
    tracker.spawn(run(client, Stores { store, releases }, publisher.clone(), shutdown, loop_done));
    Ok(publisher)
}

/// Drives the connection; every connection acknowledged asks for a republish of all.
async fn poll(
    mut eventloop: EventLoop,
    publisher: ConfigPublisher,
    shutdown: CancellationToken,
    done: CancellationToken,
) {
    let _done = done.drop_guard();
    let mut delay = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::debug!("config publisher connected; republishing every desired config");
                delay = Duration::from_millis(100);
                publisher.republish_all();
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                if shutdown.is_cancelled() {
                    break;
                }
                tracing::warn!(error = %e, retry_in = ?delay, "config publisher: broker connection lost");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Where the publisher reads what to publish.
struct Stores {
    store: Arc<dyn Store>,
    releases: Arc<dyn ReleaseStore>,
}

/// Takes what is queued, reads the latest versions and publishes them, until shutdown.
async fn run(
    client: AsyncClient,
    stores: Stores,
    publisher: ConfigPublisher,
    shutdown: CancellationToken,
    loop_done: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = publisher.shared.wake.notified() => {}
        }
        let work = publisher.take();
        match latest(&stores, &work).await {
            Ok((versions, releases)) => {
                delay = Duration::from_millis(100);
                for v in &versions {
                    publish(&client, v).await;
                }
                for r in &releases {
                    publish_release(&client, r).await;
                }
                if !versions.is_empty() || !releases.is_empty() {
                    tracing::debug!(configs = versions.len(), releases = releases.len(), "desired state published");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot read desired configs to publish");
                publisher.put_back(work);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => publisher.shared.wake.notify_one(),
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    if let Err(e) = client.disconnect().await {
        tracing::debug!(error = %e, "config publisher disconnect");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), loop_done.cancelled()).await;
}

/// What a device's retained update topic should hold.
#[derive(Debug)]
enum Order {
    /// Run this release.
    Run(DeviceRelease),
    /// Nothing (no release asked, or a rollout withdrew its order): the retained order is
    /// cleared with an empty payload.
    Clear(DeviceId),
}

/// The latest config version and the desired release of each device in `work`.
async fn latest(stores: &Stores, work: &Queue) -> Result<(Vec<ConfigVersion>, Vec<Order>), StoreError> {
    let devices: Option<Vec<DeviceId>> = (!work.all).then(|| work.devices.iter().cloned().collect());
    let d = devices.clone();
    let configs = store::blocking(&stores.store, move |s| match &d {
        None => s.latest_desired(None),
        Some(devices) => {
            let mut out = Vec::with_capacity(devices.len());
            for d in devices {
                out.extend(s.latest_desired(Some(d))?);
            }
            Ok(out)
        }
    })
    .await?;
    let releases = Arc::clone(&stores.releases);
    let releases = tokio::task::spawn_blocking(move || match &devices {
        None => releases.device_releases(None).map(|all| all.into_iter().map(Order::Run).collect()),
        Some(devices) => {
            let mut out = Vec::new();
            for d in devices {
                let found = releases.device_releases(Some(d))?;
                if found.is_empty() {
                    out.push(Order::Clear(d.clone()));
                }
                out.extend(found.into_iter().map(Order::Run));
            }
            Ok(out)
        }
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))??;
    Ok((configs, releases))
}

async fn publish_release(client: &AsyncClient, order: &Order) {
    let r = match order {
        Order::Run(r) => r,
        Order::Clear(device) => {
            let topic = Topic::new(device.clone(), Channel::Update).name();
            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, Vec::<u8>::new()).await {
                tracing::warn!(%device, error = %e, "cannot clear the update order");
            }
            return;
        }
    };
    let topic = Topic::new(r.device.clone(), Channel::Update).name();
    match (UpdateOrder { version: r.version.clone(), rollout: r.rollout }).to_json() {
        Ok(json) => {
            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, json).await {
                tracing::warn!(device = %r.device, error = %e, "cannot publish the update order");
            }
        }
        Err(e) => tracing::error!(device = %r.device, error = %e, "cannot encode the update order"),
    }
}

async fn publish(client: &AsyncClient, v: &ConfigVersion) {
    let topic = Topic::new(v.device.clone(), Channel::ConfigDesired).name();
    match (DesiredConfig { version: v.version, toml: v.toml.clone() }).to_json() {
        Ok(json) => {
            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, json).await {
                tracing::warn!(device = %v.device, error = %e, "cannot publish the desired config");
            }
        }
        Err(e) => tracing::error!(device = %v.device, error = %e, "cannot encode the desired config"),
    }
}
