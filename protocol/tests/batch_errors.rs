//! Every way a payload can be refused, one test each.

mod common;

use common::Body;
use simpul_protocol::batch::{MAX_BODY_BYTES, MAX_SERIES, MAX_TEXT_LEN};
use simpul_protocol::{BootId, DecodeError, Reading, ReadingBatch, ReadingTime};

fn decode(bytes: &[u8]) -> Result<ReadingBatch, DecodeError> {
    ReadingBatch::decode(bytes)
}

fn reading(seq: u64, sensor: &str) -> Reading {
    Reading {
        seq,
        sensor: sensor.into(),
        metric: "m".into(),
        unit: "u".into(),
        value: 1.0,
        time: ReadingTime { wall_ms: 0, synced: false, boot_id: BootId([1; 16]), mono_ms: 0 },
    }
}

/// A body with one series of `coding`, one boot, no drops, and one reading of `flags`.
fn one_reading(coding: u8, flags: u64) -> Body {
    Body::new()
        .varint(1)
        .series(coding)
        .varint(1)
        .boot()
        .varint(0)
        .varint(1)
        .varint(5) // seq
        .varint(flags)
        .varint(0) // mono
        .varint(0) // offset
}

#[test]
fn a_hand_built_body_decodes_as_the_layout_says() {
    let batch = decode(&one_reading(1, 0b1).varint(246).0).expect("valid");
    let r = &batch.readings[0];
    assert_eq!((r.seq, r.sensor.as_str(), r.value, r.time.synced), (5, "s", 12.3, true));
}

#[test]
fn an_empty_payload_is_refused_as_empty() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn a_batch_from_a_newer_agent_is_refused_with_its_version() {
    assert_eq!(decode(&[2, 0, 0xde, 0xad]), Err(DecodeError::UnsupportedVersion(2)));
    assert_eq!(decode(&[255]), Err(DecodeError::UnsupportedVersion(255)));
}

#[test]
fn flag_bits_this_version_does_not_define_are_refused() {
    assert_eq!(decode(&[1, 0b10, 0, 0, 0, 0]), Err(DecodeError::UnknownFlags(0b10)));
}

#[test]
fn a_payload_cut_short_is_truncated() {
    assert_eq!(decode(&[1]), Err(DecodeError::Truncated));
    let full = one_reading(1, 0).varint(246).0;
    assert_eq!(decode(&full[..full.len() - 1]), Err(DecodeError::Truncated));
}

#[test]
fn a_count_the_remaining_bytes_cannot_hold_is_truncated_before_any_allocation() {
    assert_eq!(decode(&Body::new().varint(4000).0), Err(DecodeError::Truncated));
    let readings = Body::new().varint(0).varint(0).varint(0).varint(99_999).bytes(&[0; 64]);
    assert_eq!(decode(&readings.0), Err(DecodeError::Truncated));
}

#[test]
fn a_count_beyond_the_format_limit_is_too_large() {
    let series = Body::new().varint(MAX_SERIES as u64 + 1).bytes(&vec![0; 5 * MAX_SERIES]);
    assert_eq!(decode(&series.0), Err(DecodeError::TooLarge("series table")));
    let long_name = Body::new().varint(1).varint(MAX_TEXT_LEN as u64 + 1).bytes(&[b'a'; 300]);
    assert_eq!(decode(&long_name.0), Err(DecodeError::TooLarge("sensor")));
}

#[test]
fn a_payload_that_would_expand_to_too_much_text_is_too_large() {
    let name = "x".repeat(MAX_TEXT_LEN);
    let readings =
        (0..22_000).map(|i| Reading { metric: name.clone(), unit: name.clone(), ..reading(i, &name) }).collect();
    let bytes = ReadingBatch { readings, dropped: vec![] }.encode();
    assert!(bytes.len() < 4096, "the payload itself is small: {} bytes", bytes.len());
    assert_eq!(decode(&bytes), Err(DecodeError::TooLarge("decoded text")));
}

