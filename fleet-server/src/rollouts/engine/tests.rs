use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::rollouts::{RolloutSpec, plan};

const GATE: i64 = 10_000;
const DEADLINE: i64 = 60_000;

fn rollout(n: usize) -> (Rollout, Vec<RolloutDevice>) {
    let spec = RolloutSpec {
        waves: vec![25, 50, 100],
        gate: Duration::from_millis(GATE as u64),
        deadline: Duration::from_millis(DEADLINE as u64),
        ..RolloutSpec::of("2.0.0")
    };
    let ids = (0..n).filter_map(|i| DeviceId::new(format!("kel-{i:02}")).ok()).collect();
    let ordered = plan::order(1, ids);
    let ends = plan::wave_ends(ordered.len(), spec.canary, &spec.waves);
    let devices = ordered
        .into_iter()
        .enumerate()
        .map(|(i, device)| RolloutDevice {
            device,
            position: i as u32,
            wave: plan::wave_of(i, &ends) as u32,
            state: DeviceState::Pending,
            since_ms: 0,
            ordered_ms: None,
            detail: None,
        })
        .collect();
    let r = Rollout {
        id: 1,
        spec,
        state: RolloutState::Running,
        reason: None,
        wave: 0,
        accepted_failures: 0,
        created_ms: 0,
        created_by: "ops".to_owned(),
        updated_ms: 0,
    };
    (r, devices)
}

/// The fleet's view: what each device last reported.
#[derive(Default)]
struct Fleet {
    seen: HashMap<DeviceId, Observed>,
}

impl Fleet {
    fn runs(&mut self, d: &DeviceId, version: &str, at: i64) {
        let o = self.seen.entry(d.clone()).or_default();
        o.heartbeat = Some((version.to_owned(), at));
        o.online = true;
    }
    fn view(&self, d: &DeviceId) -> Observed {
        self.seen.get(d).cloned().unwrap_or_default()
    }
    fn step(&self, r: &Rollout, ds: &[RolloutDevice], now: i64) -> (Rollout, Vec<RolloutDevice>) {
        step(r, ds, |d| self.view(d), now)
    }
}

fn in_state(ds: &[RolloutDevice], s: DeviceState) -> Vec<DeviceId> {
    ds.iter().filter(|d| d.state == s).map(|d| d.device.clone()).collect()
}

#[test]
fn a_good_release_opens_each_wave_only_after_the_last_one_passed_its_gate() {
    let fleet = &mut Fleet::default();
    let (mut r, mut ds) = rollout(20);
    let mut now = 1000;
    let mut opened = Vec::new();
    for _ in 0..20 {
        (r, ds) = fleet.step(&r, &ds, now);
        let ordered = in_state(&ds, DeviceState::Ordered);
        if !ordered.is_empty() {
            opened.push(ordered.len());
        }
        // Every ordered box updates and heartbeats a second later.
        now += 1000;
        for d in &ordered {
            fleet.runs(d, "2.0.0", now);
        }
        (r, ds) = fleet.step(&r, &ds, now);
        assert!(in_state(&ds, DeviceState::Ordered).is_empty(), "all updated");
        // Before the gate passes nothing new opens.
        now += GATE - 1;
        let (r2, ds2) = fleet.step(&r, &ds, now);
        assert!(in_state(&ds2, DeviceState::Ordered).is_empty() && r2.wave == r.wave, "the gate holds");
        now += 1;
        if r.state == RolloutState::Done {
            break;
        }
        for d in &in_state(&ds, DeviceState::Updated) {
            fleet.runs(d, "2.0.0", now);
        }
    }
    assert_eq!(opened, vec![2, 3, 5, 10], "2 canaries, then up to 25 %, 50 %, 100 %");
    assert_eq!(r.state, RolloutState::Done, "{r:?}");
    assert_eq!(in_state(&ds, DeviceState::Succeeded).len(), 20);
    assert_eq!(r.reason.as_deref(), Some("20 succeeded"));
}

#[test]
fn a_canary_that_rolls_back_pauses_the_rollout_and_nobody_else_is_ordered() {
    let fleet = &mut Fleet::default();
    let (r, ds) = rollout(20);
    let (r, ds) = fleet.step(&r, &ds, 1000);
    let canaries = in_state(&ds, DeviceState::Ordered);
    assert_eq!(canaries.len(), 2);
    fleet.seen.entry(canaries[0].clone()).or_default().verdict =
        Some((DeviceState::RolledBack, "exited 3 times before it was healthy".to_owned()));
    let (r, ds) = fleet.step(&r, &ds, 2000);
    assert_eq!(r.state, RolloutState::Paused);
    assert_eq!(r.reason.as_deref(), Some("1 of 2 devices in wave 0 failed or rolled back (threshold 20%)"));
    assert_eq!(in_state(&ds, DeviceState::RolledBack), vec![canaries[0].clone()]);
    assert_eq!(in_state(&ds, DeviceState::Pending).len(), 18);
    // Paused, it still settles its devices but opens nothing.
    fleet.runs(&canaries[1], "2.0.0", 3000);
    let (r, ds) = fleet.step(&r, &ds, 3000);
    let (r, ds) = fleet.step(&r, &ds, 3000 + GATE + 1);
    assert_eq!(in_state(&ds, DeviceState::Succeeded), vec![canaries[1].clone()]);
    assert_eq!((r.state, in_state(&ds, DeviceState::Pending).len()), (RolloutState::Paused, 18));

    // Ops resume: the failures seen are accepted, and the next wave opens.
    let resumed = Rollout { state: RolloutState::Running, accepted_failures: 1, reason: None, ..r };
    let (r, ds) = fleet.step(&resumed, &ds, 20_000);
    assert_eq!((r.state, r.wave), (RolloutState::Running, 1));
    assert_eq!(in_state(&ds, DeviceState::Ordered).len(), 3);
}

