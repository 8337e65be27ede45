//! The binary encoding of a batch of readings. (Being written: see docs/design/wire-format.md.)

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::reading::Reading;

/// An inclusive range of sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
}

/// A batch of readings of one device, as published on `simpul/v1/dev/{d}/readings`.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ReadingBatch {
    /// Readings in ascending `seq` order (not necessarily contiguous).
    pub readings: Vec<Reading>,
    /// Sequence ranges the agent evicted under its disk quota: never coming, never to wait for.
    pub dropped: Vec<SeqRange>,
}

/// Why a batch could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty payload")]
    Empty,
}
