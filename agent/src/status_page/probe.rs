//! "Probe and propose to the command centre": the status page's hook to the probe and to
//! the uplink's QoS 1 queue, and the results it shows, per port, in memory.
//!
//! Only a port in the page's own unconfigured list is ever probed (the request names it,
//! but the list decides); one probe per port at a time, in the background, so the page
//! answers at once and shows "probing" until the result is in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use simpul_protocol::control::Event;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ProbeConfig;
use crate::probe;
use crate::uplink::{Message, UplinkStats};

/// A probe's result, as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ProbeView {
    /// Still trying baud rates.
    Probing,
    /// Found and handed to the uplink; `connected`: the link was up then (otherwise the
    /// proposal goes out when it is back).
    Proposed { summary: String, connected: bool },
    /// Found, but the uplink is off: nothing can be sent.
    NotSent { summary: String },
    /// Nothing recognised (or the port could not be opened).
    Nothing,
}

/// What the page needs to probe and propose.
#[derive(Clone, Debug)]
pub struct ProbeHook {
    pub config: ProbeConfig,
    /// The uplink's QoS 1 queue; `None` when the uplink is off.
    pub messages: Option<mpsc::Sender<Message>>,
    pub uplink: Option<Arc<UplinkStats>>,
    /// Results by port path.
    pub results: Arc<Mutex<BTreeMap<String, ProbeView>>>,
    /// Stops running probes (a child of the agent's token).
    pub shutdown: CancellationToken,
}

impl ProbeHook {
    /// A hook with no results yet.
    pub fn new(
        config: ProbeConfig,
        messages: Option<mpsc::Sender<Message>>,
        uplink: Option<Arc<UplinkStats>>,
    ) -> ProbeHook {
        ProbeHook { config, messages, uplink, results: Arc::default(), shutdown: CancellationToken::new() }
    }

    /// The results now.
    pub fn results(&self) -> BTreeMap<String, ProbeView> {
        self.results.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn set(&self, port: &str, v: ProbeView) {
        if let Ok(mut r) = self.results.lock() {
            r.insert(port.to_owned(), v);
        }
    }

    /// Starts probing `port` (already checked to be unconfigured) unless a probe of it runs.
    pub fn start(&self, port: PathBuf) {
        let key = port.display().to_string();
        {
            let Ok(mut r) = self.results.lock() else { return };
            if r.get(&key) == Some(&ProbeView::Probing) {
                return;
            }
            r.insert(key.clone(), ProbeView::Probing);
        }
        let hook = self.clone();
        tokio::spawn(async move {
            let result = probe::probe(&port, &hook.config, &hook.shutdown).await;
            let view = match result {
                Ok(Some(p)) => hook.propose(&key, p).await,
                Ok(None) => ProbeView::Nothing,
                Err(probe::ProbeError::Stopped) => return,
                Err(e) => {
                    tracing::warn!(port = %key, error = %e, "probe failed");
                    ProbeView::Nothing
                }
            };
            tracing::info!(port = %key, result = ?view, "probe done");
            hook.set(&key, view);
        });
    }

    /// Queues `Event::SensorProposed` for the fleet (QoS 1, kept until PUBACKed).
    async fn propose(&self, port: &str, p: probe::Proposal) -> ProbeView {
        let summary = p.summary.clone();
        let Some(messages) = &self.messages else { return ProbeView::NotSent { summary } };
        let event = Event::SensorProposed { port: port.to_owned(), toml: p.toml, summary: summary.clone() };
        let message = match Message::of(&event, false) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the proposal");
                return ProbeView::NotSent { summary };
            }
        };
        let sent = tokio::select! {
            r = messages.send(message) => r.is_ok(),
            () = self.shutdown.cancelled() => false,
        };
        if !sent {
            return ProbeView::NotSent { summary };
        }
        let connected = self.uplink.as_ref().is_some_and(|u| u.snapshot().connected);
        ProbeView::Proposed { summary, connected }
    }
}
