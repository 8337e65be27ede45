//! Reading the main file and its drop-ins, merging them, and decoding the result.
//!
//! `/etc/simpul/agent.toml` is read first, then every `*.toml` in `/etc/simpul/agent.d/`
//! in sorted file-name order (provisioning writes one, the fleet another, a person a
//! third). Tables merge key by key; any other value, arrays included, is replaced whole
//! by the later file. Every mistake is reported with its file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Table;
use toml::de::DeTable;

use super::error::{self, ConfigError, Problem};
use super::provenance::{KeyPath, LineIndex, Provenance};
use super::sensor::SensorConfig;
use super::{
    AgentConfig, BufferConfig, ClockConfig, DeviceConfig, HealthConfig, LogConfig, RetryConfig, StatusPageConfig,
    UplinkConfig, validate,
};

/// The files a config was made of, in the order they were applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSource {
    pub files: Vec<PathBuf>,
}

/// The drop-in folder of a main file: `agent.toml` -> `agent.d/` beside it.
pub fn drop_in_dir(main: &Path) -> PathBuf {
    let stem = main.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    main.with_file_name(format!("{stem}.d"))
}

/// Loads `main` and the drop-ins beside it (`agent.d/*.toml`, sorted by name).
pub fn load(main: &Path) -> Result<(AgentConfig, ConfigSource), ConfigError> {
    let mut files = vec![main.to_owned()];
    files.extend(drop_in_files(&drop_in_dir(main))?);
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|source| ConfigError::Read { path: f.clone(), source })?;
        texts.push((f.clone(), text));
    }
    let config = load_texts(&texts)?;
    Ok((config, ConfigSource { files }))
}

/// Loads `main` and its drop-ins as [`load`] does, with `text` standing in for the drop-in
/// `name` whether or not that file exists: how a fleet drop-in is checked before it is
/// written. Messages name the drop-in's path, so a mistake in `text` reads `…/name:line`.
pub fn load_with_drop_in(main: &Path, name: &str, text: &str) -> Result<(AgentConfig, ConfigSource), ConfigError> {
    let stand_in = drop_in_dir(main).join(name);
    let mut files = vec![main.to_owned()];
    let mut drop_ins: Vec<PathBuf> =
        drop_in_files(&drop_in_dir(main))?.into_iter().filter(|f| *f != stand_in).collect();
    drop_ins.push(stand_in.clone());
    drop_ins.sort();
    files.extend(drop_ins);
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        let body = if *f == stand_in {
            text.to_owned()
        } else {
            std::fs::read_to_string(f).map_err(|source| ConfigError::Read { path: f.clone(), source })?
        };
        texts.push((f.clone(), body));
    }
    let config = load_texts(&texts)?;
    Ok((config, ConfigSource { files }))
}

/// Loads one TOML text as if it were the only file, named `name` in messages.
pub fn load_str(name: &str, text: &str) -> Result<AgentConfig, ConfigError> {
    load_texts(&[(PathBuf::from(name), text.to_owned())])
}

/// `*.toml` files in `dir`, sorted by name; hidden files and anything not a file skipped.
/// A missing folder is no drop-ins.
fn drop_in_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ConfigError::Read { path: dir.to_owned(), source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read { path: dir.to_owned(), source })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
            continue;
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// The config as parsed before sensors are decoded by kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    device: DeviceConfig,
    #[serde(default)]
    buffer: BufferConfig,
    #[serde(default)]
    clock: ClockConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    sensor_retry: RetryConfig,
    #[serde(default)]
    uplink: UplinkConfig,
    #[serde(default)]
    health: HealthConfig,
    #[serde(default)]
    status_page: StatusPageConfig,
    #[serde(default)]
    remote_config: super::RemoteConfigConfig,
    #[serde(default)]
    probe: super::ProbeConfig,
    #[serde(default)]
    trust: super::TrustConfig,
    #[serde(default)]
    update: super::UpdateConfig,
    #[serde(default)]
    camera_relay: super::CameraRelayConfig,
    #[serde(default)]
    sensors: BTreeMap<String, Table>,
    #[serde(default)]
    cameras: BTreeMap<String, super::CameraConfig>,
}

