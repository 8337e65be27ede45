//! Decodes arbitrary bytes as a reading batch: it must never panic, and whatever it
//! accepts must encode and decode back to the same batch (values compared by bits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use simpul_protocol::ReadingBatch;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = ReadingBatch::decode(data) {
        let again = ReadingBatch::decode(&batch.encode());
        assert!(
            again.as_ref().is_ok_and(|b| b.bitwise_eq(&batch)),
            "accepted batch does not survive a round trip: {batch:?} became {again:?}"
        );
    }
});
