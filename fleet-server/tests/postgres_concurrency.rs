//! Two fleet processes on one PostgreSQL database: their ingest commits of the same
//! devices, interleaved and repeated, store each reading once, give cursors in commit
//! order without gaps, and a reader paging by cursor meanwhile sees every row once.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use simpul_fleet::protocol::DeviceId;
use simpul_fleet::store::postgres::{PgStore, PgTarget};
use simpul_fleet::store::{Inbound, Store};
use simpul_tests::Postgres;

const DEVICES: usize = 5;
const SEQS: u64 = 2000;
const CHUNK: u64 = 50;
const NOW: i64 = 1_795_000_000_000;

fn device(i: usize) -> DeviceId {
    DeviceId::new(format!("kel-{i}")).unwrap()
}

/// Chunk `k` (seqs `k*CHUNK+1 ..= (k+1)*CHUNK`) of every device, in `order`.
fn chunk(k: u64, order: impl Iterator<Item = usize>) -> Vec<Inbound> {
    let seqs = k * CHUNK + 1..=(k + 1) * CHUNK;
    order.map(|i| Inbound::Readings { device: device(i), batch: common::batch(seqs.clone()) }).collect()
}

#[test]
fn two_fleet_processes_committing_the_same_devices_store_each_reading_once_in_cursor_order() {
    let pg = Postgres::start().unwrap();
    let url = PgTarget::plain(&pg.url()).unwrap();
    let a = Arc::new(PgStore::open(&url).unwrap());
    let b = Arc::new(PgStore::open(&url).unwrap());
    let chunks = SEQS / CHUNK;
    let total = DEVICES as u64 * SEQS;
    let done = Arc::new(AtomicBool::new(false));

    // A pager, as the webhook delivery would: by cursor, while the commits run.
    let pager = {
        let store = PgStore::open(&url).unwrap();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut seen: Vec<(u64, String, u64)> = Vec::new();
            let mut after = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.readings_after(after, 97).unwrap();
                for r in &page {
                    assert_eq!(r.cursor, after + 1, "the pager sees no gap: after {after} came {}", r.cursor);
                    after = r.cursor;
                    seen.push((r.cursor, r.device.clone(), r.seq));
                }
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    assert!(Instant::now() < deadline, "the pager saw {} rows by the deadline", seen.len());
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };

    // Process A sends each chunk once, devices in order; process B sends each chunk with the
    // one before it again (a resend), devices in reverse: every batch reaches both.
    let writer_a = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || {
            let mut stored = 0;
            for k in 0..chunks {
                stored += a.commit(&chunk(k, 0..DEVICES), NOW).unwrap().stored;
            }
            stored
        })
    };
    let writer_b = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || {
            let mut stored = 0;
            for k in 0..chunks {
                let mut items = chunk(k, (0..DEVICES).rev());
                if k > 0 {
                    items.extend(chunk(k - 1, (0..DEVICES).rev()));
                }
                let out = b.commit(&items, NOW).unwrap();
                assert_eq!(out.acks.len(), DEVICES, "every device is acked");
                stored += out.stored;
            }
            stored
        })
    };
    let stored = writer_a.join().unwrap() + writer_b.join().unwrap();
    done.store(true, Ordering::SeqCst);
    let seen = pager.join().unwrap();

    assert_eq!(stored, total, "`stored` counts each reading once across both processes");
    let cursors: Vec<u64> = seen.iter().map(|(c, _, _)| *c).collect();
    assert_eq!(cursors, (1..=total).collect::<Vec<_>>(), "cursors 1..=N, strictly increasing, no gaps");
    let unique: HashSet<(&str, u64)> = seen.iter().map(|(_, d, s)| (d.as_str(), *s)).collect();
    assert_eq!(unique.len() as u64, total, "each (device, seq) stored exactly once");
    for i in 0..DEVICES {
        let seqs: Vec<u64> = seen.iter().filter(|(_, d, _)| *d == device(i).as_str()).map(|(_, _, s)| *s).collect();
        assert_eq!(seqs, (1..=SEQS).collect::<Vec<_>>(), "kel-{i}: each seq once, in commit order");
        for store in [&a, &b] {
            let summary = store.device(&device(i)).unwrap().unwrap();
            assert_eq!((summary.watermark, summary.readings_stored), (SEQS, SEQS), "kel-{i}");
        }
    }
    assert_eq!(a.delivery_head().unwrap(), total);
    assert_eq!(b.readings_after(total, 10).unwrap(), vec![]);
}
