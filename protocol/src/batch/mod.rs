//! The compact binary encoding of a batch of readings (the hot path).
//!
//! The byte layout, the versioning rule and the measured sizes are in
//! `docs/design/wire-format.md`. In short: a version byte, a flags byte, and a
//! column-oriented body (series and boot tables, then seq deltas, series indexes, flags,
//! per-series monotonic delta-of-delta, clock-offset deltas, per-series scaled-integer
//! value deltas, dropped ranges), zstd-compressed when that is smaller.
//!
//! ```
//! use simpul_protocol::{ReadingBatch, SeqRange};
//! let batch = ReadingBatch { readings: vec![], dropped: vec![SeqRange { first: 3, last: 9 }] };
//! let bytes = batch.encode();
//! assert_eq!(ReadingBatch::decode(&bytes), Ok(batch));
//! ```

mod columns;
mod decode;
mod encode;
mod error;
mod values;
mod varint;

use serde::{Deserialize, Serialize};

pub use error::DecodeError;

use crate::reading::Reading;

/// The batch format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u8 = 1;

/// Flag bit: the body is one zstd frame.
pub const FLAG_ZSTD: u8 = 0b0000_0001;

/// The most readings one batch may carry; a decoder refuses more.
pub const MAX_READINGS: usize = 100_000;

/// The most series (distinct sensor, metric, unit) one batch may carry.
pub const MAX_SERIES: usize = 4_096;

/// The most distinct boots one batch may carry.
pub const MAX_BOOTS: usize = 4_096;

/// The most dropped ranges one batch may carry.
pub const MAX_DROPPED: usize = 100_000;

/// The longest sensor id, metric or unit, in bytes.
pub const MAX_TEXT_LEN: usize = 255;

/// The largest body, compressed or not, a decoder accepts (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The most text (sensor + metric + unit, summed over readings) a decoder will build:
/// bounds what a small hostile payload can make the decoder allocate (16 MiB).
pub const MAX_DECODED_TEXT: usize = 16 << 20;

/// An inclusive range of sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeqRange {
    /// The first seq of the range.
    pub first: u64,
    /// The last seq of the range (inclusive, `>= first`).
    pub last: u64,
}

/// A batch of readings of one device, as published on `simpul/v1/dev/{d}/readings`.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ReadingBatch {
    /// Readings in strictly ascending `seq` order (not necessarily contiguous).
    pub readings: Vec<Reading>,
    /// Sequence ranges the agent evicted under its disk quota: never coming, never to wait for.
    pub dropped: Vec<SeqRange>,
}

impl ReadingBatch {
    /// Encodes the batch in the current format ([`FORMAT_VERSION`]).
    ///
    /// The encoding is lossless for any batch. A batch that breaks the format's rules
    /// (seqs not strictly ascending, more than [`MAX_READINGS`], a text longer than
    /// [`MAX_TEXT_LEN`], a range with `last < first`) still encodes, but the decoder refuses
    /// it: the agent must keep to the rules.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a payload of any supported format version. See [`decode`].
    pub fn decode(bytes: &[u8]) -> Result<ReadingBatch, DecodeError> {
        decode(bytes)
    }

    /// Equality that compares values by their bits, so NaN equals NaN and -0.0 differs
    /// from 0.0: what "the same batch" means on the wire.
    pub fn bitwise_eq(&self, other: &ReadingBatch) -> bool {
        self.dropped == other.dropped
            && self.readings.len() == other.readings.len()
            && self.readings.iter().zip(&other.readings).all(|(a, b)| {
                (a.seq, &a.sensor, &a.metric, &a.unit, a.value.to_bits(), a.time)
                    == (b.seq, &b.sensor, &b.metric, &b.unit, b.value.to_bits(), b.time)
            })
    }
}

/// Encodes a batch: the header, then the body, zstd-compressed when that is smaller.
pub fn encode(batch: &ReadingBatch) -> Vec<u8> {
    let body = encode::body(batch);
    let compressed = encode::smallest_zstd(&body).filter(|z| z.len() < body.len());
    let (flags, body) = match compressed {
        Some(z) => (FLAG_ZSTD, z),
        None => (0, body),
    };
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&[FORMAT_VERSION, flags]);
    out.extend_from_slice(&body);
    out
}

/// Decodes a batch payload. Hostile input gives a [`DecodeError`], never a panic; a
/// payload from a newer agent gives [`DecodeError::UnsupportedVersion`].
pub fn decode(bytes: &[u8]) -> Result<ReadingBatch, DecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        // Version 0 was never written; anything above is from a newer agent.
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let (&flags, body) = rest.split_first().ok_or(DecodeError::Truncated)?;
    if flags & !FLAG_ZSTD != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(DecodeError::TooLarge("body"));
    }
    if flags & FLAG_ZSTD == 0 {
        return decode::body(body);
    }
    decode::body(&decompress(body)?)
}

/// One zstd frame, decompressed with this thread's reused context into a buffer of the
/// frame's declared size (the encoder always declares it), at most [`MAX_BODY_BYTES`].
/// A fleet decodes thousands of batches a second: a fresh context and a 16 MiB buffer
/// each time cost more than the decompression.
fn decompress(frame: &[u8]) -> Result<Vec<u8>, DecodeError> {
    use std::cell::RefCell;
    thread_local! {
        static CONTEXT: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    }
    let err = |e: std::io::Error| DecodeError::Decompress(e.to_string());
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= MAX_BODY_BYTES as u64 => usize::try_from(n).unwrap_or(MAX_BODY_BYTES),
        Ok(Some(n)) => {
            return Err(DecodeError::Decompress(format!("the frame declares {n} bytes, over {MAX_BODY_BYTES}")));
        }
        _ => MAX_BODY_BYTES,
    };
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Decompressor::new().map_err(err)?),
        };
        let mut out = Vec::with_capacity(size);
        context.decompress_to_buffer(frame, &mut out).map_err(err)?;
        Ok(out)
    })
}
