//! Shared test helpers: arbitrary batches and a hand-written body builder.
#![allow(dead_code)]

use proptest::prelude::*;
use simpul_protocol::{BootId, Reading, ReadingBatch, ReadingTime, SeqRange};

/// A value: mostly decimal-like at the series' own resolution, sometimes anything.
fn value(decimals: u32) -> impl Strategy<Value = f64> {
    let p = 10f64.powi(decimals as i32);
    prop_oneof![
        20 => (-1_000_000_000i64..1_000_000_000).prop_map(move |i| i as f64 / p),
        1 => prop_oneof![
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MAX),
            Just(1e300),
            Just(9.3e18),
            any::<f32>().prop_map(f64::from),
        ],
        1 => any::<f64>(),
    ]
}

/// How far seq moves: mostly by one, sometimes a gap, now and then a leap.
fn seq_step() -> impl Strategy<Value = u64> {
    prop_oneof![8 => Just(1u64), 2 => 2u64..100, 1 => (1u64 << 40)..(1u64 << 41)]
}

/// A time step: mostly small and forward, sometimes backwards or wild.
fn time_step() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 990i64..1010, 1 => -100_000i64..100_000, 1 => any::<i64>()]
}

/// Text: any Unicode, empty included.
fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

/// A reading's parts before seqs and times are accumulated.
type Draft = (usize, u64, f64, bool, usize, i64, i64);

/// Arbitrary batches: many series and boots, NaN/inf/-0.0/huge/decimal values, seq gaps,
/// times that jump backwards, dropped ranges.
pub fn batches() -> impl Strategy<Value = ReadingBatch> {
    let series = prop::collection::vec((text(), text(), text()), 1..10);
    let boots = prop::collection::vec(any::<[u8; 16]>(), 1..4);
    let dropped = prop::collection::vec((any::<u64>(), any::<u64>()), 0..4);
    (series, boots, dropped, 0u64..(u64::MAX / 2), any::<i64>(), any::<u64>())
        .prop_flat_map(|(series, boots, dropped, seq0, wall0, mono0)| {
            let (n_series, n_boots) = (series.len(), boots.len());
            let draft = (0..n_series).prop_flat_map(move |s| {
                (Just(s), seq_step(), value(s as u32 % 10), any::<bool>(), 0..n_boots, time_step(), time_step())
            });
            let drafts = prop::collection::vec(draft, 0..120);
            (Just(series), Just(boots), Just(dropped), Just((seq0, wall0, mono0)), drafts)
        })
        .prop_map(|(series, boots, dropped, (seq0, wall0, mono0), drafts)| {
            let (mut seq, mut wall, mut mono) = (seq0, wall0, mono0);
            let readings = drafts
                .into_iter()
                .map(|(s, step, value, synced, b, dwall, dmono): Draft| {
                    seq += step;
                    wall = wall.wrapping_add(dwall);
                    mono = mono.wrapping_add(dmono as u64);
                    let (sensor, metric, unit) = series[s].clone();
                    Reading {
                        seq,
                        sensor,
                        metric,
                        unit,
                        value,
                        time: ReadingTime { wall_ms: wall, synced, boot_id: BootId(boots[b]), mono_ms: mono },
                    }
                })
                .collect();
            let dropped = dropped.into_iter().map(|(a, b)| SeqRange { first: a.min(b), last: a.max(b) }).collect();
            ReadingBatch { readings, dropped }
        })
}

/// The payload with its body uncompressed (flags 0), so mutations reach the parser.
pub fn uncompressed(payload: &[u8]) -> Vec<u8> {
    if payload.get(1) != Some(&1) {
        return payload.to_vec();
    }
    let body = zstd::bulk::decompress(&payload[2..], 16 << 20).expect("our own zstd body");
    [&[1u8, 0][..], &body].concat()
}

/// Builds payloads by hand, byte by byte, for the error tests.
#[derive(Default)]
pub struct Body(pub Vec<u8>);

impl Body {
    /// An uncompressed version-1 payload.
    pub fn new() -> Self {
        Body(vec![1, 0])
    }
    pub fn varint(mut self, mut v: u64) -> Self {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// One series named `s`/`m`/`u` with the given value coding.
    pub fn series(self, coding: u8) -> Self {
        self.bytes(&[1, b's', 1, b'm', 1, b'u', coding])
    }
    /// One boot id.
    pub fn boot(self) -> Self {
        self.bytes(&[0xab; 16])
    }
}
