//! Desired agent config on the fleet: checking a TOML text and merging a group's defaults
//! with a device's own override (docs/design/fleet-config-distribution.md). Pure logic.
//!
//! The merge rule: start from the group's defaults and lay the device's override on top.
//! A table named in [`REPLACED_WHOLE`] (`[sensors]`) is merged one entry at a time, and
//! each entry (`[sensors.river]`) the device names replaces the group's entry of that name
//! whole, so a device never inherits half of another sensor's settings. Every other table
//! is merged key by key, recursively; any other value (a string, a number, an array) of the
//! device replaces the group's.

use toml::{Table, Value};

/// Tables whose entries a device replaces whole rather than key by key.
pub const REPLACED_WHOLE: &[&str] = &["sensors"];

/// A TOML text that does not parse: the parser's message and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TOML syntax error at line {line}, column {column}: {message}")]
pub struct TomlSyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    pub message: String,
}

/// Parses a TOML document (syntax only: the agent checks the config itself).
pub fn parse(text: &str) -> Result<Table, TomlSyntaxError> {
    text.parse::<Table>().map_err(|e| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..at).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        TomlSyntaxError { line, column, message: e.message().trim().to_owned() }
    })
}

/// The config a device gets: `defaults` (its group's, if any) with `device` on top.
pub fn merge(defaults: &Table, device: &Table) -> Table {
    let mut out = defaults.clone();
    for (key, value) in device {
        let merged = match (out.remove(key), value) {
            (Some(Value::Table(base)), Value::Table(over)) if REPLACED_WHOLE.contains(&key.as_str()) => {
                let mut entries = base;
                entries.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Table(entries)
            }
            (Some(Value::Table(base)), Value::Table(over)) => Value::Table(merge(&base, over)),
            (_, v) => v.clone(),
        };
        out.insert(key.clone(), merged);
    }
    out
}

/// The merged config as the TOML text sent to the device.
pub fn render(table: &Table) -> String {
    // A `Table` always serialises (keys are strings, values are TOML values).
    toml::to_string(table).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(text: &str) -> Table {
        parse(text).unwrap()
    }

    #[test]
    fn a_devices_sensor_replaces_the_groups_sensor_of_that_name_whole() {
        let group = t("[sensors.river]\nkind = \"modbus\"\nport = \"/dev/ttyUSB0\"\nslave = 1\n\
                       [sensors.rain]\nkind = \"ascii\"\nport = \"/dev/ttyUSB1\"\n");
        let device = t("[sensors.river]\nkind = \"ascii\"\nport = \"/dev/ttyS0\"\n");
        let merged = merge(&group, &device);
        assert_eq!(merged["sensors"]["river"], t("kind = \"ascii\"\nport = \"/dev/ttyS0\"\n").into());
        assert!(merged["sensors"]["river"].get("slave").is_none(), "nothing of the group's river is kept");
        assert_eq!(merged["sensors"]["rain"]["port"].as_str(), Some("/dev/ttyUSB1"), "other sensors stay");
    }

    #[test]
    fn other_tables_are_merged_key_by_key_and_the_device_wins() {
        let group = t("[uplink]\nbatch_max = 500\nkeepalive = \"30s\"\n[log]\nlevel = \"info\"\n");
        let device = t("[uplink]\nbatch_max = 100\n[buffer]\nquota = \"2GiB\"\n");
        let merged = merge(&group, &device);
        assert_eq!(merged["uplink"]["batch_max"].as_integer(), Some(100));
        assert_eq!(merged["uplink"]["keepalive"].as_str(), Some("30s"));
        assert_eq!(merged["log"]["level"].as_str(), Some("info"));
        assert_eq!(merged["buffer"]["quota"].as_str(), Some("2GiB"));
    }

    #[test]
    fn nested_tables_merge_recursively_and_arrays_are_replaced() {
        let group = t("[a.b]\nx = 1\ny = 2\nlist = [1, 2]\n");
        let device = t("[a.b]\ny = 3\nlist = [9]\n");
        let merged = merge(&group, &device);
        assert_eq!(merged, t("[a.b]\nx = 1\ny = 3\nlist = [9]\n"));
    }

    #[test]
    fn no_group_or_no_override_gives_the_other_side_unchanged() {
        let some = t("[log]\nlevel = \"debug\"\n[sensors.s]\nkind = \"simulated\"\n");
        assert_eq!(merge(&Table::new(), &some), some);
        assert_eq!(merge(&some, &Table::new()), some);
    }

    #[test]
    fn a_value_of_another_type_replaces_a_table() {
        let merged = merge(&t("[x]\na = 1\n"), &t("x = 5\n"));
        assert_eq!(merged["x"].as_integer(), Some(5));
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let e = parse("[log]\nlevel = \"info\"\nbroken = \n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.column >= 1, "{e}");
        assert!(!e.message.is_empty());
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn the_rendered_merge_parses_back_to_itself() {
        let merged = merge(&t("[sensors.a]\nkind = \"x\"\n[log]\nlevel = \"info\"\n"), &t("[log]\nlevel = \"warn\"\n"));
        assert_eq!(t(&render(&merged)), merged);
    }
}
