//! Turning one line into values: the three formats of `[sensors.<id>] format = ...`.

use std::collections::BTreeMap;

use crate::config::sensor::{AsciiFormat, AsciiSensorConfig, Scaling, ValueMapping};
use crate::sensor::emit::Channel;

/// Why a line gave no values (it is counted as garbage).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("line does not start with {0:?}")]
    NoPrefix(String),
    #[error("not a number: {0:?}")]
    NotANumber(String),
    #[error("not a key=value pair: {0:?}")]
    NotAPair(String),
    #[error("no configured key in the line")]
    NoValues,
}

/// A metric and how its raw number becomes a value.
#[derive(Clone, Debug)]
struct Mapped {
    channel: Channel,
    scaling: Scaling,
}

impl Mapped {
    fn new(default_metric: &str, m: &ValueMapping) -> Mapped {
        let metric = m.metric.as_deref().unwrap_or(default_metric);
        Mapped { channel: Channel::new(metric, &m.unit), scaling: m.scaling() }
    }

    fn apply(&self, raw: f64) -> (Channel, f64) {
        (self.channel.clone(), self.scaling.apply(raw))
    }
}

/// Parses the lines of one ASCII sensor, built once from its config.
#[derive(Clone, Debug)]
pub struct LineParser {
    format: AsciiFormat,
    prefix: String,
    value: Mapped,
    fields: BTreeMap<String, Mapped>,
}

impl LineParser {
    /// The parser for `cfg`'s format, prefix and value mappings.
    pub fn new(cfg: &AsciiSensorConfig) -> LineParser {
        LineParser {
            format: cfg.format,
            prefix: cfg.prefix.clone().unwrap_or_default(),
            value: Mapped::new("value", &cfg.value),
            fields: cfg.fields.iter().map(|(k, m)| (k.clone(), Mapped::new(k, m))).collect(),
        }
    }

    /// The values in `line` (without its terminator), scaled, offset and rounded.
    pub fn parse(&self, line: &[u8]) -> Result<Vec<(Channel, f64)>, LineError> {
        let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?.trim();
        match self.format {
            AsciiFormat::Number => Ok(vec![self.value.apply(number(text)?)]),
            AsciiFormat::Prefixed => {
                let rest =
                    text.strip_prefix(self.prefix.as_str()).ok_or_else(|| LineError::NoPrefix(self.prefix.clone()))?;
                Ok(vec![self.value.apply(number(rest.trim_start())?)])
            }
            AsciiFormat::KeyValue => self.key_values(text),
        }
    }

    /// `level=123.4 rain=0.2`: pairs split by spaces, commas or semicolons. One malformed
    /// pair spoils the line (a half-corrupted line is not trusted).
    fn key_values(&self, text: &str) -> Result<Vec<(Channel, f64)>, LineError> {
        let mut out = Vec::new();
        for pair in text.split([' ', '\t', ',', ';']).filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').ok_or_else(|| LineError::NotAPair(pair.to_owned()))?;
            let (key, raw) = (key.trim(), number(raw.trim())?);
            if key.is_empty() {
                return Err(LineError::NotAPair(pair.to_owned()));
            }
            if self.fields.is_empty() {
                out.push(Mapped::new(key, &ValueMapping::default()).apply(raw));
            } else if let Some(m) = self.fields.get(key) {
                out.push(m.apply(raw));
            }
        }
        if out.is_empty() { Err(LineError::NoValues) } else { Ok(out) }
    }
}

/// A finite decimal number (`inf` and `NaN` are garbage).
fn number(s: &str) -> Result<f64, LineError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(LineError::NotANumber(s.chars().take(32).collect())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::sensor::SerialPortConfig;

    fn cfg(format: AsciiFormat) -> AsciiSensorConfig {
        AsciiSensorConfig {
            port: SerialPortConfig {
                path: PathBuf::from("/dev/null"),
                baud: 9600,
                data_bits: 8,
                parity: Default::default(),
                stop_bits: 1,
            },
            format,
            prefix: None,
            value: ValueMapping::default(),
            fields: BTreeMap::new(),
            max_line: 256,
        }
    }

    fn values(p: &LineParser, line: &str) -> Vec<(String, f64)> {
        p.parse(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .into_iter()
            .map(|(c, v)| (c.metric.to_string(), v))
            .collect()
    }

    #[test]
    fn a_prefixed_ranger_line_is_scaled_offset_and_rounded() {
        let mut c = cfg(AsciiFormat::Prefixed);
        c.prefix = Some("R".into());
        c.value =
            ValueMapping { metric: Some("level".into()), unit: "cm".into(), scale: 0.1, offset: -3.0, decimals: 1 };
        let p = LineParser::new(&c);
        assert_eq!(values(&p, "R1234"), vec![("level".to_owned(), 120.4)]);
        assert_eq!(p.parse(b"X1234"), Err(LineError::NoPrefix("R".into())));
        assert!(matches!(p.parse(b"R12a4"), Err(LineError::NotANumber(_))));
    }

    #[test]
    fn a_bare_number_uses_the_default_metric_name() {
        let p = LineParser::new(&cfg(AsciiFormat::Number));
        assert_eq!(values(&p, " 123.456 "), vec![("value".to_owned(), 123.46)]);
        assert!(p.parse(b"NaN").is_err());
        assert_eq!(p.parse(&[0xff, 0x31]), Err(LineError::NotUtf8));
    }

    #[test]
    fn key_values_pass_every_key_when_no_fields_are_configured() {
        let p = LineParser::new(&cfg(AsciiFormat::KeyValue));
        let got = values(&p, "level=123.4, rain=0.2;temp=28");
        assert_eq!(got, vec![("level".into(), 123.4), ("rain".into(), 0.2), ("temp".into(), 28.0)]);
    }

    #[test]
    fn key_values_keep_only_configured_fields_with_their_mapping() {
        let mut c = cfg(AsciiFormat::KeyValue);
        c.fields.insert(
            "rain".into(),
            ValueMapping { metric: Some("rain_mm".into()), unit: "mm".into(), scale: 10.0, offset: 0.0, decimals: 1 },
        );
        let p = LineParser::new(&c);
        assert_eq!(values(&p, "level=123.4 rain=0.25"), vec![("rain_mm".into(), 2.5)]);
        assert_eq!(p.parse(b"level=1"), Err(LineError::NoValues));
        assert!(matches!(p.parse(b"level=1 rain"), Err(LineError::NotAPair(_))));
    }
}