fn load_texts(texts: &[(PathBuf, String)]) -> Result<AgentConfig, ConfigError> {
    let mut prov = Provenance::default();
    let mut merged = Table::new();
    for (file, text) in texts {
        let spanned = DeTable::parse(text).map_err(|e| syntax_problem(file, text, &e))?;
        prov.record_file(file, text, spanned.get_ref());
        let table: Table = toml::from_str(text).map_err(|e| syntax_problem(file, text, &e))?;
        merge(&mut merged, table);
    }
    let raw: RawConfig = decode(toml::Value::Table(merged), &KeyPath::default(), &prov)?;
    let mut sensors = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, table) in raw.sensors {
        match decode_sensor(&id, table, &prov) {
            Ok(s) => {
                sensors.insert(id, s);
            }
            Err(p) => problems.push(p),
        }
    }
    let config = AgentConfig {
        device: raw.device,
        buffer: raw.buffer,
        clock: raw.clock,
        log: raw.log,
        sensor_retry: raw.sensor_retry,
        uplink: raw.uplink,
        health: raw.health,
        status_page: raw.status_page,
        remote_config: raw.remote_config,
        probe: raw.probe,
        trust: raw.trust,
        update: raw.update,
        camera_relay: raw.camera_relay,
        sensors,
        cameras: raw.cameras,
    };
    problems.extend(validate::check(&config, &prov));
    if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
}

fn syntax_problem(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| LineIndex::new(text).line_of(s.start));
    let message = format!("not valid TOML: {}", e.message().trim());
    ConfigError::Invalid(vec![Problem { file: Some(file.to_owned()), line, key: None, message }])
}

/// Deep-merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Decodes `value` (found at `at`) into `T`, tracing an error to its file and line.
fn decode<T: DeserializeOwned>(value: toml::Value, at: &KeyPath, prov: &Provenance) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = at.join(&KeyPath::from_serde(e.path()));
        let message = e.inner().message().to_owned();
        ConfigError::Invalid(vec![unknown_field_aware(prov, &key, message)])
    })
}

/// serde reports an unknown field at its table; point at the field's own line instead.
fn unknown_field_aware(prov: &Provenance, key: &KeyPath, message: String) -> Problem {
    let field = message.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(f, _)| f.to_owned());
    let already_there = |f: &str| key.0.last().is_some_and(|s| *s == super::provenance::Seg::Key(f.to_owned()));
    match field {
        Some(f) if already_there(&f) => error::at(prov, key, message),
        Some(f) => error::at(prov, &key.key(&f), message),
        None => error::at(prov, key, message),
    }
}

/// Decodes one `[sensors.<id>]` table by its `kind`.
fn decode_sensor(id: &str, mut table: Table, prov: &Provenance) -> Result<SensorConfig, Problem> {
    let at = KeyPath::default().key("sensors").key(id);
    let first = |e: ConfigError| e.problems().into_iter().next().unwrap_or_else(|| error::at(prov, &at, "invalid"));
    let kinds = SensorConfig::KINDS.join(", ");
    let kind = match table.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(_) => return Err(error::at(prov, &at.key("kind"), format!("`kind` must be a string, one of {kinds}"))),
        None => return Err(error::at(prov, &at, format!("missing field `kind` (one of {kinds})"))),
    };
    let value = toml::Value::Table(table);
    match kind.as_str() {
        "ascii" => decode(value, &at, prov).map(SensorConfig::Ascii).map_err(first),
        "modbus" => decode(value, &at, prov).map(SensorConfig::Modbus).map_err(first),
        "simulated" => decode(value, &at, prov).map(SensorConfig::Simulated).map_err(first),
        other => {
            Err(error::at(prov, &at.key("kind"), format!("unknown sensor kind `{other}`, expected one of {kinds}")))
        }
    }
}
