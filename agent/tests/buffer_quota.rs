//! The disk quota: the file stays near it, eviction follows the policy, and every
//! evicted reading is counted and reported.

mod buffer_support;

use std::collections::BTreeMap;

use simpul_agent::buffer::{Buffer, BufferStats};
use simpul_agent::config::Eviction;
use simpul_protocol::SeqRange;

use buffer_support::{options, samples, temp_buffer_path};

const QUOTA: u64 = 256 * 1024;
/// How far past the quota the files on disk may go: one append's batch is written
/// before eviction makes room, and B-tree pages are never perfectly full.
const MARGIN: u64 = 64 * 1024;
const SENSORS: &[&str] = &["level-1", "level-2", "rain"];
const BATCH: usize = 100;
const BATCHES: usize = 200;
const APPENDED: u64 = (BATCH * BATCHES) as u64;

/// Appends `BATCHES` batches and returns the largest on-disk size seen after an append
/// and how many samples of each sensor were appended.
fn fill(buffer: &mut Buffer) -> (u64, BTreeMap<String, u64>) {
    let mut largest = 0;
    let mut appended = BTreeMap::new();
    for b in 0..BATCHES {
        let start = (b * BATCH) as i64 * 1000;
        let batch = samples(SENSORS, start, BATCH);
        for s in &batch {
            *appended.entry(s.sensor.to_string()).or_insert(0) += 1;
        }
        buffer.append(batch).expect("append");
        largest = largest.max(buffer.stats().expect("stats").file_bytes);
    }
    (largest, appended)
}

/// Every seq given is held, evicted (in a dropped range) or acknowledged: none missing,
/// none twice.
fn assert_seqs_accounted_for(buffer: &Buffer, acked_through: u64) {
    let stats = buffer.stats().expect("stats");
    let all = buffer.read_batch(acked_through, usize::MAX).expect("read_batch");
    let mut seen = vec![0u8; usize::try_from(stats.next_seq).expect("small")];
    for r in &all.readings {
        seen[r.seq as usize] += 1;
    }
    for SeqRange { first, last } in &all.dropped {
        for s in *first..=*last {
            seen[s as usize] += 1;
        }
    }
    for (seq, n) in seen.iter().enumerate().skip(1) {
        let want = u8::from(seq as u64 > acked_through);
        assert_eq!(*n, want, "seq {seq} seen {n} times");
    }
    // Ranges are disjoint and never adjacent (coalesced).
    for pair in all.dropped.windows(2) {
        assert!(pair[0].last + 1 < pair[1].first, "ranges not coalesced: {pair:?}");
    }
}

/// Per sensor, held + evicted is what was appended, and the evicted counts match what
/// is missing from the held readings.
fn assert_counts_exact(buffer: &Buffer, appended: &BTreeMap<String, u64>) {
    let stats = buffer.stats().expect("stats");
    let mut total = BTreeMap::new();
    for (s, n) in stats.readings_by_sensor.iter().chain(&stats.dropped_by_sensor) {
        *total.entry(s.clone()).or_insert(0) += n;
    }
    assert_eq!(&total, appended, "held + dropped by sensor");
    let mut held = BTreeMap::new();
    for r in buffer.read_batch(0, usize::MAX).expect("read_batch").readings {
        *held.entry(r.sensor).or_insert(0) += 1;
    }
    assert_eq!(held, stats.readings_by_sensor, "readings by sensor");
    assert_eq!(stats.dropped_total, stats.dropped_by_sensor.values().sum::<u64>());
}

/// A buffer with the test quota after appending far more than fits, checked for what
/// every policy promises: within quota plus the margin, newest kept, counts exact.
struct Overflowed {
    _dir: tempfile::TempDir,
    buffer: Buffer,
    stats: BufferStats,
}

fn overflow_quota(eviction: Eviction) -> Overflowed {
    let (dir, path) = temp_buffer_path();
    let mut buffer = Buffer::open(&path, options(QUOTA, eviction)).expect("open");
    let (largest, appended_by_sensor) = fill(&mut buffer);
    let stats = buffer.stats().expect("stats");
    println!("{eviction:?}: largest on disk {largest} B, final {stats:#?}");
    assert!(largest <= QUOTA + MARGIN, "file reached {largest} B, quota {QUOTA} + margin {MARGIN}");
    assert!(stats.dropped_total > 0, "the test must overflow the quota");
    assert_eq!(stats.last_seq, Some(APPENDED), "the newest reading is kept");
    assert_counts_exact(&buffer, &appended_by_sensor);
    assert_seqs_accounted_for(&buffer, 0);
    Overflowed { _dir: dir, buffer, stats }
}

