//! Listening for ASCII lines and naming their format with the agent's own parser.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Found;
use crate::config::sensor::{AsciiFormat, AsciiSensorConfig, SerialPortConfig, ValueMapping};
use crate::sensor::ascii::{Frame, LineFramer, LineParser};
use crate::sensor::port;

/// Longest line the probe takes; longer runs are line noise (a wrong baud).
const MAX_LINE: usize = 256;

/// Lines in a row of one format that make a match.
const IN_A_ROW: usize = 2;

/// One line's format: the format and, for `prefixed`, its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guess {
    pub format: AsciiFormat,
    pub prefix: Option<String>,
}

/// The format of `line`, if it is one the agent reads: `key=value` pairs, a bare number,
/// or a short prefix of letters and symbols before a number (`R1234`, `D: 12.5`). Each
/// guess is checked with [`LineParser`], so a match is a line the sensor task will read.
pub fn guess(line: &[u8]) -> Option<Guess> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_graphic() || c == ' ' || c == '\t') {
        return None;
    }
    let candidates = if text.contains('=') {
        vec![Guess { format: AsciiFormat::KeyValue, prefix: None }]
    } else {
        let prefix: String = text.chars().take_while(|c| !(c.is_ascii_digit() || "+-.".contains(*c))).collect();
        let prefix = prefix.trim_end();
        if prefix.is_empty() {
            vec![Guess { format: AsciiFormat::Number, prefix: None }]
        } else if prefix.len() <= 8 {
            vec![Guess { format: AsciiFormat::Prefixed, prefix: Some(prefix.to_owned()) }]
        } else {
            Vec::new()
        }
    };
    candidates.into_iter().find(|g| LineParser::new(&parser_config(g)).parse(line).is_ok())
}

fn parser_config(g: &Guess) -> AsciiSensorConfig {
    AsciiSensorConfig {
        port: super::line(std::path::Path::new(""), 9600),
        format: g.format,
        prefix: g.prefix.clone(),
        value: ValueMapping::default(),
        fields: Default::default(),
        max_line: MAX_LINE,
    }
}

/// Tells a run of lines of one format from noise.
#[derive(Debug, Default)]
pub struct Streak {
    last: Option<Guess>,
    count: usize,
}

impl Streak {
    /// Takes the next line; `Some` once [`IN_A_ROW`] lines in a row had the same format.
    pub fn push(&mut self, line: Option<Guess>) -> Option<Guess> {
        match line {
            Some(g) if self.last.as_ref() == Some(&g) => self.count += 1,
            Some(g) => {
                self.last = Some(g);
                self.count = 1;
            }
            None => {
                self.last = None;
                self.count = 0;
            }
        }
        (self.count >= IN_A_ROW).then(|| self.last.clone()).flatten()
    }
}

/// Opens `port` and listens up to `listen_for`. `Ok(Some)` as soon as lines in a row of
/// one format came; `Err` if the port cannot be opened or read.
pub async fn listen(
    port: &SerialPortConfig,
    listen_for: Duration,
    shutdown: &CancellationToken,
) -> std::io::Result<Option<Found>> {
    let serial = port::open(port)?;
    // Whatever waited in the kernel came at another baud, or before anyone listened.
    serial.discard_input_buffer()?;
    let deadline = tokio::time::Instant::now() + listen_for;
    let mut framer = LineFramer::new(MAX_LINE);
    let mut streak = Streak::default();
    let mut buf = [0u8; 256];
    loop {
        let n = tokio::select! {
            read = serial.read(&mut buf) => read?,
            () = tokio::time::sleep_until(deadline) => return Ok(None),
            () = shutdown.cancelled() => return Ok(None),
        };
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the port hung up"));
        }
        let mut found = None;
        framer.push(buf.get(..n).unwrap_or_default(), |frame| {
            if found.is_some() {
                return;
            }
            let (g, example) = match frame {
                Frame::Line(l) => (guess(&l), l),
                Frame::Overlong => (None, Vec::new()),
            };
            if let Some(g) = streak.push(g) {
                let example = String::from_utf8_lossy(&example).trim().chars().take(32).collect();
                found = Some(Found::Ascii { baud: port.baud, format: g.format, prefix: g.prefix, example });
            }
        });
        if found.is_some() {
            return Ok(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(format: AsciiFormat, prefix: Option<&str>) -> Option<Guess> {
        Some(Guess { format, prefix: prefix.map(str::to_owned) })
    }

    #[test]
    fn the_known_line_formats_are_recognised() {
        assert_eq!(guess(b"R1234"), g(AsciiFormat::Prefixed, Some("R")));
        assert_eq!(guess(b"D: 12.5"), g(AsciiFormat::Prefixed, Some("D:")));
        assert_eq!(guess(b" 123.4 "), g(AsciiFormat::Number, None));
        assert_eq!(guess(b"-5"), g(AsciiFormat::Number, None));
        assert_eq!(guess(b"level=123.4 rain=0.2"), g(AsciiFormat::KeyValue, None));
    }

    #[test]
    fn noise_is_no_format() {
        for line in [&b"\xff\xfe\x01"[..], b"R12a4", b"hello", b"level=abc", b"", b"ABCDEFGHIJ12", b"R\x0112"] {
            assert_eq!(guess(line), None, "{line:?}");
        }
    }

    #[test]
    fn two_lines_in_a_row_of_one_format_make_a_match_and_noise_breaks_the_run() {
        let mut s = Streak::default();
        assert_eq!(s.push(guess(b"R1")), None);
        assert_eq!(s.push(None), None);
        assert_eq!(s.push(guess(b"R2")), None);
        assert_eq!(s.push(guess(b"12")), None, "another format starts a new run");
        assert_eq!(s.push(guess(b"13")), g(AsciiFormat::Number, None));
    }
}
