//! One step of a rollout, as a pure function of its state, its devices and what the fleet
//! observed of them (docs/design/updates.md, "The engine"). The store runs it inside one
//! transaction and writes what changed, so every fleet server takes the same steps and a
//! restart loses nothing.

use simpul_protocol::DeviceId;

use super::{DeviceState, Observed, Rollout, RolloutDevice, RolloutState};

/// The rollout and its devices after one step at `now_ms`:
///
/// 1. each ordered or updated device is settled from what it reported since;
/// 2. a running rollout whose open wave has more failures than its threshold pauses;
/// 3. a running rollout whose open wave (and every one before) is settled opens the next
///    one, ordering its devices; after the last it is done.
///
/// A paused or aborted rollout still settles its devices (so its progress stays true)
/// but opens nothing.
pub fn step(
    rollout: &Rollout,
    devices: &[RolloutDevice],
    observe: impl Fn(&DeviceId) -> Observed,
    now_ms: i64,
) -> (Rollout, Vec<RolloutDevice>) {
    let mut r = rollout.clone();
    let mut ds = devices.to_vec();
    for d in ds.iter_mut().filter(|d| d.wave <= r.wave) {
        settle(d, &observe(&d.device), &r, now_ms);
    }
    if r.state != RolloutState::Running {
        return (r, ds);
    }
    let last_wave = ds.iter().map(|d| d.wave).max().unwrap_or(0);
    loop {
        for d in ds.iter_mut().filter(|d| d.wave <= r.wave && d.state == DeviceState::Pending) {
            d.state = DeviceState::Ordered;
            d.since_ms = now_ms;
            d.ordered_ms = Some(now_ms);
        }
        let open: Vec<&RolloutDevice> = ds.iter().filter(|d| d.wave == r.wave).collect();
        let failed = open.iter().filter(|d| d.state.is_failure()).count();
        let counted = failed.saturating_sub(usize::try_from(r.accepted_failures).unwrap_or(usize::MAX));
        if counted * 100 > usize::from(r.spec.failure_threshold) * open.len() {
            r.state = RolloutState::Paused;
            r.reason = Some(format!(
                "{failed} of {} devices in wave {} failed or rolled back (threshold {}%)",
                open.len(),
                r.wave,
                r.spec.failure_threshold
            ));
            break;
        }
        if !ds.iter().filter(|d| d.wave <= r.wave).all(|d| d.state.is_settled()) {
            break;
        }
        if r.wave >= last_wave {
            r.state = RolloutState::Done;
            r.reason = Some(summary(&ds));
            break;
        }
        r.wave += 1;
        r.accepted_failures = 0;
    }
    if r != *rollout {
        r.updated_ms = now_ms;
    }
    (r, ds)
}

/// "18 succeeded, 2 rolled back".
pub fn summary(devices: &[RolloutDevice]) -> String {
    let parts: Vec<String> = DeviceState::ALL
        .into_iter()
        .filter_map(|s| {
            let n = devices.iter().filter(|d| d.state == s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str().replace('_', " ")))
        })
        .collect();
    if parts.is_empty() { "no devices".to_owned() } else { parts.join(", ") }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Moves one device on from what the fleet observed.
fn settle(d: &mut RolloutDevice, o: &Observed, r: &Rollout, now_ms: i64) {
    let version = r.spec.version.as_str();
    let ordered = d.ordered_ms.unwrap_or(d.since_ms);
    let to = |d: &mut RolloutDevice, state: DeviceState, detail: Option<String>| {
        d.state = state;
        d.since_ms = now_ms;
        d.detail = detail;
    };
    let runs_it_since = |at: i64| o.heartbeat.as_ref().is_some_and(|(v, t)| v == version && *t >= at);
    match d.state {
        DeviceState::Ordered | DeviceState::Unreachable | DeviceState::Updated if o.verdict.is_some() => {
            if let Some((state, reason)) = &o.verdict {
                to(d, *state, Some(reason.clone()));
            }
        }
        DeviceState::Ordered | DeviceState::Unreachable if runs_it_since(ordered) => {
            to(d, DeviceState::Updated, None);
        }
        DeviceState::Ordered if now_ms.saturating_sub(ordered) > millis(r.spec.deadline) => {
            let why = format!("did not report {version} within {}", humantime::format_duration(r.spec.deadline));
            to(d, DeviceState::Unreachable, Some(why));
        }
        DeviceState::Updated if now_ms.saturating_sub(d.since_ms) >= millis(r.spec.gate) => {
            let in_gate = now_ms.saturating_sub(d.since_ms);
            match &o.heartbeat {
                Some((v, _)) if v == version && o.online => to(d, DeviceState::Succeeded, None),
                Some((v, at)) if v != version && *at >= d.since_ms => {
                    to(d, DeviceState::Failed, Some(format!("reports {v} again after it updated")));
                }
                _ if in_gate > millis(r.spec.gate).saturating_add(millis(r.spec.deadline)) => {
                    to(d, DeviceState::Unreachable, Some("went offline after it updated".to_owned()));
                }
                _ => {}
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
