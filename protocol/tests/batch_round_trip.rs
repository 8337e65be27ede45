//! Any batch decodes to exactly itself, values compared by bits.

mod common;

use proptest::prelude::*;
use simpul_protocol::batch::{FLAG_ZSTD, FORMAT_VERSION};
use simpul_protocol::{BootId, Reading, ReadingBatch, ReadingTime, SeqRange};

fn reading(seq: u64, sensor: &str, value: f64, wall_ms: i64, mono_ms: u64) -> Reading {
    Reading {
        seq,
        sensor: sensor.into(),
        metric: "level".into(),
        unit: "cm".into(),
        value,
        time: ReadingTime { wall_ms, synced: true, boot_id: BootId([7; 16]), mono_ms },
    }
}

fn assert_round_trips(batch: &ReadingBatch) -> Vec<u8> {
    let bytes = batch.encode();
    let back = ReadingBatch::decode(&bytes).expect("decodes");
    assert!(back.bitwise_eq(batch), "{batch:#?}\nbecame\n{back:#?}");
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_batch_decodes_to_exactly_itself(batch in common::batches()) {
        let back = ReadingBatch::decode(&batch.encode());
        prop_assert!(back.as_ref().is_ok_and(|b| b.bitwise_eq(&batch)), "{batch:#?}\nbecame\n{back:#?}");
    }
}

#[test]
fn an_empty_batch_round_trips_in_a_few_bytes() {
    let bytes = assert_round_trips(&ReadingBatch::default());
    assert_eq!(bytes, [FORMAT_VERSION, 0, 0, 0, 0, 0]);
}

#[test]
fn nan_infinities_and_negative_zero_survive_bit_for_bit() {
    let odd =
        [f64::NAN, -f64::NAN, f64::from_bits(0x7ff8_dead_beef_0001), f64::INFINITY, -0.0, f64::MIN_POSITIVE / 2.0];
    let readings = odd.iter().enumerate().map(|(i, &v)| reading(i as u64, "x", v, 0, 0)).collect();
    assert_round_trips(&ReadingBatch { readings, dropped: vec![] });
}

#[test]
fn seqs_and_times_at_the_ends_of_their_ranges_round_trip() {
    let readings = vec![
        reading(0, "a", 1.5, i64::MIN, u64::MAX),
        reading(u64::MAX - 1, "a", -2.5, i64::MAX, 0),
        reading(u64::MAX, "b", 1e-9, -1, 1),
    ];
    let dropped = vec![SeqRange { first: 0, last: u64::MAX }, SeqRange { first: 9, last: 9 }];
    assert_round_trips(&ReadingBatch { readings, dropped });
}

#[test]
fn a_clock_that_jumps_backwards_round_trips() {
    let walls = [1_700_000_000_000, 1_700_000_001_000, 3_000, 4_000, 1_700_000_002_000];
    let readings = walls.iter().enumerate().map(|(i, &w)| reading(i as u64, "a", 0.1, w, i as u64 * 1000)).collect();
    assert_round_trips(&ReadingBatch { readings, dropped: vec![] });
}

#[test]
fn a_steady_decimal_series_is_compressed_below_two_bytes_a_reading() {
    let readings: Vec<Reading> = (0..600)
        .map(|i| {
            reading(
                1000 + i,
                "level",
                (1234 + i as i64 % 7) as f64 / 10.0,
                1_700_000_000_000 + i as i64 * 1000,
                5_000 + i * 1000,
            )
        })
        .collect();
    let bytes = assert_round_trips(&ReadingBatch { readings, dropped: vec![] });
    assert_eq!(bytes[1], FLAG_ZSTD);
    assert!(bytes.len() < 2 * 600, "{} bytes", bytes.len());
}

#[test]
fn a_single_small_reading_is_not_worth_compressing() {
    let bytes = assert_round_trips(&ReadingBatch { readings: vec![reading(1, "a", 12.3, 1, 2)], dropped: vec![] });
    assert_eq!(bytes[1], 0);
}

#[test]
fn bitwise_equality_treats_nan_as_itself_and_tells_the_zeros_apart() {
    let one = |v| ReadingBatch { readings: vec![reading(1, "a", v, 0, 0)], dropped: vec![] };
    assert!(one(f64::NAN).bitwise_eq(&one(f64::NAN)));
    assert!(!one(0.0).bitwise_eq(&one(-0.0)));
    assert!(!one(1.0).bitwise_eq(&ReadingBatch::default()));
}