#[test]
fn a_body_larger_than_the_limit_is_too_large() {
    let huge = [&[1u8, 0][..], &vec![0; MAX_BODY_BYTES + 1]].concat();
    assert_eq!(decode(&huge), Err(DecodeError::TooLarge("body")));
}

#[test]
fn a_zstd_bomb_beyond_the_limit_is_a_decompress_error() {
    let bomb = zstd::bulk::compress(&vec![0; MAX_BODY_BYTES + 1], 1).expect("compress");
    assert!(bomb.len() < 4096);
    assert!(matches!(decode(&[&[1u8, 1][..], &bomb].concat()), Err(DecodeError::Decompress(_))));
}

#[test]
fn a_corrupt_zstd_body_is_a_decompress_error() {
    assert!(matches!(decode(&[1, 1, 0x28, 0xb5, 0x2f, 0xfd, 0xff]), Err(DecodeError::Decompress(_))));
}

#[test]
fn a_reading_of_a_series_the_table_lacks_is_a_bad_index() {
    let two_series = Body::new().varint(2).series(0).series(0).varint(1).boot().varint(0).varint(1).varint(5).varint(2); // series index 2 of 2
    assert_eq!(
        decode(&[&two_series.0[..], &[0; 8]].concat()),
        Err(DecodeError::BadIndex { table: "series", index: 2 })
    );
    let no_series = Body::new().varint(0).varint(1).boot().varint(0).varint(1).bytes(&[0; 8]);
    assert_eq!(decode(&no_series.0), Err(DecodeError::BadIndex { table: "series", index: 0 }));
}

#[test]
fn a_reading_of_a_boot_the_table_lacks_is_a_bad_index() {
    let bytes = one_reading(0, 1 << 1).varint(0).0;
    assert_eq!(decode(&bytes), Err(DecodeError::BadIndex { table: "boot", index: 1 }));
}

#[test]
fn an_unknown_value_coding_is_refused() {
    assert_eq!(decode(&one_reading(10, 0).varint(0).0), Err(DecodeError::BadValueCoding(10)));
}

#[test]
fn a_varint_wider_than_64_bits_is_an_overflow() {
    let bytes = Body::new().bytes(&[0xff; 10]).bytes(&[0x7f]);
    assert_eq!(decode(&bytes.0), Err(DecodeError::Overflow));
}

#[test]
fn a_dropped_range_past_the_last_seq_is_an_overflow() {
    let bytes = Body::new().varint(0).varint(0).varint(1).varint(u64::MAX).varint(1).varint(0);
    assert_eq!(decode(&bytes.0), Err(DecodeError::Overflow));
}

#[test]
fn bytes_after_the_end_of_the_batch_are_refused() {
    let mut bytes = ReadingBatch::default().encode();
    bytes.extend_from_slice(&[0, 0, 7]);
    assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(3)));
}

#[test]
fn seqs_that_do_not_ascend_are_refused() {
    for seqs in [[5, 5], [5, 3]] {
        let batch = ReadingBatch { readings: seqs.map(|s| reading(s, "a")).to_vec(), dropped: vec![] };
        assert_eq!(decode(&batch.encode()), Err(DecodeError::NotAscending { after: 5, seq: seqs[1] }));
    }
}

#[test]
fn a_name_that_is_not_utf8_is_refused() {
    let bytes = Body::new().varint(1).bytes(&[2, 0xc3, 0x28, 1, b'm', 0, 0]);
    assert_eq!(decode(&bytes.0), Err(DecodeError::BadUtf8("sensor")));
}

#[test]
fn every_error_says_what_went_wrong() {
    assert_eq!(
        DecodeError::UnsupportedVersion(2).to_string(),
        "batch format version 2 is newer than this build reads (up to 1)"
    );
    assert_eq!(DecodeError::BadIndex { table: "boot", index: 3 }.to_string(), "boot index 3 is out of range");
}
