//! Splitting a byte stream into lines: bytes in, lines out.
//!
//! `\r`, `\n` and `\r\n` all end a line (the empty line between `\r` and `\n` is
//! skipped, as is any empty line). A run longer than `max_line` without a terminator is
//! reported once as [`Frame::Overlong`]; the framer then drops bytes up to the next
//! terminator and starts afresh, so one burst of line noise costs one line, not the stream.

/// What the framer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its terminator; never empty.
    Line(Vec<u8>),
    /// More than `max_line` bytes without a terminator: garbage, skipped up to the next one.
    Overlong,
}

/// The line framer's state between reads.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    max_line: usize,
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> LineFramer {
        let max_line = max_line.max(1);
        LineFramer { buf: Vec::with_capacity(max_line.min(4096)), max_line, discarding: false }
    }

    /// Feeds `bytes`, calling `each` for every frame completed by them, in order.
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(Frame)) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                } else if !self.buf.is_empty() {
                    each(Frame::Line(std::mem::take(&mut self.buf)));
                }
            } else if !self.discarding {
                if self.buf.len() == self.max_line {
                    self.buf.clear();
                    self.discarding = true;
                    each(Frame::Overlong);
                } else {
                    self.buf.push(b);
                }
            }
        }
    }

    /// Forgets a partial line (after the port was reopened).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |fr| out.push(fr));
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn cr_lf_and_crlf_all_end_a_line() {
        let got = frames(16, &[b"R1\rR2\nR3\r\nR4"]);
        assert_eq!(got, vec![line("R1"), line("R2"), line("R3")]);
    }

    #[test]
    fn a_line_split_across_reads_is_joined() {
        assert_eq!(frames(16, &[b"R12", b"34", b"\r"]), vec![line("R1234")]);
    }

    #[test]
    fn an_overlong_run_is_garbage_once_and_the_framer_resyncs() {
        let got = frames(4, &[b"abcdefghij", b"klm\rR1\r"]);
        assert_eq!(got, vec![Frame::Overlong, line("R1")]);
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_accepted() {
        assert_eq!(frames(4, &[b"abcd\r"]), vec![line("abcd")]);
    }

    #[test]
    fn reset_drops_a_partial_line() {
        let mut f = LineFramer::new(8);
        f.push(b"R12", |_| panic!("no frame yet"));
        f.reset();
        let mut out = Vec::new();
        f.push(b"34\r", |fr| out.push(fr));
        assert_eq!(out, vec![line("34")]);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_lines_respect_max(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
            max in 1usize..32,
        ) {
            let mut f = LineFramer::new(max);
            for c in &chunks {
                f.push(c, |fr| {
                    if let Frame::Line(l) = fr {
                        assert!(!l.is_empty() && l.len() <= max);
                        assert!(!l.contains(&b'\r') && !l.contains(&b'\n'));
                    }
                });
            }
        }

        #[test]
        fn how_bytes_are_split_into_reads_does_not_change_the_frames(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'R'), Just(b'7')], 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(bytes.len());
            let whole = frames(8, &[&bytes]);
            let split = frames(8, &[&bytes[..cut], &bytes[cut..]]);
            prop_assert_eq!(whole, split);
        }
    }
}
