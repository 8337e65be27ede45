//! The rollout engine's task: on every `[rollouts] tick`, one step of each running or
//! paused rollout, and the update orders it gave published. With several fleet processes
//! only the leader steps (`store::leader`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::RolloutStore;
use crate::config_publisher::ConfigPublisher;
use crate::store::StoreError;
use crate::store::leader::{self, Leadership};

/// What the engine needs.
#[derive(Clone, Debug)]
pub struct Engine {
    pub store: Arc<dyn RolloutStore>,
    pub desired: ConfigPublisher,
    /// `[rollouts] tick`.
    pub tick: Duration,
    /// `[health] offline_after`.
    pub offline_after: Duration,
    /// Steps only while this process leads.
    pub leader: Arc<dyn Leadership>,
}

impl Engine {
    /// Steps every active rollout once; the number of devices ordered.
    pub async fn step_all(&self) -> Result<usize, StoreError> {
        let (store, offline_after) = (Arc::clone(&self.store), self.offline_after);
        let ordered = tokio::task::spawn_blocking(move || {
            let mut ordered = Vec::new();
            for id in store.active()? {
                ordered.extend(store.advance(id, crate::ingest::now_ms(), offline_after)?);
            }
            Ok::<_, StoreError>(ordered)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        let n = ordered.len();
        if n > 0 {
            tracing::info!(devices = n, "rollout: a wave opened; update orders published");
            self.desired.changed(ordered);
        }
        Ok(n)
    }

    /// Steps on every tick until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !leader::leads(&self.leader).await {
                continue;
            }
            if let Err(e) = self.step_all().await {
                tracing::warn!(error = %e, "rollout engine: cannot step the rollouts; trying again next tick");
            }
        }
    }
}
