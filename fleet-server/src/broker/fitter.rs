//! Per-client session limits: the fleet's own clients get wider windows than devices.
//!
//! rmqtt takes a session's in-flight window and queue length from its listener, the same
//! for every client. For a device that is right: 32 unacknowledged messages is plenty for
//! one box. For the fleet's ingest client it is the throughput limit: ingest acknowledges a
//! batch only after the commit that stored it, so the broker's window to ingest is how many
//! batches one commit can gather. With 32, a commit holds at most 32 batches whatever the
//! load (docs/design/fleet-ingest.md, "Throughput"). A fleet identity's session therefore
//! gets `fleet_max_inflight` and `fleet_max_queued_messages` instead.
//!
//! The identity is decided the same way as in [`super::acl`] (username, else client id),
//! and the fitter is created after authentication, so only a client the ACL admitted as a
//! fleet identity gets the wider window.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use rmqtt::codec::types::Publish;
use rmqtt::context::ServerContext;
use rmqtt::fitter::{DefaultFitter, Fitter, FitterManager};
use rmqtt::types::{ConnectInfo, Disconnect, FitterType, Id, ListenerConfig};

use super::AclConfig;

/// The limits a fleet identity's session gets.
#[derive(Clone, Debug)]
pub(super) struct FleetLimits {
    pub acl: AclConfig,
    pub max_inflight: NonZeroU16,
    pub max_queued_messages: usize,
}

/// Installs the fitter manager on the broker.
pub(super) async fn register(scx: &ServerContext, limits: FleetLimits) {
    *scx.extends.fitter_mgr_mut().await = Box::new(Manager { limits: Arc::new(limits) });
}

struct Manager {
    limits: Arc<FleetLimits>,
}

impl FitterManager for Manager {
    fn create(&self, conn_info: Arc<ConnectInfo>, id: Id, cfg: ListenerConfig) -> FitterType {
        let identity = conn_info.username().map(|u| &**u).filter(|u| !u.is_empty()).unwrap_or(conn_info.client_id());
        let fleet = self.limits.acl.is_fleet(identity);
        let inner = DefaultFitter::new(conn_info, id, cfg);
        if fleet { Arc::new(FleetFitter { inner, limits: Arc::clone(&self.limits) }) } else { Arc::new(inner) }
    }
}

/// The default fitter with the fleet's window and queue.
struct FleetFitter {
    inner: DefaultFitter,
    limits: Arc<FleetLimits>,
}

#[async_trait::async_trait]
impl Fitter for FleetFitter {
    fn keep_alive(&self, keep_alive: &mut u16) -> rmqtt::Result<u16> {
        self.inner.keep_alive(keep_alive)
    }
    fn max_mqueue_len(&self) -> usize {
        self.limits.max_queued_messages
    }
    fn mqueue_rate_limit(&self) -> (NonZeroU32, Duration) {
        self.inner.mqueue_rate_limit()
    }
    fn max_inflight(&self) -> NonZeroU16 {
        self.limits.max_inflight
    }
    fn session_expiry_interval(&self, d: Option<&Disconnect>) -> Duration {
        self.inner.session_expiry_interval(d)
    }
    fn message_expiry_interval(&self, publish: &Publish) -> Duration {
        self.inner.message_expiry_interval(publish)
    }
    fn max_client_topic_aliases(&self) -> u16 {
        self.inner.max_client_topic_aliases()
    }
    fn max_server_topic_aliases(&self) -> u16 {
        self.inner.max_server_topic_aliases()
    }
}
