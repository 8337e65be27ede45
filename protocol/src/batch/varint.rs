//! LEB128 varints, zigzag, and a bounds-checked reader for hostile input.

use super::DecodeError;

/// Maps a signed integer to an unsigned one so that small magnitudes stay small
/// (0, -1, 1, -2 ... become 0, 1, 2, 3 ...).
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(super) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint (1-10 bytes).
pub(super) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzagged, as a varint.
pub(super) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, zigzag(v));
}

/// Appends a length-prefixed UTF-8 string.
pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Reads from a byte slice, never past its end, never trusting a length it has not checked.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// An unsigned varint; more than 64 bits is [`DecodeError::Overflow`].
    pub(super) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let [byte] = self.array::<1>()?;
            let part = u64::from(byte & 0x7f);
            if i == 9 && part > 1 {
                return Err(DecodeError::Overflow);
            }
            value |= part << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Overflow)
    }

    /// A zigzagged signed varint.
    pub(super) fn i64(&mut self) -> Result<i64, DecodeError> {
        self.u64().map(unzigzag)
    }

    /// A count of items, each of which takes at least `min_item_bytes` of what remains:
    /// a count the remaining bytes cannot hold is [`DecodeError::Truncated`], one above
    /// `max` is [`DecodeError::TooLarge`]. Safe to allocate from.
    pub(super) fn count(
        &mut self,
        min_item_bytes: usize,
        max: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::TooLarge(what))?;
        if n > max {
            return Err(DecodeError::TooLarge(what));
        }
        if n.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub(super) fn text(&mut self, max: usize, what: &'static str) -> Result<String, DecodeError> {
        let len = self.count(1, max, what)?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| DecodeError::BadUtf8(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_keeps_small_magnitudes_small_and_round_trips_extremes() {
        assert_eq!([0, -1, 1, -2].map(zigzag), [0, 1, 2, 3]);
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1234, -98765] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn varints_round_trip_at_every_length() {
        let mut out = Vec::new();
        let values: Vec<u64> = (0..64).map(|s| 1u64 << s).chain([0, u64::MAX, 127, 128]).collect();
        for &v in &values {
            put_u64(&mut out, v);
        }
        let mut r = Reader::new(&out);
        for &v in &values {
            assert_eq!(r.u64(), Ok(v));
        }
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn a_varint_wider_than_64_bits_is_an_overflow() {
        let too_wide = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&too_wide).u64(), Err(DecodeError::Overflow));
        let eleven = [0x80; 11];
        assert_eq!(Reader::new(&eleven).u64(), Err(DecodeError::Overflow));
    }
}