#[test]
fn oldest_first_keeps_the_file_within_quota_and_keeps_the_newest() {
    let Overflowed { _dir, buffer, stats } = overflow_quota(Eviction::OldestFirst);
    // Oldest-first keeps a contiguous tail and one dropped range before it.
    let first = stats.first_seq.expect("readings held");
    assert_eq!(stats.readings, APPENDED - first + 1);
    let batch = buffer.read_batch(0, usize::MAX).expect("read_batch");
    assert_eq!(batch.dropped, vec![SeqRange { first: 1, last: first - 1 }]);
}

#[test]
fn thin_oldest_keeps_the_file_within_quota_and_keeps_the_time_span() {
    let Overflowed { _dir, buffer, stats } = overflow_quota(Eviction::ThinOldest);
    let all = buffer.read_batch(0, usize::MAX).expect("read_batch");
    // Each sensor's first reading is still there: the time span is kept.
    for (i, sensor) in SENSORS.iter().enumerate() {
        let first = all.readings.iter().find(|r| r.sensor == *sensor).expect("sensor kept");
        assert_eq!(first.seq, i as u64 + 1, "{sensor}'s oldest reading is kept");
    }
    assert_eq!(stats.oldest_wall_ms, Some(0));
    // And the kept readings get sparser towards the old end.
    let half = all.readings.len() / 2;
    let old_span = all.readings[half].seq - all.readings[0].seq;
    let new_span = all.readings[all.readings.len() - 1].seq - all.readings[half].seq;
    assert!(old_span > new_span, "old half spans {old_span} seqs, new half {new_span}");
}

#[test]
fn delete_through_removes_acknowledged_dropped_ranges() {
    for eviction in [Eviction::OldestFirst, Eviction::ThinOldest] {
        let Overflowed { _dir, mut buffer, .. } = overflow_quota(eviction);
        let before = buffer.read_batch(0, usize::MAX).expect("read_batch");
        let first_range = *before.dropped.first().expect("something was dropped");
        // Acknowledge into the middle of the first dropped range: its upper part stays.
        let watermark = first_range.first + (first_range.last - first_range.first) / 2;
        buffer.delete_through(watermark).expect("delete_through");
        let after = buffer.read_batch(watermark, usize::MAX).expect("read_batch");
        assert!(after.dropped.iter().all(|r| r.first > watermark), "{eviction:?}: {:?}", after.dropped);
        if first_range.last > watermark {
            assert_eq!(after.dropped[0], SeqRange { first: watermark + 1, last: first_range.last });
        }
        assert_seqs_accounted_for(&buffer, watermark);
        // Acknowledge everything: no ranges, no readings, counts of what was evicted stay.
        let last = buffer.stats().expect("stats").next_seq - 1;
        buffer.delete_through(last).expect("delete_through");
        let stats = buffer.stats().expect("stats");
        assert_eq!((stats.readings, stats.dropped_ranges), (0, 0), "{eviction:?}");
        assert!(stats.dropped_total > 0);
        assert!(buffer.read_batch(0, usize::MAX).expect("read_batch").dropped.is_empty());
    }
}

#[test]
fn a_batch_read_reports_the_dropped_ranges_among_its_readings() {
    let Overflowed { _dir, buffer, .. } = overflow_quota(Eviction::ThinOldest);
    let batch = buffer.read_batch(0, 10).expect("read_batch");
    let last = batch.readings.last().expect("readings").seq;
    assert!(!batch.dropped.is_empty());
    assert!(batch.dropped.iter().all(|r| r.first >= 1 && r.last < last), "{:?} within ..{last}", batch.dropped);
    // The readings and ranges of the batch cover 1..=last exactly.
    let covered: u64 = batch.readings.len() as u64 + batch.dropped.iter().map(|r| r.last - r.first + 1).sum::<u64>();
    assert_eq!(covered, last);
}
