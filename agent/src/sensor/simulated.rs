//! A made-up water level for the demo and tests: a sine wave around `base` with
//! Gaussian noise, one reading every `interval`, on tokio time (so paused-time tests run
//! it instantly). The same seed gives the same series.

use std::f64::consts::TAU;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::emit::{Channel, Emitter};
use crate::clock::Clock;
use crate::config::sensor::SimulatedSensorConfig;
use crate::sample::round_to_decimals;

/// The series itself, apart from time and channels, so it can be tested directly.
#[derive(Debug)]
pub struct Wave {
    cfg: SimulatedSensorConfig,
    rng: StdRng,
}

impl Wave {
    /// The wave `cfg` describes.
    pub fn new(cfg: SimulatedSensorConfig) -> Wave {
        let rng = match cfg.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        Wave { cfg, rng }
    }

    /// The level `elapsed_s` seconds after the start, noise included, rounded.
    pub fn at(&mut self, elapsed_s: f64) -> f64 {
        let period = self.cfg.period.as_secs_f64().max(f64::EPSILON);
        let wave = self.cfg.base + self.cfg.amplitude * (TAU * elapsed_s / period).sin();
        round_to_decimals(wave + self.cfg.noise * self.gaussian(), self.cfg.decimals)
    }

    /// A standard normal draw (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// Runs one simulated sensor until `shutdown`.
pub(crate) async fn run(
    cfg: SimulatedSensorConfig,
    clock: Arc<dyn Clock>,
    mut emit: Emitter,
    shutdown: CancellationToken,
) {
    let channel = Channel::new(&cfg.metric, &cfg.unit);
    let mut ticks = tokio::time::interval(cfg.interval.max(std::time::Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut wave = Wave::new(cfg);
    emit.stats().opened(true);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let value = wave.at(start.elapsed().as_secs_f64());
        emit.stats().frame_ok();
        if emit.send(&channel, value, clock.now(), &shutdown).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cfg(seed: u64, noise: f64) -> SimulatedSensorConfig {
        SimulatedSensorConfig {
            interval: Duration::from_secs(1),
            metric: "level".into(),
            unit: "cm".into(),
            base: 120.0,
            amplitude: 30.0,
            period: Duration::from_secs(3600),
            noise,
            decimals: 1,
            seed: Some(seed),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_series() {
        let (mut a, mut b) = (Wave::new(cfg(7, 0.3)), Wave::new(cfg(7, 0.3)));
        let xs: Vec<f64> = (0..50).map(|t| a.at(f64::from(t))).collect();
        let ys: Vec<f64> = (0..50).map(|t| b.at(f64::from(t))).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn without_noise_the_wave_peaks_a_quarter_period_in() {
        let mut w = Wave::new(cfg(1, 0.0));
        assert_eq!(w.at(0.0), 120.0);
        assert_eq!(w.at(900.0), 150.0);
        assert_eq!(w.at(2700.0), 90.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_simulated_sensor_sends_one_sample_per_interval() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let stats = Arc::new(crate::sensor::SensorStats::new("simulated"));
        let emit = Emitter::new("sim", tx, stats.clone());
        let clock = Arc::new(crate::clock::ManualClock::new(1_800_000_000_000, true));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(cfg(3, 0.0), clock, emit, shutdown.clone()));
        for _ in 0..3 {
            let s = rx.recv().await.expect("a sample");
            assert_eq!((&*s.sensor, &*s.metric, &*s.unit), ("sim", "level", "cm"));
            assert!((90.0..=150.0).contains(&s.value));
        }
        shutdown.cancel();
        task.await.expect("task ends");
        assert!(stats.snapshot().frames_ok >= 3);
    }
}
