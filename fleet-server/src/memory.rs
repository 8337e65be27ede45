//! Giving freed heap back to the system.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena and returns it to the
//! system only from the arena's top. A reconnect storm frees the state of tens of thousands
//! of failed handshakes between the allocations of connections that stay, and those holes
//! stay resident: at 10,000 boxes 248 MB were in use and 360 MB taken from the system
//! (docs/design/scale-out.md §1b). `malloc_trim(0)` gives every whole free page back; this
//! task calls it when the process holds much more than its heap uses.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the heap is looked at. `mallinfo2` walks the free lists: a few ms at most.
/// A storm's churn builds slack in seconds, so this is short.
const EVERY: Duration = Duration::from_secs(1);

/// Resident beyond the heap in use that is worth a trim. The binary, stacks and other
/// mappings are about 20 MB of a fleet's resident memory; the rest of the margin is free
/// heap.
const SLACK: u64 = 36 << 20;

/// Runs until `shutdown`: every [`EVERY`], a trim if resident memory exceeds the heap in
/// use by more than [`SLACK`]. Does nothing where the allocator is not glibc's.
pub async fn trim_while_running(shutdown: CancellationToken) {
    if !glibc::AVAILABLE {
        return;
    }
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let trimmed = tokio::task::spawn_blocking(trim_if_worthwhile).await;
        if let Ok(Some(t)) = trimmed {
            tracing::debug!(
                before_mb = t.before >> 20,
                after_mb = t.after >> 20,
                took_ms = t.took.as_millis() as u64,
                "freed heap given back to the system"
            );
        }
    }
}

/// A trim done: resident bytes before and after, and how long it held the allocator.
struct Trimmed {
    before: u64,
    after: u64,
    took: Duration,
}

fn trim_if_worthwhile() -> Option<Trimmed> {
    let before = resident()?;
    if before.saturating_sub(glibc::heap_in_use()) <= SLACK {
        return None;
    }
    let started = std::time::Instant::now();
    glibc::trim();
    let took = started.elapsed();
    Some(Trimmed { before, after: resident().unwrap_or(before), took })
}

/// This process's resident set, bytes (`VmRSS` in `/proc/self/status`).
fn resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim();
    Some(kib.parse::<u64>().ok()? << 10)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    pub const AVAILABLE: bool = true;

    /// Heap bytes in use: small chunks plus mmapped large ones.
    #[allow(unsafe_code)]
    pub fn heap_in_use() -> u64 {
        // SAFETY: mallinfo2 takes no arguments, returns a plain struct by value and is
        // thread-safe (it locks each arena it walks); glibc >= 2.33 (Debian 12 has 2.36).
        let info = unsafe { libc::mallinfo2() };
        (info.uordblks + info.hblkhd) as u64
    }

    /// Returns every whole free page of every arena to the system.
    #[allow(unsafe_code)]
    pub fn trim() {
        // SAFETY: malloc_trim takes a size, touches only the allocator's own state under
        // its locks, and is thread-safe.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub const AVAILABLE: bool = false;
    pub fn heap_in_use() -> u64 {
        0
    }
    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_heap_beyond_the_slack_is_given_back() {
        if !glibc::AVAILABLE {
            return;
        }
        // Many small blocks, every other one freed: holes a trim can give back only page
        // by page, as a storm's failed handshakes leave them.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 8 << 10]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(2).map(std::mem::take).collect();
        drop(blocks);
        let Trimmed { before, after, .. } = trim_if_worthwhile().expect("160 MB freed is worth a trim");
        assert!(after + (50 << 20) < before, "resident {before} -> {after}");
        assert_eq!(kept.len(), 20_000);
    }
}
