//! Hostile payloads: the decoder answers Ok or a DecodeError, never a panic, and what it
//! accepts re-encodes to the same batch.

mod common;

use proptest::prelude::*;
use simpul_protocol::ReadingBatch;

/// Whatever decodes must survive a second trip (the fuzz target's invariant).
fn decodes_consistently(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(batch) = ReadingBatch::decode(bytes) {
        let again = ReadingBatch::decode(&batch.encode());
        prop_assert!(again.as_ref().is_ok_and(|b| b.bitwise_eq(&batch)), "{batch:?} became {again:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn any_bytes_decode_to_ok_or_an_error_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decodes_consistently(&bytes)?;
    }

    #[test]
    fn any_body_behind_a_valid_header_decodes_without_panicking(
        flags in 0u8..2,
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        decodes_consistently(&[&[1, flags][..], &body].concat())?;
    }

    #[test]
    fn a_mutated_encoding_never_panics(
        batch in common::batches(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        compressed in any::<bool>(),
    ) {
        let mut bytes = batch.encode();
        if !compressed {
            bytes = common::uncompressed(&bytes);
        }
        for (at, xor) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        decodes_consistently(&bytes)?;
    }

    #[test]
    fn a_truncated_or_extended_encoding_never_panics(
        batch in common::batches(),
        cut in any::<prop::sample::Index>(),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let bytes = common::uncompressed(&batch.encode());
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(ReadingBatch::decode(short).is_err());
        decodes_consistently(&[&bytes[..], &tail].concat())?;
    }
}
