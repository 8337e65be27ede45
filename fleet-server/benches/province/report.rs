//! What the province bench measures per phase and prints: connections held, readings/s,
//! publish-to-ack, the fleet's memory and CPU, the simulator's CPU; and the final check that
//! every box's readings are stored exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{cpu_seconds, kib, percentile_ms};
use crate::device::{Outcome, Phase, Stats};
use crate::fleet::{Fleet, Stored};

/// Samples the fleet's resident memory and the boxes' connections every 250 ms.
pub struct Sampler {
    inner: Arc<Inner>,
}

struct Inner {
    pid: AtomicU32,
    peak_rss_kib: AtomicU64,
    min_connected: AtomicI64,
    stats: Arc<Stats>,
}

/// Where a phase started.
pub struct Mark {
    at: Instant,
    fleet_pid: u32,
    fleet_cpu: f64,
    bench_cpu: f64,
    acked: u64,
}

/// One phase's figures.
pub struct Figures {
    pub name: &'static str,
    pub phase: Phase,
    pub wall: Duration,
    pub fleet_cores: f64,
    pub bench_cores: f64,
    pub peak_rss_mb: f64,
    pub min_connected: i64,
    pub readings_per_s: f64,
    pub note: String,
}

impl Sampler {
    pub fn start(pid: u32, stats: Arc<Stats>) -> Sampler {
        let inner = Arc::new(Inner {
            pid: AtomicU32::new(pid),
            peak_rss_kib: AtomicU64::new(0),
            min_connected: AtomicI64::new(0),
            stats,
        });
        let sampling = inner.clone();
        tokio::spawn(async move {
            loop {
                sampling.sample();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Sampler { inner }
    }

    /// The fleet was restarted: sample the new process.
    pub fn follow(&self, pid: u32) {
        self.inner.pid.store(pid, Ordering::Relaxed);
    }

    /// A phase starts now.
    pub fn mark(&self, fleet: &Fleet) -> Mark {
        let pid = fleet.pid();
        self.inner.peak_rss_kib.store(kib(pid, "VmRSS:"), Ordering::Relaxed);
        self.inner.min_connected.store(self.inner.stats.connected.load(Ordering::Relaxed), Ordering::Relaxed);
        Mark {
            at: Instant::now(),
            fleet_pid: pid,
            fleet_cpu: cpu_seconds(pid),
            bench_cpu: cpu_seconds(std::process::id()),
            acked: self.inner.stats.acked_while.iter().map(|a| a.load(Ordering::Relaxed)).sum(),
        }
    }

    /// The phase that started at `mark` ends now.
    pub fn figures(&self, name: &'static str, mark: Mark, fleet: &Fleet, phase: Phase) -> Figures {
        self.inner.sample();
        let wall = mark.at.elapsed();
        let secs = wall.as_secs_f64().max(1e-9);
        // After a restart the new process's whole life falls inside the phase.
        let fleet_cpu = if fleet.pid() == mark.fleet_pid {
            cpu_seconds(fleet.pid()) - mark.fleet_cpu
        } else {
            cpu_seconds(fleet.pid())
        };
        let acked: u64 = self.inner.stats.acked_while.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        Figures {
            name,
            phase,
            wall,
            fleet_cores: fleet_cpu / secs,
            bench_cores: (cpu_seconds(std::process::id()) - mark.bench_cpu) / secs,
            peak_rss_mb: self.inner.peak_rss_kib.load(Ordering::Relaxed) as f64 / 1024.0,
            min_connected: self.inner.min_connected.load(Ordering::Relaxed),
            readings_per_s: acked.saturating_sub(mark.acked) as f64 / secs,
            note: String::new(),
        }
    }
}

impl Inner {
    fn sample(&self) {
        let rss = kib(self.pid.load(Ordering::Relaxed), "VmRSS:");
        self.peak_rss_kib.fetch_max(rss, Ordering::Relaxed);
        self.min_connected.fetch_min(self.stats.connected.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

impl Figures {
    pub fn print(&self) {
        println!(
            "{}: {} | {:.1} s, boxes connected throughout >= {}, {:.0} readings/s acked, fleet CPU {:.2} cores, simulator CPU {:.2} cores, fleet VmRSS peak {:.1} MB",
            self.name,
            self.note,
            self.wall.as_secs_f64(),
            self.min_connected,
            self.readings_per_s,
            self.fleet_cores,
            self.bench_cores,
            self.peak_rss_mb
        );
    }
}

/// What the fleet's database holds against what the boxes produced.
pub struct Check {
    boxes: usize,
    exact_boxes: usize,
    produced: u64,
    missing: u64,
    duplicated: u64,
    unknown: u64,
    unacked: u64,
}

impl Check {
    pub fn exact(&self) -> bool {
        self.exact_boxes == self.boxes && self.missing == 0 && self.duplicated == 0 && self.unknown == 0
    }

    pub fn print(&self) {
        println!(
            "exactly once: {} of {} boxes have every reading they produced stored once; {} readings produced, {} missing, {} stored twice, {} never produced; {} never acknowledged to their box",
            self.exact_boxes, self.boxes, self.produced, self.missing, self.duplicated, self.unknown, self.unacked
        );
    }
}

/// Compares each box's produced seqs `1..=last_seq` with the stored rows.
pub fn exactly_once(outcomes: &[Outcome], stored: &HashMap<String, Stored>) -> Check {
    let mut c =
        Check { boxes: outcomes.len(), exact_boxes: 0, produced: 0, missing: 0, duplicated: 0, unknown: 0, unacked: 0 };
    for o in outcomes {
        let s = stored.get(&o.device).copied().unwrap_or_default();
        c.produced += o.last_seq;
        c.unacked += o.unacked_readings;
        c.duplicated += s.rows - s.distinct_seqs;
        let outside = u64::from(s.rows > 0 && (s.min_seq < 1 || s.max_seq > o.last_seq));
        c.unknown += outside;
        c.missing += o.last_seq.saturating_sub(s.distinct_seqs);
        if s.rows == o.last_seq && s.distinct_seqs == s.rows && outside == 0 {
            c.exact_boxes += 1;
        }
    }
    c
}

/// The goals against what was measured.
pub fn summary(figures: &[Figures], devices: u64, offered_per_s: f64, fleet_hwm_mb: f64, stats: &Stats) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let held = figures
        .iter()
        .filter(|f| matches!(f.phase, Phase::Steady | Phase::Burst))
        .map(|f| f.min_connected)
        .min()
        .unwrap_or(0);
    println!(
        "goal: all {devices} connections held through steady and burst: at least {held} held ({})",
        verdict(held >= devices as i64)
    );
    if let Some(burst) = figures.iter().find(|f| f.phase == Phase::Burst) {
        let met = if offered_per_s < 100_000.0 {
            format!("only {offered_per_s:.0}/s offered: the goal needs the full run")
        } else {
            verdict(burst.readings_per_s >= 100_000.0).to_owned()
        };
        println!("goal: >= 100,000 readings/s in bursts: {:.0} readings/s acked ({met})", burst.readings_per_s);
    }
    for phase in [Phase::Steady, Phase::Burst, Phase::Storm] {
        let mut lat = stats.latencies_us[phase as usize].lock().map(|l| l.clone()).unwrap_or_default();
        lat.sort_unstable();
        let p99 = percentile_ms(&lat, 0.99);
        let goal = if phase == Phase::Storm {
            "the restart's downtime included, no goal".to_owned()
        } else {
            verdict(p99 <= 1000.0).to_owned()
        };
        println!(
            "publish-to-ack (goal p99 <= 1 s), batches due in {phase:?}: p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms over {} batches ({goal})",
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 1.0),
            lat.len(),
        );
    }
    println!("goal: fleet resident memory <= 300 MB: VmHWM {fleet_hwm_mb:.1} MB ({})", verdict(fleet_hwm_mb <= 300.0));
    let me = kib(std::process::id(), "VmHWM:") as f64 / 1024.0;
    println!("simulator (this process, all {devices} boxes and their TLS sessions): VmHWM {me:.1} MB");
}