#[test]
fn a_refusal_counts_as_a_failure_with_the_boxes_reason() {
    let fleet = &mut Fleet::default();
    let (r, ds) = rollout(20);
    let (r, ds) = fleet.step(&r, &ds, 1000);
    for d in in_state(&ds, DeviceState::Ordered) {
        fleet.seen.entry(d).or_default().verdict =
            Some((DeviceState::Failed, "signed by a key this box does not trust".into()));
    }
    let (r, ds) = fleet.step(&r, &ds, 2000);
    assert_eq!(r.state, RolloutState::Paused);
    assert!(
        ds.iter()
            .filter(|d| d.state == DeviceState::Failed)
            .all(|d| d.detail.as_deref().is_some_and(|x| x.contains("does not trust")))
    );
}

#[test]
fn an_offline_box_becomes_unreachable_after_the_deadline_without_pausing_the_rollout() {
    let fleet = &mut Fleet::default();
    let (r, ds) = rollout(20);
    let (r, ds) = fleet.step(&r, &ds, 1000);
    let canaries = in_state(&ds, DeviceState::Ordered);
    fleet.runs(&canaries[0], "2.0.0", 2000);
    let (r, ds) = fleet.step(&r, &ds, 2000);
    let (r, ds) = fleet.step(&r, &ds, 2000 + GATE);
    assert_eq!(
        (r.wave, in_state(&ds, DeviceState::Ordered)),
        (0, vec![canaries[1].clone()]),
        "the offline canary holds the wave"
    );
    let (r, ds) = fleet.step(&r, &ds, 1000 + DEADLINE + 1);
    assert_eq!(in_state(&ds, DeviceState::Unreachable), vec![canaries[1].clone()]);
    assert_eq!((r.state, r.wave), (RolloutState::Running, 1), "not a failure: the next wave opened");
    // Back online on the new version later, it still counts as succeeded.
    fleet.runs(&canaries[1], "2.0.0", 70_000);
    let (r, ds) = fleet.step(&r, &ds, 70_000);
    let (_, ds) = fleet.step(&r, &ds, 70_000 + GATE);
    assert!(in_state(&ds, DeviceState::Succeeded).contains(&canaries[1]));
}

#[test]
fn a_box_that_reports_the_new_version_during_its_trial_then_rolls_back_counts_as_rolled_back() {
    let fleet = &mut Fleet::default();
    let (r, ds) = rollout(20);
    let (r, ds) = fleet.step(&r, &ds, 1000);
    let canary = in_state(&ds, DeviceState::Ordered)[0].clone();
    fleet.runs(&canary, "2.0.0", 1500);
    let (r, ds) = fleet.step(&r, &ds, 1500);
    assert!(in_state(&ds, DeviceState::Updated).contains(&canary));
    fleet.runs(&canary, "1.0.0", 1800);
    fleet.seen.entry(canary.clone()).or_default().verdict =
        Some((DeviceState::RolledBack, "not healthy in time".into()));
    let (r, ds) = fleet.step(&r, &ds, 1800);
    assert_eq!(in_state(&ds, DeviceState::RolledBack), vec![canary]);
    assert_eq!(r.state, RolloutState::Paused);
}

#[test]
fn an_old_heartbeat_from_before_the_order_is_not_taken_as_the_update() {
    let fleet = &mut Fleet::default();
    let (r, ds) = rollout(4);
    // Already on 2.0.0 (by hand), but its last heartbeat is from before the order.
    for d in &ds {
        fleet.runs(&d.device, "2.0.0", 500);
    }
    let (r, ds) = fleet.step(&r, &ds, 1000);
    let (_, ds) = fleet.step(&r, &ds, 1000);
    assert_eq!(in_state(&ds, DeviceState::Ordered).len(), 2, "waits for a heartbeat after the order");
}

#[test]
fn an_aborted_rollout_opens_nothing() {
    let fleet = &mut Fleet::default();
    let (r, ds) = rollout(20);
    let aborted = Rollout { state: RolloutState::Aborted, ..r };
    let (r, ds) = fleet.step(&aborted, &ds, 1000);
    assert_eq!((r.state, in_state(&ds, DeviceState::Pending).len()), (RolloutState::Aborted, 20));
}
