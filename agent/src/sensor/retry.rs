//! How long a sensor waits before reopening its port: `min_delay` doubling up to
//! `max_delay`, with jitter so that many sensors unplugged together (a power cut on a
//! USB hub) do not all retry in the same instant. Reset after a successful open.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::config::RetryConfig;

/// An endless backoff built on `backon`'s exponential one.
#[derive(Debug)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    max: Duration,
    current: ExponentialBackoff,
}

impl Backoff {
    /// The backoff `retry` describes.
    pub(crate) fn new(retry: &RetryConfig) -> Backoff {
        let min = retry.min_delay.max(Duration::from_millis(1));
        let max = retry.max_delay.max(min);
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Backoff { builder, max, current: builder.build() }
    }

    /// The next delay. `backon`'s jitter adds up to the delay again; the result is capped
    /// at `max_delay` so the config's promise holds.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.current.next().unwrap_or(self.max).min(self.max)
    }

    /// Starts again from `min_delay` (after a successful open).
    pub(crate) fn reset(&mut self) {
        self.current = self.builder.build();
    }

    /// Sleeps the next delay; `false` if shutdown came first.
    pub(crate) async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(min_ms: u64, max_ms: u64) -> RetryConfig {
        RetryConfig { min_delay: Duration::from_millis(min_ms), max_delay: Duration::from_millis(max_ms) }
    }

    #[test]
    fn delays_grow_from_min_to_max_and_reset_starts_over() {
        let mut b = Backoff::new(&retry(100, 1000));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(200));
        let later: Vec<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_millis(1000)));
        assert!(later.iter().rev().take(5).all(|d| *d >= Duration::from_millis(1000)));
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(200));
    }

    #[test]
    fn a_max_below_min_is_raised_to_min() {
        let mut b = Backoff::new(&retry(500, 10));
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }
}
