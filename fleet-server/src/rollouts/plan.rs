//! Which devices go in which wave: a stable order from a per-device seed, and the waves'
//! sizes from the canary count and the percentages.

use simpul_protocol::DeviceId;
use simpul_protocol::release::sha256_hex;

/// The devices in rollout order: by `sha256("{rollout}/{device}")`. Every fleet server
/// computes the same order, a device's place does not depend on which others are in the
/// rollout, and a new rollout shuffles afresh, so the same boxes are not always the
/// canaries.
pub fn order(rollout: u64, devices: Vec<DeviceId>) -> Vec<DeviceId> {
    let mut keyed: Vec<(String, DeviceId)> =
        devices.into_iter().map(|d| (sha256_hex(format!("{rollout}/{d}").as_bytes()), d)).collect();
    keyed.sort();
    keyed.dedup_by(|a, b| a.1 == b.1);
    keyed.into_iter().map(|(_, d)| d).collect()
}

/// Where each wave ends (exclusive, cumulative) for `n` devices: the canaries, then each
/// percentage of `n` rounded up; a wave that would add nobody is left out, and the last
/// ends at `n`.
pub fn wave_ends(n: usize, canary: u32, percents: &[u8]) -> Vec<usize> {
    let mut ends = vec![n.min(usize::try_from(canary).unwrap_or(usize::MAX))];
    for p in percents {
        let end = (n * usize::from(*p)).div_ceil(100).min(n);
        if ends.last().is_some_and(|last| end > *last) {
            ends.push(end);
        }
    }
    if ends.last().is_some_and(|last| *last < n) {
        ends.push(n);
    }
    ends
}

/// The wave of the device at `position`, given [`wave_ends`].
pub fn wave_of(position: usize, ends: &[usize]) -> usize {
    ends.iter().position(|end| position < *end).unwrap_or(ends.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn devices(n: usize) -> Vec<DeviceId> {
        (0..n).filter_map(|i| DeviceId::new(format!("kel-{i:03}")).ok()).collect()
    }

    #[test]
    fn wave_ends_are_cumulative_and_a_wave_that_adds_nobody_is_left_out() {
        assert_eq!(wave_ends(20, 2, &[10, 50, 100]), vec![2, 10, 20]);
        assert_eq!(wave_ends(20, 2, &[25, 50, 100]), vec![2, 5, 10, 20]);
        assert_eq!(wave_ends(1000, 2, &[10, 50, 100]), vec![2, 100, 500, 1000]);
        assert_eq!(wave_ends(1, 2, &[10, 50, 100]), vec![1]);
        assert_eq!(wave_ends(0, 2, &[100]), vec![0]);
        let ends = wave_ends(20, 2, &[25, 50, 100]);
        assert_eq!((wave_of(0, &ends), wave_of(1, &ends), wave_of(2, &ends), wave_of(19, &ends)), (0, 0, 1, 3));
    }

    #[test]
    fn the_order_is_the_same_whatever_order_the_devices_come_in_and_differs_between_rollouts() {
        let mut shuffled = devices(50);
        shuffled.reverse();
        assert_eq!(order(7, devices(50)), order(7, shuffled));
        assert_ne!(order(7, devices(50)), order(8, devices(50)));
        assert_ne!(order(7, devices(50)), devices(50), "not the name order");
    }

    proptest! {
        #[test]
        fn waves_cover_every_device_once_grow_and_none_is_empty(
            n in 0usize..3000,
            canary in 1u32..20,
            mut percents in proptest::collection::vec(1u8..100, 0..5),
        ) {
            percents.sort_unstable();
            percents.dedup();
            percents.push(100);
            let ends = wave_ends(n, canary, &percents);
            prop_assert_eq!(ends.last().copied(), Some(n));
            prop_assert_eq!(ends[0], n.min(canary as usize));
            prop_assert!(ends.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
