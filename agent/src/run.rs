//! `run(config, shutdown)`: the whole agent, as the binary and the tests start it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use simpul_protocol::DeviceId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::buffer::{Buffer, BufferError, BufferOptions, WriterSummary, spawn_writer};
use crate::clock::{Clock, SystemClock};
use crate::config::AgentConfig;
use crate::remote_config::{self, RemoteStatus};
use crate::sensor::{LiveSensors, Supervisor};
use crate::uplink;

/// How many samples may wait between the sensors and the buffer writer. Beyond it a
/// sensor waits (backpressure) rather than dropping; at 8 sensors at 1 Hz this is minutes.
const SAMPLE_QUEUE: usize = 4096;

/// How long a graceful stop may take before the agent gives up waiting for sensors.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
    #[error("the buffer writer task failed: {0}")]
    Writer(#[from] tokio::task::JoinError),
}

/// Runs the agent until `shutdown` is cancelled, then stops its sensors, flushes the
/// buffer once more and returns what the writer did.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<WriterSummary, RunError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new(&config.clock));
    run_with_clock(config, clock, shutdown).await
}

/// [`run`] for the binary: `main` is the config file it was loaded from, so the fleet's
/// desired config can be checked against it and kept in its `agent.d/`.
pub async fn run_with_config_file(
    config: AgentConfig,
    main: PathBuf,
    staged: crate::update::StagedSlot,
    shutdown: CancellationToken,
) -> Result<WriterSummary, RunError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new(&config.clock));
    // systemd hears READY once every part is started (a no-op when not under systemd).
    let (started, ready) = oneshot::channel();
    tokio::spawn(async move {
        if ready.await.is_ok() {
            simpul_base::systemd::ready("reading sensors");
        }
    });
    let options =
        RunOptions { config_file: Some(main), staged: Some(staged), started: Some(started), ..RunOptions::new(clock) };
    run_with(config, options, shutdown).await
}

/// [`run`] with a clock of the caller's choosing (tests steer time with it).
pub async fn run_with_clock(
    config: AgentConfig,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<WriterSummary, RunError> {
    run_with(config, RunOptions::new(clock), shutdown).await
}

/// How [`run_with`] runs, beyond the config.
pub struct RunOptions {
    /// The time readings are stamped with.
    pub clock: Arc<dyn Clock>,
    /// The main config file the config came from. Without one (a config from
    /// [`crate::config::load_str`]) there is nowhere to keep the fleet's config, and
    /// remote config is off.
    pub config_file: Option<PathBuf>,
    /// Told, once everything is started, what the caller may watch.
    pub started: Option<oneshot::Sender<Observed>>,
    /// Where a release staged for its trial is left (docs/design/updates.md); without it
    /// the agent takes no update.
    pub staged: Option<crate::update::StagedSlot>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("config_file", &self.config_file).finish_non_exhaustive()
    }
}

impl RunOptions {
    /// No config file, nobody told.
    pub fn new(clock: Arc<dyn Clock>) -> RunOptions {
        RunOptions { clock, config_file: None, started: None, staged: None }
    }
}

/// What a running agent lets its caller watch (tests; a later local API).
#[derive(Clone, Debug)]
pub struct Observed {
    /// The running sensors, after every change.
    pub sensors: LiveSensors,
    /// The uplink's state, when it runs.
    pub uplink: Option<Arc<uplink::UplinkStats>>,
    /// The remote config's state, when it runs.
    pub remote: Option<watch::Receiver<RemoteStatus>>,
}

