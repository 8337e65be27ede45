//! The remote config task: one desired config at a time, from check to confirmation.

use std::time::Duration;

use simpul_protocol::ControlMessage;
use simpul_protocol::control::{ConfigState, DesiredConfig, Event, ReportedConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::diff::{Changes, diff};
use super::fleet_file::{Contents, FILE_NAME, FleetFile, Header};
use super::{Context, RemoteStatus};
use crate::config::{AgentConfig, ConfigError, drop_in_dir, load_with_drop_in};
use crate::uplink::Message;

pub(super) struct Task {
    ctx: Context,
    file: FleetFile,
    status: watch::Sender<RemoteStatus>,
    /// The drop-in's header as found at start.
    found: Header,
}

impl Task {
    pub(super) fn new(ctx: Context, status: watch::Sender<RemoteStatus>) -> Task {
        let file = FleetFile::new(&drop_in_dir(&ctx.main));
        // Read before the task runs, so the status is right from the start.
        let found = match file.read() {
            Ok(c) => c.map(|c| c.header).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(file = %file.path().display(), error = %e, "cannot read the fleet drop-in");
                Header::default()
            }
        };
        let task = Task { ctx, file, status, found };
        task.set_running(found.version, found.handled.or(found.version));
        task
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let header = self.found;
        tracing::info!(running = ?header.version, file = %self.file.path().display(), "remote config ready");
        if let (true, Some(version)) = (header.trial, header.version) {
            tracing::info!(version, "the fleet drop-in was not confirmed before the agent stopped; waiting again");
            self.confirm_or_roll_back(version, None, &shutdown).await;
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = self.ctx.desired.changed() => if changed.is_err() { break },
            }
            let payload = self.ctx.desired.borrow_and_update().clone();
            if let Some(p) = payload {
                self.on_desired(&p, &shutdown).await;
            }
        }
    }

    async fn on_desired(&mut self, payload: &[u8], shutdown: &CancellationToken) {
        let desired = match DesiredConfig::from_json(payload) {
            Ok(d) => d,
            Err(e) => {
                let version = version_of_malformed(payload);
                tracing::warn!(error = %e, "a desired config that does not decode");
                self.status.send_modify(|s| s.malformed += 1);
                self.report(ConfigState::Rejected, version, Some(format!("not a desired config: {e}")), shutdown).await;
                return;
            }
        };
        let version = desired.version;
        if self.status.borrow().handled.is_some_and(|h| version <= h) {
            tracing::debug!(version, "desired config already dealt with; ignored");
            return;
        }
        self.status.send_modify(|s| s.handled = Some(version));
        let new = match self.check(&desired.toml).await {
            Ok(new) => new,
            Err(error) => {
                tracing::warn!(version, %error, "desired config rejected");
                self.report(ConfigState::Rejected, version, Some(error), shutdown).await;
                return;
            }
        };
        let changes = diff(&self.ctx.running, &new);
        if let Some(error) = changes.restart_error() {
            tracing::warn!(version, %error, "desired config rejected");
            self.report(ConfigState::Rejected, version, Some(error), shutdown).await;
            return;
        }
        let contents = Contents {
            header: Header { version: Some(version), handled: Some(version), trial: true },
            body: desired.toml.clone(),
        };
        if let Err(e) = self.blocking_write(contents, true).await {
            let error = format!("cannot write {}: {e}", self.file.path().display());
            tracing::error!(version, %error, "desired config not applied");
            self.report(ConfigState::Rejected, version, Some(error), shutdown).await;
            return;
        }
        let connects = self.ctx.uplink_stats.snapshot().connects;
        tracing::info!(version, ?changes, "applying desired config");
        self.apply(new, &changes).await;
        self.set_running(Some(version), Some(version));
        self.status.send_modify(|s| s.trial = Some(version));
        self.confirm_or_roll_back(version, changes.uplink.then_some(connects), &shutdown.clone()).await;
    }

    /// Loads the local files with `toml` as the fleet drop-in; errors joined for people.
    async fn check(&self, toml: &str) -> Result<AgentConfig, String> {
        let main = self.ctx.main.clone();
        let toml = toml.to_owned();
        let loaded = tokio::task::spawn_blocking(move || load_with_drop_in(&main, FILE_NAME, &toml)).await;
        match loaded {
            Ok(Ok((config, _))) => Ok(config),
            Ok(Err(e)) => Err(problems_text(&e)),
            Err(e) => Err(format!("checking the config failed: {e}")),
        }
    }

    /// Touches only what changed: sensors by unit, the uplink's settings.
    async fn apply(&mut self, new: AgentConfig, changes: &Changes) {
        if !changes.sensors_added.is_empty()
            || !changes.sensors_removed.is_empty()
            || !changes.sensors_changed.is_empty()
            || changes.sensor_retry
        {
            let done = self.ctx.sensors.apply(&new.sensors, &new.sensor_retry).await;
            tracing::info!(started = ?done.started, stopped = ?done.stopped, restarted = ?done.restarted, "sensors changed");
        }
        if changes.uplink {
            self.ctx.uplink_config.send_replace(new.uplink.clone());
        }
        self.ctx.running = new;
    }

    /// Waits for a broker connection (a new one, after `connects_before`, when the
    /// uplink's settings changed) for `rollback_after`; confirms or rolls back.
    async fn confirm_or_roll_back(&mut self, version: u64, connects_before: Option<u64>, shutdown: &CancellationToken) {
        let limit = self.ctx.running.remote_config.rollback_after;
        let stats = std::sync::Arc::clone(&self.ctx.uplink_stats);
        let connected = stats.wait_for(|s| s.connected && connects_before.is_none_or(|b| s.connects > b));
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(limit, connected) => r,
        };
        if outcome.is_ok() {
            self.confirm(version, shutdown).await;
        } else {
            self.roll_back(version, limit, shutdown).await;
        }
    }

    async fn confirm(&mut self, version: u64, shutdown: &CancellationToken) {
        let body = match self.file.read() {
            Ok(Some(c)) => c.body,
            Ok(None) => String::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the fleet drop-in to confirm it");
                return;
            }
        };
        let header = Header { version: Some(version), handled: Some(version), trial: false };
        if let Err(e) = self.blocking_write(Contents { header, body }, false).await {
            tracing::warn!(error = %e, "cannot mark the fleet drop-in confirmed; it will be waited for again at start");
        }
        self.status.send_modify(|s| s.trial = None);
        tracing::info!(version, "desired config applied and the broker reached");
        self.report(ConfigState::Applied, version, None, shutdown).await;
    }

    /// Restores `.prev`, applies it, and reports why.
    async fn roll_back(&mut self, version: u64, limit: Duration, shutdown: &CancellationToken) {
        let reason = format!("no broker connection within {} after applying", humantime::format_duration(limit));
        tracing::warn!(version, %reason, "rolling the desired config back");
        let prev = match self.file.read_prev() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the previous fleet drop-in; going back to none");
                Contents::default()
            }
        };
        let (restored, prev) = match self.check(&prev.body).await {
            Ok(c) => (c, prev),
            Err(error) => {
                tracing::warn!(%error, "the previous fleet drop-in does not load any more; going back to none");
                match self.check("").await {
                    Ok(c) => (c, Contents::default()),
                    Err(error) => {
                        tracing::error!(%error, "the local config does not load; keeping the running config");
                        (self.ctx.running.clone(), Contents::default())
                    }
                }
            }
        };
        let running = prev.header.version;
        let header = Header { version: running, handled: Some(version), trial: false };
        if let Err(e) = self.blocking_write(Contents { header, body: prev.body }, false).await {
            tracing::error!(error = %e, "cannot restore the previous fleet drop-in on disk");
        }
        let changes = diff(&self.ctx.running, &restored);
        self.apply(restored, &changes).await;
        self.set_running(running, Some(version));
        self.status.send_modify(|s| s.trial = None);
        self.report(ConfigState::RolledBack, version, Some(reason.clone()), shutdown).await;
        let event = Event::ConfigRolledBack { version, running, reason };
        self.send(Message::of(&event, false), shutdown).await;
    }

    fn set_running(&self, running: Option<u64>, handled: Option<u64>) {
        self.status.send_modify(|s| {
            s.running = running;
            s.handled = s.handled.max(handled);
        });
        if let Some(c) = &self.ctx.collector {
            c.set_config_version(running);
        }
    }

    async fn report(&self, state: ConfigState, version: u64, error: Option<String>, shutdown: &CancellationToken) {
        let report = ReportedConfig { version, state, error };
        self.status.send_modify(|s| s.last = Some(report.clone()));
        self.send(Message::of(&report, true), shutdown).await;
    }

    /// Queues a message for the uplink (it goes out once connected).
    async fn send(&self, message: Result<Message, simpul_protocol::ControlError>, shutdown: &CancellationToken) {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "remote config message not encoded");
                return;
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            sent = self.ctx.messages.send(message) => if sent.is_err() {
                tracing::warn!("the uplink is gone; remote config report dropped");
            },
        }
    }

    /// Writes the fleet drop-in on the blocking pool: `install` keeps the old one as
    /// `.prev`, otherwise only the current file is replaced.
    async fn blocking_write(&self, contents: Contents, install: bool) -> std::io::Result<()> {
        let file = self.file.clone();
        let written =
            tokio::task::spawn_blocking(
                move || {
                    if install { file.install(&contents) } else { file.replace(&contents) }
                },
            )
            .await;
        written.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Every problem of a config error, one per line (each `file:line: key: message`).
fn problems_text(e: &ConfigError) -> String {
    let problems = e.problems();
    if problems.is_empty() {
        return e.to_string();
    }
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The `version` of a payload that is not a `DesiredConfig`, when it has one; 0 if not.
fn version_of_malformed(payload: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}
