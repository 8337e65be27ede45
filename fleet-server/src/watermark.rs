//! The per-device ack watermark: the highest seq such that every seq `1..=watermark` is
//! stored or dropped, plus the ranges already done above it.
//!
//! This is pure logic; the store keeps a [`Progress`] per device in the database (the
//! watermark in `devices`, the ranges in `device_ranges`), so two fleet servers that share
//! a database never disagree about it.

use simpul_protocol::SeqRange;

/// What is done (stored or dropped) for one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every seq `1..=watermark` is done.
    pub watermark: u64,
    /// Done ranges above `watermark + 1`: sorted, disjoint, not touching each other or the
    /// watermark (a range that would touch it is folded into it).
    pub above: Vec<SeqRange>,
}

impl Progress {
    /// A progress read back from storage. Ranges are normalised, so a hand-edited or
    /// older row set cannot break the invariants.
    pub fn new(watermark: u64, above: impl IntoIterator<Item = SeqRange>) -> Progress {
        let mut p = Progress { watermark, above: Vec::new() };
        for r in above {
            p.mark(r);
        }
        p
    }

    /// Marks `range` done; returns how many seqs were not done before (so a resent batch
    /// or a repeated dropped range counts nothing twice). Seq 0 is never used and ignored;
    /// a range with `last < first` marks nothing.
    pub fn mark(&mut self, range: SeqRange) -> u64 {
        let first = range.first.max(self.watermark + 1).max(1);
        let last = range.last;
        if last < first {
            return 0;
        }
        // Count what is new: the range's length less its overlap with existing ranges.
        let overlap: u64 = self
            .above
            .iter()
            .filter(|r| r.last >= first && r.first <= last)
            .map(|r| r.last.min(last) - r.first.max(first) + 1)
            .sum();
        let added = (last - first + 1) - overlap;
        // Merge: every range that overlaps or touches [first, last] joins it.
        let mut merged = SeqRange { first, last };
        let mut kept = Vec::with_capacity(self.above.len() + 1);
        for r in self.above.drain(..) {
            let touches = r.last.saturating_add(1) >= merged.first && r.first <= merged.last.saturating_add(1);
            if touches {
                merged = SeqRange { first: merged.first.min(r.first), last: merged.last.max(r.last) };
            } else {
                kept.push(r);
            }
        }
        kept.push(merged);
        kept.sort_by_key(|r| r.first);
        self.above = kept;
        self.fold();
        added
    }

    /// Marks one seq done; returns whether it was new.
    pub fn mark_seq(&mut self, seq: u64) -> bool {
        self.mark(SeqRange { first: seq, last: seq }) == 1
    }

    /// Moves the watermark over every range that now touches it.
    fn fold(&mut self) {
        while let Some(r) = self.above.first() {
            if r.first > self.watermark + 1 {
                break;
            }
            self.watermark = self.watermark.max(r.last);
            self.above.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn r(first: u64, last: u64) -> SeqRange {
        SeqRange { first, last }
    }

    #[test]
    fn the_watermark_waits_for_a_gap_and_jumps_when_it_fills() {
        let mut p = Progress::default();
        assert!(p.mark_seq(1));
        assert!(p.mark_seq(3));
        assert_eq!(p.watermark, 1);
        assert_eq!(p.above, vec![r(3, 3)]);
        assert!(p.mark_seq(2));
        assert_eq!(p, Progress { watermark: 3, above: vec![] });
        assert!(!p.mark_seq(2), "a repeat is not new");
    }

    #[test]
    fn a_dropped_range_counts_only_seqs_not_already_done() {
        let mut p = Progress::new(0, [r(5, 6)]);
        assert_eq!(p.mark(r(1, 10)), 8);
        assert_eq!(p.watermark, 10);
        assert_eq!(p.mark(r(1, 10)), 0);
        assert_eq!(p.mark(r(9, 3)), 0, "an inverted range marks nothing");
    }

    /// Arrivals: a seq stored, or a dropped range.
    fn arrival() -> impl Strategy<Value = SeqRange> {
        prop_oneof![(1u64..60).prop_map(|s| r(s, s)), (1u64..60, 0u64..8).prop_map(|(s, n)| r(s, s + n)),]
    }

    proptest! {
        #[test]
        fn any_order_and_duplication_of_arrivals_gives_the_highest_contiguous_seq(
            arrivals in proptest::collection::vec(arrival(), 0..80),
            reload_at in 0usize..80,
        ) {
            let mut p = Progress::default();
            let mut model = BTreeSet::new();
            for (i, a) in arrivals.iter().enumerate() {
                if i == reload_at {
                    // What the store does: write out and read back.
                    p = Progress::new(p.watermark, p.above.clone());
                }
                let new_in_model = (a.first..=a.last).filter(|s| model.insert(*s)).count() as u64;
                prop_assert_eq!(p.mark(*a), new_in_model);
                let expected = (1..).take_while(|s| model.contains(s)).last().unwrap_or(0);
                prop_assert_eq!(p.watermark, expected);
                let above: u64 = p.above.iter().map(|x| x.last - x.first + 1).sum();
                prop_assert_eq!(above + p.watermark, model.len() as u64);
                prop_assert!(p.above.windows(2).all(|w| w[0].last + 1 < w[1].first));
                prop_assert!(p.above.first().is_none_or(|x| x.first > p.watermark + 1));
            }
        }
    }
}
