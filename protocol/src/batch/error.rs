//! Why a batch could not be decoded.

use thiserror::Error;

/// Why a batch payload could not be decoded. Every malformed input ends here: the
/// decoder never panics and never allocates from a length it has not checked.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload has no bytes at all.
    #[error("empty payload")]
    Empty,
    /// The payload was written in a newer format than this build reads.
    #[error("batch format version {0} is newer than this build reads (up to {max})", max = super::FORMAT_VERSION)]
    UnsupportedVersion(u8),
    /// The flags byte sets bits this version does not define.
    #[error("unknown flag bits {0:#04x}")]
    UnknownFlags(u8),
    /// The payload ends in the middle of something.
    #[error("payload truncated")]
    Truncated,
    /// A count, a length or the decoded size exceeds a limit of the format.
    #[error("{0} exceeds the format's limit")]
    TooLarge(&'static str),
    /// A reading points at a series or boot the tables do not have.
    #[error("{table} index {index} is out of range")]
    BadIndex {
        /// Which table: `series` or `boot`.
        table: &'static str,
        /// The index found.
        index: u64,
    },
    /// A series declares a value coding that does not exist.
    #[error("unknown value coding {0:#04x}")]
    BadValueCoding(u8),
    /// A varint is wider than 64 bits, or a range runs past `u64::MAX`.
    #[error("integer overflow")]
    Overflow,
    /// The zstd body could not be decompressed (corrupt, or larger than the limit).
    #[error("decompression failed: {0}")]
    Decompress(String),
    /// Bytes follow the end of the batch.
    #[error("{0} bytes after the end of the batch")]
    TrailingBytes(usize),
    /// Sequence numbers must be strictly ascending.
    #[error("seq {seq} does not follow {after}")]
    NotAscending {
        /// The previous reading's seq.
        after: u64,
        /// The seq that does not exceed it.
        seq: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
}
