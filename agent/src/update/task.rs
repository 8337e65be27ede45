//! The update task: watches the retained `update` order, and when it names a newer release
//! this box has not already refused or rolled back, fetches and stages it, then stops the
//! agent so the trial can run.

use std::path::PathBuf;
use std::time::Duration;

use simpul_protocol::ControlMessage;
use simpul_protocol::control::{Event, UpdateOrder};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{StagedSlot, State, fetch};
use crate::config::UpdateConfig;
use crate::uplink::Message;

/// How long to wait before fetching again after the fleet could not be reached.
const RETRY: Duration = Duration::from_secs(30);

/// What the update task needs.
#[derive(Debug)]
pub struct Context {
    pub config: UpdateConfig,
    /// `[trust] fleet`.
    pub fleet: Option<String>,
    /// `[trust] dir`.
    pub identity_dir: PathBuf,
    /// The uplink's retained `update` payloads.
    pub orders: watch::Receiver<Option<Vec<u8>>>,
    /// QoS 1 messages (events) to the fleet.
    pub messages: mpsc::Sender<Message>,
    /// Where the staged release goes.
    pub staged: StagedSlot,
    /// The agent's shutdown: cancelled to run the trial.
    pub stop_agent: CancellationToken,
}

/// Runs until `shutdown`, or until a release is staged (then it stops the agent).
pub fn spawn(mut ctx: Context, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let running = crate::version::current();
        loop {
            let order = ctx.orders.borrow_and_update().clone();
            if let Some(order) = order.filter(|p| !p.is_empty()) {
                match UpdateOrder::from_json(&order) {
                    Ok(order) => match handle(&mut ctx, &order, &running).await {
                        Handled::Staged => return,
                        Handled::Superseded => continue,
                        Handled::Settled => {}
                    },
                    Err(e) => tracing::warn!(error = %e, "an update order that does not parse; ignored"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = ctx.orders.changed() => if changed.is_err() { return },
            }
        }
    })
}

/// How one order ended.
enum Handled {
    /// A release was staged and the agent told to stop.
    Staged,
    /// Nothing (more) to do for it: running it already, refused, rolled back before.
    Settled,
    /// Another order came while this one could not be fetched: take that one.
    Superseded,
}

/// One order.
async fn handle(ctx: &mut Context, order: &UpdateOrder, running: &str) -> Handled {
    let version = order.version.clone();
    if version == running {
        return Handled::Settled;
    }
    let dir = ctx.config.dir.clone();
    let state = tokio::task::spawn_blocking(move || State::load(&dir)).await.unwrap_or(State::Idle);
    if state.settled_against(&version) {
        tracing::debug!(%version, "this release was refused or rolled back here before; not again");
        return Handled::Settled;
    }
    loop {
        match fetch::fetch(&ctx.config, ctx.fleet.as_deref(), &ctx.identity_dir, order, running).await {
            Ok(staged) => {
                tracing::warn!(from = %staged.from, to = %staged.version, "stopping for the trial of a new release");
                if let Ok(mut slot) = ctx.staged.lock() {
                    *slot = Some(staged);
                }
                ctx.stop_agent.cancel();
                return Handled::Staged;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(%version, error = %e, "update: cannot fetch the release yet; trying again");
                tokio::select! {
                    () = ctx.stop_agent.cancelled() => return Handled::Settled,
                    changed = ctx.orders.changed() => {
                        if changed.is_err() {
                            return Handled::Settled;
                        }
                        tracing::info!(%version, "a new update order replaces this one");
                        return Handled::Superseded;
                    }
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(%version, %reason, "update refused");
                let refused = State::Refused { version: version.clone(), reason: reason.clone(), reported: true };
                let dir = ctx.config.dir.clone();
                let _ = tokio::task::spawn_blocking(move || refused.save(&dir)).await;
                report(ctx, &Event::UpdateRefused { version, reason }).await;
                return Handled::Settled;
            }
        }
    }
}

/// Sends `event` to the fleet (QoS 1, kept until the broker has it).
pub async fn report(ctx: &Context, event: &Event) {
    match Message::of(event, false) {
        Ok(m) => {
            if ctx.messages.send(m).await.is_err() {
                tracing::warn!("the uplink is gone; the update event is not sent");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot encode an update event"),
    }
}
