//! Webhook delivery: POST deliverable readings to the central platform, in cursor order,
//! at least once, never skipping.
//!
//! The task reads up to `batch_size` readings after its persisted cursor and POSTs them
//! as `{"readings": [...], "next": CURSOR}`; every reading carries `idempotency_key`
//! `"{device}:{seq}"`, and the request an `Idempotency-Key` header naming the batch by its
//! cursor range. A 2xx answer advances the persisted cursor past the batch; anything else
//! (an error status, a timeout, a refused connection) is retried with capped exponential
//! backoff and jitter, forever, with the same batch. A crash between the 2xx and the cursor
//! write sends the batch again: a consumer that keeps the keys sees each reading once.
//!
//! With several fleet processes on one database only the leader delivers
//! (`store::leader`). It asks before each batch; a process that loses the lead stops
//! after the batch in hand, and the new leader starts from the persisted cursor.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::json::ReadingJson;
use crate::config::WebhookConfig;
use crate::store::leader::{self, Leadership};
use crate::store::{self, Store, StoreError, StoredReading};

/// The consumer name the webhook's cursor is stored under.
pub const CONSUMER: &str = "webhook";

/// Why a POST did not count as delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("POST failed: {0}")]
    Send(#[source] reqwest::Error),
    #[error("the platform answered {0}")]
    Status(reqwest::StatusCode),
    #[error("cannot encode the batch: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The delivery task; see the module docs.
#[derive(Debug)]
pub struct Webhook {
    url: String,
    config: WebhookConfig,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    leader: Arc<dyn Leadership>,
}

impl Webhook {
    /// A webhook to `url`, configured by `config`, delivering while `leader` says this
    /// process leads.
    pub fn new(
        url: String,
        config: WebhookConfig,
        store: Arc<dyn Store>,
        leader: Arc<dyn Leadership>,
    ) -> Result<Webhook, WebhookError> {
        let client = reqwest::Client::builder().timeout(config.timeout).build().map_err(WebhookError::Client)?;
        Ok(Webhook { url, config, client, store, leader })
    }

    /// Delivers until `shutdown` while this process leads; stands by while another does.
    pub async fn run(self, delivered: Arc<Notify>, shutdown: CancellationToken) {
        while leader::until_leading(&self.leader, "webhook delivery", &shutdown).await {
            if !self.deliver_while_leading(&delivered, &shutdown).await {
                return;
            }
            tracing::warn!("webhook: this fleet process no longer leads; delivery stops here");
        }
    }

    /// Delivers from the persisted cursor; wakes on `delivered` or every poll interval.
    /// Returns false at `shutdown`, true when the lead was lost.
    async fn deliver_while_leading(&self, delivered: &Notify, shutdown: &CancellationToken) -> bool {
        let mut cursor = loop {
            match store::blocking(&self.store, |s| s.consumer_cursor(CONSUMER)).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::error!(error = %e, "webhook: cannot read its cursor; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(self.config.max_backoff.min(Duration::from_secs(5))) => {}
                    }
                }
            }
        };
        tracing::info!(url = %self.url, cursor, "webhook delivery started");
        loop {
            // Register interest before reading, so a commit in between is not missed.
            let notified = delivered.notified();
            let batch_size = self.config.batch_size;
            let batch = match store::blocking(&self.store, move |s| s.readings_after(cursor, batch_size)).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: cannot read readings");
                    Vec::new()
                }
            };
            if !leader::leads(&self.leader).await {
                return true;
            }
            if batch.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = notified => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                next = self.deliver(&batch) => cursor = next,
            }
        }
    }

    /// POSTs one batch until a 2xx, then persists and returns the new cursor.
    async fn deliver(&self, batch: &[StoredReading]) -> u64 {
        let first = batch.first().map_or(0, |r| r.cursor);
        let next = batch.last().map_or(0, |r| r.cursor);
        let items: Vec<ReadingJson<'_>> = batch.iter().map(ReadingJson::from).collect();
        let key = format!("readings:{first}-{next}");
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_jitter()
            .without_max_times();
        let post = || async {
            let body = serde_json::to_vec(&serde_json::json!({ "readings": items, "next": next.to_string() }))?;
            let resp = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", &key)
                .body(body)
                .send()
                .await
                .map_err(WebhookError::Send)?;
            if resp.status().is_success() { Ok(()) } else { Err(WebhookError::Status(resp.status())) }
        };
        let sent = post
            .retry(backoff)
            .notify(|e: &WebhookError, after: Duration| {
                tracing::warn!(error = %e, retry_in = ?after, readings = batch.len(), "webhook: delivery failed");
            })
            .await;
        if let Err(e) = sent {
            // Unreachable with `without_max_times`, but never skip: deliver again from here.
            tracing::error!(error = %e, "webhook: gave up on a batch; it will be sent again");
            return first.saturating_sub(1);
        }
        let mut delay = Duration::from_millis(100);
        while let Err(e) = store::blocking(&self.store, move |s| s.set_consumer_cursor(CONSUMER, next)).await {
            tracing::warn!(error = %e, "webhook: cannot persist the cursor; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        tracing::debug!(readings = batch.len(), cursor = next, "webhook: delivered");
        next
    }
}
