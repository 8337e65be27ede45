//! Accepting a sensor a box proposed (the agent's `sensor_proposed` event) into the
//! device's desired config. Pure logic; the store runs it inside the transaction that
//! writes the new version (docs/design/fleet-config-distribution.md, "Proposals").
//!
//! The proposal's `[sensors.<id>]` entry is appended to the device's own override as text,
//! under a comment naming the event, so whatever ops wrote there (comments included) stays
//! as written. The id may be changed on the way in; an id the device's merged config
//! already has is refused rather than silently replacing a working sensor.

use toml::{Table, Value};

use crate::config_merge;

/// The longest sensor id (the agent's rule).
const ID_MAX_LEN: usize = 32;

/// Why a proposal cannot go into the config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("the proposal is not one [sensors.<id>] entry: {0}")]
    Malformed(String),
    #[error("a sensor id is 1-{ID_MAX_LEN} of a-z, 0-9, '-' and '_'; {0:?} is not")]
    BadId(String),
    #[error("the device's config already has a sensor {0:?}; accept it under another id")]
    SensorExists(String),
    #[error("the device's override cannot take the entry: {0}")]
    Override(String),
}

/// The one sensor entry of a proposal, under the id it will have.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub sensor_id: String,
    pub settings: Table,
}

/// Whether `id` is a sensor id the agent accepts.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_MAX_LEN
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The entry of a proposal's TOML, renamed to `rename` when given.
pub fn entry(proposal_toml: &str, rename: Option<&str>) -> Result<Entry, ProposalError> {
    let doc = config_merge::parse(proposal_toml).map_err(|e| ProposalError::Malformed(e.to_string()))?;
    let malformed = |why: &str| ProposalError::Malformed(why.to_owned());
    if doc.len() != 1 {
        return Err(malformed("it has something besides [sensors]"));
    }
    let Some(Value::Table(sensors)) = doc.get("sensors") else { return Err(malformed("no [sensors] table")) };
    let mut entries = sensors.iter();
    let (Some((id, Value::Table(settings))), None) = (entries.next(), entries.next()) else {
        return Err(malformed("it must hold exactly one sensor table"));
    };
    let sensor_id = rename.unwrap_or(id).to_owned();
    if !valid_id(&sensor_id) {
        return Err(ProposalError::BadId(sensor_id));
    }
    Ok(Entry { sensor_id, settings: settings.clone() })
}

/// `override_text` with `entry` appended under `# note`, checked against `merged` (the
/// device's whole desired config now) for an id already taken.
pub fn add_to_override(
    override_text: &str,
    merged: &Table,
    entry: &Entry,
    note: &str,
) -> Result<String, ProposalError> {
    let taken = merged.get("sensors").and_then(Value::as_table).is_some_and(|s| s.contains_key(&entry.sensor_id));
    if taken {
        return Err(ProposalError::SensorExists(entry.sensor_id.clone()));
    }
    let mut sensors = Table::new();
    sensors.insert(entry.sensor_id.clone(), Value::Table(entry.settings.clone()));
    let mut doc = Table::new();
    doc.insert("sensors".to_owned(), Value::Table(sensors));
    let rendered = config_merge::render(&doc);
    let note = note.replace(['\n', '\r'], " ");
    let head = override_text.trim_end();
    let text =
        if head.is_empty() { format!("# {note}\n{rendered}") } else { format!("{head}\n\n# {note}\n{rendered}") };
    let parsed = config_merge::parse(&text).map_err(|e| ProposalError::Override(e.to_string()))?;
    let added = parsed.get("sensors").and_then(|s| s.get(&entry.sensor_id));
    if added != Some(&Value::Table(entry.settings.clone())) {
        return Err(ProposalError::Override("the appended entry does not read back as written".to_owned()));
    }
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PROPOSAL: &str = "[sensors.usb1]\nkind = \"modbus\"\nslave = 3\nregister = 0\n\
                            port = { path = \"/dev/ttyUSB1\", baud = 9600 }\n";

    fn t(text: &str) -> Table {
        config_merge::parse(text).unwrap()
    }

    #[test]
    fn the_entry_is_appended_under_a_note_and_what_ops_wrote_stays_as_written() {
        let own = "# pump house, ask Pak Budi\n[uplink]\nbatch_max = 100\n";
        let e = entry(PROPOSAL, None).unwrap();
        let text = add_to_override(own, &t(own), &e, "accepted proposal 7: Modbus slave 3").unwrap();
        assert!(text.starts_with(own.trim_end()), "{text}");
        assert!(text.contains("# accepted proposal 7: Modbus slave 3\n[sensors.usb1]"), "{text}");
        let parsed = t(&text);
        assert_eq!(parsed["sensors"]["usb1"]["slave"].as_integer(), Some(3));
        assert_eq!(parsed["sensors"]["usb1"]["port"]["baud"].as_integer(), Some(9600));
        assert_eq!(parsed["uplink"]["batch_max"].as_integer(), Some(100));
    }

    #[test]
    fn an_id_the_config_already_has_is_refused_and_a_new_id_is_taken() {
        let merged = t("[sensors.usb1]\nkind = \"simulated\"\n");
        let e = entry(PROPOSAL, None).unwrap();
        assert_eq!(add_to_override("", &merged, &e, "n"), Err(ProposalError::SensorExists("usb1".to_owned())));
        let e = entry(PROPOSAL, Some("rain-2")).unwrap();
        let text = add_to_override("", &merged, &e, "n").unwrap();
        assert!(t(&text)["sensors"].get("rain-2").is_some(), "{text}");
    }

    #[test]
    fn a_bad_new_id_is_refused_with_the_rule() {
        let e = entry(PROPOSAL, Some("Rain Gauge")).unwrap_err();
        assert_eq!(e, ProposalError::BadId("Rain Gauge".to_owned()));
        assert!(e.to_string().contains("a-z, 0-9"), "{e}");
        assert!(entry(PROPOSAL, Some(&"x".repeat(33))).is_err());
    }

    #[test]
    fn a_proposal_that_is_not_one_sensor_entry_is_refused() {
        for bad in [
            "",
            "[log]\nlevel = \"debug\"\n",
            "[sensors.a]\nkind = \"simulated\"\n[sensors.b]\nkind = \"simulated\"\n",
            "[sensors.a]\nkind = \"simulated\"\n[log]\nlevel = \"debug\"\n",
            "sensors = 3\n",
            "[sensors]\na = 3\n",
            "not toml at all [",
        ] {
            assert!(matches!(entry(bad, None), Err(ProposalError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn an_override_that_cannot_take_a_sensor_table_is_refused_not_broken() {
        // An inline `sensors = {...}` cannot be extended by a `[sensors.x]` header.
        let own = "sensors = { old = { kind = \"simulated\" } }\n";
        let e = entry(PROPOSAL, None).unwrap();
        assert!(matches!(add_to_override(own, &t(own), &e, "n"), Err(ProposalError::Override(_))));
    }

    #[test]
    fn a_note_cannot_break_out_of_its_comment() {
        let e = entry(PROPOSAL, None).unwrap();
        let text = add_to_override("", &Table::new(), &e, "x\n[log]\nlevel = \"trace\"").unwrap();
        assert!(t(&text).get("log").is_none(), "{text}");
    }
}
