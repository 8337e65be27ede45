//! Reading the config file: TOML with `deny_unknown_fields`, then checks of values that
//! parse but cannot work. Every mistake names its file, line and key.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::FleetConfig;
use super::error::{ConfigError, Problem};

/// Loads and checks the config file at `path`.
pub fn load(path: &Path) -> Result<FleetConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse(path, &text)
}

/// Loads a TOML text, naming it `name` in messages.
pub fn load_str(name: &str, text: &str) -> Result<FleetConfig, ConfigError> {
    parse(&PathBuf::from(name), text)
}

fn parse(file: &Path, text: &str) -> Result<FleetConfig, ConfigError> {
    let config: FleetConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let message = e.message().trim().to_owned();
        ConfigError::Invalid(vec![Problem { file: Some(file.to_owned()), line, key: None, message }])
    })?;
    let spans = DeTable::parse(text).ok();
    let problems: Vec<Problem> = check(&config)
        .into_iter()
        .map(|(key, message)| {
            let line = spans.as_ref().and_then(|t| locate(t.get_ref(), key, text));
            Problem { file: Some(file.to_owned()), line, key: Some(key.to_owned()), message }
        })
        .collect();
    if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
}

/// Values that parse but cannot work: `(key, message)`.
fn check(c: &FleetConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match c.mqtt.broker.as_deref() {
        None => {}
        Some(b) if crate::ingest::parse_broker(b).is_none() => {
            out.push(("mqtt.broker", format!("{b:?} is not `host:port`")));
        }
        Some(_) => {}
    }
    if c.mqtt.broker.is_none() && (c.mqtt.tls || c.mqtt.tls_ca_file.is_some()) {
        let key = if c.mqtt.tls { "mqtt.tls" } else { "mqtt.tls_ca_file" };
        out.push((key, "is for an external broker (mqtt.broker); the embedded one is reached on loopback".to_owned()));
    }
    if c.mqtt.tls_ca_file.is_some() && !c.mqtt.tls {
        out.push(("mqtt.tls_ca_file", "is set but mqtt.tls is false".to_owned()));
    }
    if c.mqtt.client_id.is_empty() {
        out.push(("mqtt.client_id", "must not be empty: the broker keeps the fleet's session under it".to_owned()));
    }
    if c.mqtt.identity.is_empty() {
        out.push(("mqtt.identity", "must not be empty: the broker knows the fleet by it".to_owned()));
    }
    if c.mqtt.shared_group.contains(['/', '+', '#']) {
        out.push(("mqtt.shared_group", "may not hold `/`, `+` or `#`".to_owned()));
    }
    if c.store.backend == super::StoreBackend::Postgres && c.store.url.trim().is_empty() {
        out.push(("store.url", "must name the PostgreSQL database when store.backend is \"postgres\"".to_owned()));
    }
    if c.store.commit_max_messages == 0 {
        out.push(("store.commit_max_messages", "must be at least 1".to_owned()));
    }
    if c.api.max_limit == 0 {
        out.push(("api.max_limit", "must be at least 1".to_owned()));
    }
    if c.webhook.batch_size == 0 {
        out.push(("webhook.batch_size", "must be at least 1".to_owned()));
    }
    if let Some(url) = &c.webhook.url {
        if !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            out.push(("webhook.url", format!("{url:?} is not an http:// or https:// URL")));
        }
    }
    out.extend(c.trust.problems());
    out.extend(c.releases.problems());
    if c.webhook.min_backoff > c.webhook.max_backoff {
        out.push(("webhook.min_backoff", "is longer than webhook.max_backoff".to_owned()));
    }
    out
}

/// The line of a dotted key in the parsed file, or of the nearest table that holds it.
fn locate(table: &DeTable<'_>, key: &str, text: &str) -> Option<usize> {
    let mut table = table;
    let mut line = None;
    for part in key.split('.') {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        line = Some(line_of(text, k.span().start));
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    line
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_loads_and_equals_the_built_in_defaults() {
        let c = load_str("default.toml", super::super::DEFAULT_CONFIG).expect("the default config loads");
        assert_eq!(c, FleetConfig::default());
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_file_and_line() {
        let e = load_str("fleet.toml", "[mqtt]\nclient_id = \"a\"\nbrokr = \"x:1\"\n").expect_err("refused");
        let p = e.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(3), "{}", p[0]);
        assert!(p[0].to_string().starts_with("fleet.toml:3: "), "{}", p[0]);
        assert!(p[0].message.contains("brokr"), "{}", p[0]);
    }

    #[test]
    fn a_value_that_cannot_work_names_its_key_and_line() {
        let e = load_str("fleet.toml", "[webhook]\nbatch_size = 0\nurl = \"ftp://x\"\n").expect_err("refused");
        let text: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
        assert!(text.contains(&"fleet.toml:2: webhook.batch_size: must be at least 1".to_owned()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("fleet.toml:3: webhook.url: ")), "{text:?}");
    }

    #[test]
    fn broker_tls_without_an_external_broker_is_refused_by_name() {
        let e = load_str("fleet.toml", "[mqtt]\ntls = true\n").expect_err("refused");
        let text: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(text[0].starts_with("fleet.toml:2: mqtt.tls: is for an external broker"), "{text:?}");
        let e =
            load_str("fleet.toml", "[mqtt]\nbroker = \"mq:8883\"\ntls_ca_file = \"/ca.pem\"\n").expect_err("refused");
        assert_eq!(e.problems()[0].to_string(), "fleet.toml:3: mqtt.tls_ca_file: is set but mqtt.tls is false");
    }

    #[test]
    fn a_bad_duration_is_a_typed_error_with_a_line() {
        let e = load_str("f.toml", "[time]\nhold_unsynced = \"a day\"\n").expect_err("refused");
        assert_eq!(e.problems()[0].line, Some(2));
    }
}
