//! Where each key of a merged config came from: file and line.
//!
//! Merging drop-ins loses positions, so each file is also parsed with spans and every
//! key path is recorded with its file and line; later files overwrite earlier ones, as
//! the values themselves do. An error found in the merged config is then traced back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path of keys, shown as `sensors.river.port.baud` or `sensors.rain.registers[0].type`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// `self` with one more key.
    pub fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_owned()));
        KeyPath(v)
    }

    /// `self` with one more index.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }

    /// `self` followed by `rest`.
    pub fn join(&self, rest: &KeyPath) -> KeyPath {
        KeyPath(self.0.iter().chain(rest.0.iter()).cloned().collect())
    }

    /// The path without its last step.
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, init) = self.0.split_last()?;
        Some(KeyPath(init.to_vec()))
    }

    fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// Converts serde_path_to_error's path.
    pub fn from_serde(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment;
        KeyPath(
            path.iter()
                .filter_map(|s| match s {
                    Segment::Seq { index } => Some(Seg::Index(*index)),
                    Segment::Map { key } => Some(Seg::Key(key.clone())),
                    Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                    Segment::Unknown => None,
                })
                .collect(),
        )
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A file and a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

/// Key path -> where it was last set.
#[derive(Debug, Default)]
pub struct Provenance {
    map: BTreeMap<KeyPath, Location>,
}

impl Provenance {
    /// Records every key of one file's parsed text. A key set here replaces what earlier
    /// files said of it and of everything below it (arrays are replaced whole).
    pub fn record_file(&mut self, file: &Path, text: &str, table: &DeTable<'_>) {
        let lines = LineIndex::new(text);
        self.record_table(&KeyPath::default(), file, &lines, table);
    }

    fn record_table(&mut self, at: &KeyPath, file: &Path, lines: &LineIndex, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            let path = at.key(k.get_ref());
            let is_table = matches!(v.get_ref(), DeValue::Table(_));
            if !is_table {
                self.map.retain(|p, _| !p.starts_with(&path));
            }
            let loc = Location { file: file.to_owned(), line: lines.line_of(k.span().start) };
            self.map.insert(path.clone(), loc);
            self.record_value(&path, file, lines, v.get_ref());
        }
    }

    fn record_value(&mut self, at: &KeyPath, file: &Path, lines: &LineIndex, value: &DeValue<'_>) {
        match value {
            DeValue::Table(t) => self.record_table(at, file, lines, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = at.index(i);
                    let loc = Location { file: file.to_owned(), line: lines.line_of(item.span().start) };
                    self.map.insert(path.clone(), loc);
                    self.record_value(&path, file, lines, item.get_ref());
                }
            }
            _ => {}
        }
    }

    /// Where `path` was set, or else the nearest enclosing key that was.
    pub fn locate(&self, path: &KeyPath) -> Option<&Location> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(loc) = self.map.get(&cur) {
                return Some(loc);
            }
            p = cur.parent();
        }
        None
    }
}

/// Byte offset -> line number.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_print_as_a_person_writes_them() {
        let p = KeyPath::default().key("sensors").key("rain").key("registers").index(0).key("type");
        assert_eq!(p.to_string(), "sensors.rain.registers[0].type");
    }

    #[test]
    fn line_index_counts_from_one() {
        let l = LineIndex::new("a\nb\n\nc");
        assert_eq!((l.line_of(0), l.line_of(2), l.line_of(4), l.line_of(5)), (1, 2, 3, 4));
    }
}