/// [`run`] with [`RunOptions`].
pub async fn run_with(
    config: AgentConfig,
    run: RunOptions,
    shutdown: CancellationToken,
) -> Result<WriterSummary, RunError> {
    let clock = run.clock;
    let mut config = config;
    let enrolment = match crate::trust::prepare(&mut config, run.config_file.as_deref()) {
        Ok(pending) => pending,
        Err(e) => {
            tracing::error!(error = %e, "cannot enrol with the bootstrap bundle; running without it");
            None
        }
    };
    let device = device_id(&config);
    tracing::info!(%device, sensors = config.sensors.len(), buffer = %config.buffer.path.display(), "simpul-agent starting");

    let opts = BufferOptions::from(&config.buffer);
    let path = config.buffer.path.clone();
    let buffer = tokio::task::spawn_blocking(move || Buffer::open(&path, opts)).await??;

    let (tx, rx) = mpsc::channel(SAMPLE_QUEUE);
    // The writer ends when every sender is gone (sensors stopped), after a last flush.
    let writer = spawn_writer(buffer, config.buffer.flush_interval, rx, CancellationToken::new());

    // The uplink reads and deletes through its own connection to the same file (WAL).
    let uplink = if config.uplink.enabled {
        let path = config.buffer.path.clone();
        let own = tokio::task::spawn_blocking(move || Buffer::open(&path, opts)).await??;
        let identity = config.trust.dir.clone();
        Some(uplink::spawn(config.uplink.clone(), identity, device.clone(), own, Arc::clone(&clock), shutdown.clone()))
    } else {
        tracing::info!("uplink disabled ([uplink] enabled = false): readings stay in the buffer");
        None
    };

    let tracker = TaskTracker::new();
    let health_clock = Arc::clone(&clock);
    let mut supervisor = Supervisor::new(clock, tx, shutdown.clone(), tracker.clone());
    supervisor.apply(&config.sensors, &config.sensor_retry).await;
    let sensors = supervisor.set();
    let live = supervisor.live();
    tracker.close();
    tracing::info!(sensors = ?sensors.stats().keys().collect::<Vec<_>>(), "sensors started");
    if let Some(listen) = config.status_page.listen {
        let page = status_page_sources(&config, &device, live.clone(), uplink.as_ref());
        crate::status_page::spawn(listen, page, shutdown.clone()).await;
    }

    let cameras = crate::camera::CameraStates::new(config.cameras.keys());
    let camera_tasks = crate::camera::spawn(&config, cameras.clone(), &shutdown);
    let health = crate::health::spawn(
        &config.health,
        &config.buffer.path,
        live.clone(),
        uplink.as_ref(),
        health_clock,
        cameras,
        shutdown.clone(),
    )
    .await;

    let remote = match (&run.config_file, &uplink) {
        (Some(main), Some(up)) if config.remote_config.enabled => {
            let mut ctx = remote_config::Context::new(main.clone(), config.clone(), supervisor, up);
            ctx.collector = Some(Arc::clone(&health.collector));
            Some(remote_config::spawn(ctx, shutdown.clone()))
        }
        _ => {
            tracing::info!("remote config off (it needs [remote_config] enabled, the uplink and a config file)");
            drop(supervisor);
            None
        }
    };
    let shutdown_for_enrolment = shutdown.clone();
    let enrolling = enrolment.map(|pending| {
        tokio::spawn(async move {
            if let Err(e) = pending.run(shutdown_for_enrolment).await {
                tracing::error!(error = %e, "enrolment failed");
            }
        })
    });
    let renewing = crate::trust::Renewal::from_config(&config).map(|r| tokio::spawn(r.run(shutdown.clone())));
    let updating = start_updates(&config, run.staged.clone(), uplink.as_ref(), &shutdown).await;
    if renewing.is_none() && config.uplink.tls {
        tracing::info!("certificate renewal off: [trust] fleet is not set");
    }
    if let Some(started) = run.started {
        let observed = Observed {
            sensors: live,
            uplink: uplink.as_ref().map(|u| Arc::clone(&u.stats)),
            remote: remote.as_ref().map(|r| r.status.clone()),
        };
        let _ = started.send(observed);
    }

    shutdown.cancelled().await;
    tracing::info!("stopping: waiting for sensors, then a last flush");
    if tokio::time::timeout(STOP_TIMEOUT, tracker.wait()).await.is_err() {
        tracing::warn!(timeout = ?STOP_TIMEOUT, "sensors did not stop in time");
    }
    drop(sensors);
    if let Some(remote) = remote {
        // It owns the sensor supervisor (and so a sender to the writer).
        if tokio::time::timeout(STOP_TIMEOUT, remote.join()).await.is_err() {
            tracing::warn!(timeout = ?STOP_TIMEOUT, "the remote config task did not stop in time");
        }
    }
    if let Some(task) = enrolling {
        // It stops at shutdown (or has finished); an enrolment cut short resumes next start.
        let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
    }
    for task in [renewing, updating].into_iter().flatten().chain(camera_tasks) {
        let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
    }
    let summary = writer.await??;
    if let Some(uplink) = uplink {
        if tokio::time::timeout(STOP_TIMEOUT, uplink.join()).await.is_err() {
            tracing::warn!(timeout = ?STOP_TIMEOUT, "the uplink did not stop in time");
        }
    }
    if tokio::time::timeout(STOP_TIMEOUT, health.join()).await.is_err() {
        tracing::warn!(timeout = ?STOP_TIMEOUT, "the health tasks did not stop in time");
    }
    tracing::info!(appended = summary.appended, flushes = summary.flushes, "simpul-agent stopped");
    Ok(summary)
}

