//! Predictors shared by the encoder and the decoder, so both sides agree by construction.

/// Predicts a series' next monotonic time: the first reading of a series from the first
/// reading of the series before it, the second from the first, then linearly (so what
/// travels is a delta-of-delta, zero for a steady rhythm). All arithmetic wraps.
#[derive(Debug, Default)]
pub(super) struct MonoPredictor {
    /// The first monotonic time of the previous series.
    anchor: u64,
    /// This series' last time and last delta, once it has one.
    previous: Option<(u64, i64)>,
}

impl MonoPredictor {
    /// The next values belong to a new series.
    pub(super) fn start_series(&mut self) {
        self.previous = None;
    }

    /// What to write for `mono`.
    pub(super) fn residual(&mut self, mono: u64) -> i64 {
        let residual = mono.wrapping_sub(self.predict()) as i64;
        self.observe(mono);
        residual
    }

    /// The time a written `residual` stands for.
    pub(super) fn value(&mut self, residual: i64) -> u64 {
        let mono = self.predict().wrapping_add(residual as u64);
        self.observe(mono);
        mono
    }

    fn predict(&self) -> u64 {
        match self.previous {
            None => self.anchor,
            Some((last, delta)) => last.wrapping_add(delta as u64),
        }
    }

    fn observe(&mut self, mono: u64) {
        self.previous = Some(match self.previous {
            None => {
                self.anchor = mono;
                (mono, 0)
            }
            Some((last, _)) => (mono, mono.wrapping_sub(last) as i64),
        });
    }
}