/// Reports what the last run's update did, marks a trial child healthy once it is, and
/// starts the update task (when the agent has an uplink and a slot for a staged release).
async fn start_updates(
    config: &AgentConfig,
    staged: Option<crate::update::StagedSlot>,
    uplink: Option<&uplink::UplinkHandle>,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let up = uplink?;
    let trial = crate::update::trial::child_setup();
    if trial.is_none() {
        // A trial child leaves the state to its supervisor: to it, "in a trial and running
        // the trial's version" is the normal case, not a power cut after the commit.
        let dir = config.update.dir.clone();
        let running = crate::version::current();
        let event = tokio::task::spawn_blocking(move || crate::update::startup(&dir, &running)).await.ok().flatten();
        if let Some(event) = event {
            if let Ok(m) = uplink::Message::of(&event, false) {
                let _ = up.messages.send(m).await;
            }
        }
    }
    if let Some(healthy) = trial {
        let stats = Arc::clone(&up.stats);
        tokio::spawn(async move {
            stats.wait_for(|s| s.connected && s.notices_sent > 0).await;
            let version = crate::version::current();
            match simpul_base::fs::write_atomic(&healthy, version.as_bytes(), 0o644) {
                Ok(()) => tracing::info!(%version, "trial: healthy (connected, heartbeat sent)"),
                Err(e) => tracing::error!(error = %e, "trial: cannot say it is healthy"),
            }
        });
    }
    let ctx = crate::update::task::Context {
        config: config.update.clone(),
        fleet: config.trust.fleet.clone(),
        identity_dir: config.trust.dir.clone(),
        orders: up.update.clone(),
        messages: up.messages.clone(),
        staged: staged?,
        stop_agent: shutdown.clone(),
    };
    Some(crate::update::task::spawn(ctx, shutdown.clone()))
}

/// What the staff's status page reads: the live counters and the config's ports.
fn status_page_sources(
    config: &AgentConfig,
    device: &DeviceId,
    sensors: LiveSensors,
    uplink: Option<&uplink::UplinkHandle>,
) -> crate::status_page::Sources {
    let page = &config.status_page;
    crate::status_page::Sources {
        device: device.to_string(),
        site: config.device.site.clone(),
        version: crate::version::current(),
        sensors,
        uplink: uplink.map(|u| Arc::clone(&u.stats)),
        buffer_path: config.buffer.path.clone(),
        ports_dir: page.ports_dir.clone(),
        port_prefixes: page.port_prefixes.clone(),
        zone: page.timezone,
        stale_after: page.stale_after,
        probe: crate::status_page::ProbeHook::new(
            config.probe.clone(),
            uplink.map(|u| u.messages.clone()),
            uplink.map(|u| Arc::clone(&u.stats)),
        ),
    }
}

/// The configured device id, or one made from the host name until enrolment gives one.
pub fn device_id(config: &AgentConfig) -> DeviceId {
    if let Some(id) = &config.device.id {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
        .collect();
    let trimmed = cleaned.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    DeviceId::new(trimmed.chars().take(simpul_protocol::topic::DEVICE_ID_MAX_LEN).collect::<String>())
        .unwrap_or_else(|_| DeviceId::new("simpul-agent").unwrap_or_else(|_| unreachable!("a valid literal id")))
}
