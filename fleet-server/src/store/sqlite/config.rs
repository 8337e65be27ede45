//! Desired and reported device config in SQLite (docs/design/fleet-config-distribution.md).
//!
//! A change (a device's override, a group's defaults, a device's group) and the new version
//! of every device it affects are written in one IMMEDIATE transaction: a version is the
//! merge of the group's defaults and the device's override as they are in that transaction,
//! numbered one more than the device's last.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use simpul_protocol::DeviceId;
use simpul_protocol::control::ReportedConfig;

use super::to_i64;
use crate::store::StoreError;
use crate::store::config::{
    ConfigChange, ConfigGroup, ConfigInputs, ConfigRefused, ConfigVersion, DeviceConfig, VersionRow, add_members,
    device_config_of, device_name, next_version_of, state_name, to_version,
};

/// The device's row id, creating the row if the fleet never heard from it.
pub(super) fn device_id(tx: &Transaction<'_>, device: &DeviceId) -> Result<i64, StoreError> {
    tx.prepare_cached("INSERT INTO devices (name) VALUES (?1) ON CONFLICT(name) DO NOTHING")?
        .execute([device.as_str()])?;
    Ok(tx.prepare_cached("SELECT id FROM devices WHERE name = ?1")?.query_row([device.as_str()], |r| r.get(0))?)
}

/// The device's group defaults and its own override text as they are in `tx`.
pub(super) fn inputs(tx: &Transaction<'_>, id: i64) -> Result<ConfigInputs, StoreError> {
    let (defaults, own): (Option<String>, Option<String>) = tx
        .prepare_cached(
            "SELECT g.defaults, c.override_toml FROM device_config c
             LEFT JOIN config_groups g ON g.name = c.group_name WHERE c.device_id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, None));
    Ok(ConfigInputs { defaults, own: own.unwrap_or_default() })
}

/// Writes the device's next version: its group's defaults merged with its override.
pub(super) fn next_version(
    tx: &Transaction<'_>,
    id: i64,
    device: &DeviceId,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    let toml = inputs(tx, id)?.desired_toml()?;
    let last: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM config_versions WHERE device_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let v = next_version_of(device, last, toml, change)?;
    tx.prepare_cached(
        "INSERT INTO config_versions (device_id, version, toml, author, at_ms, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, to_i64(v.version)?, v.toml, v.author, v.at_ms, v.comment])?;
    Ok(v)
}

/// Sets a device's own override and writes its next version.
pub fn set_device_override(
    conn: &mut Connection,
    device: &DeviceId,
    toml: &str,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let v = write_override(&tx, device, toml, change)?;
    tx.commit()?;
    Ok(v)
}

/// Within `tx`: sets a device's own override and writes its next version.
pub(super) fn write_override(
    tx: &Transaction<'_>,
    device: &DeviceId,
    toml: &str,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    let id = device_id(tx, device)?;
    tx.execute(
        "INSERT INTO device_config (device_id, override_toml) VALUES (?1, ?2)
         ON CONFLICT(device_id) DO UPDATE SET override_toml = excluded.override_toml",
        params![id, toml],
    )?;
    next_version(tx, id, device, change)
}

/// Creates or replaces a group's defaults and writes the next version of each of its devices.
pub fn set_group_defaults(
    conn: &mut Connection,
    group: &str,
    toml: &str,
    change: &ConfigChange,
) -> Result<Vec<ConfigVersion>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO config_groups (name, defaults, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET defaults = excluded.defaults, updated_ms = excluded.updated_ms",
        params![group, toml, change.at_ms],
    )?;
    let members = tx
        .prepare(
            "SELECT d.id, d.name FROM device_config c JOIN devices d ON d.id = c.device_id
             WHERE c.group_name = ?1 ORDER BY d.name",
        )?
        .query_map([group], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut versions = Vec::with_capacity(members.len());
    for (id, name) in members {
        versions.push(next_version(&tx, id, &device_name(name)?, change)?);
    }
    tx.commit()?;
    Ok(versions)
}

/// Puts a device in `group` (or in none) and writes its next version.
pub fn set_device_group(
    conn: &mut Connection,
    device: &DeviceId,
    group: Option<&str>,
    change: &ConfigChange,
) -> Result<Result<ConfigVersion, ConfigRefused>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(g) = group {
        let known = tx.query_row("SELECT 1 FROM config_groups WHERE name = ?1", [g], |_| Ok(())).optional()?;
        if known.is_none() {
            return Ok(Err(ConfigRefused::NoSuchGroup(g.to_owned())));
        }
    }
    let id = device_id(&tx, device)?;
    tx.execute(
        "INSERT INTO device_config (device_id, group_name) VALUES (?1, ?2)
         ON CONFLICT(device_id) DO UPDATE SET group_name = excluded.group_name",
        params![id, group],
    )?;
    let v = next_version(&tx, id, device, change)?;
    tx.commit()?;
    Ok(Ok(v))
}

/// Records the device's report (inside the ingest transaction). A retained report heard
/// again after a reconnect keeps the time it was first received.
pub fn record_reported(
    conn: &Connection,
    device_id: i64,
    report: &ReportedConfig,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO config_reported (device_id, version, state, error, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(device_id) DO UPDATE SET version = excluded.version, state = excluded.state,
         error = excluded.error, at_ms = excluded.at_ms
         WHERE config_reported.version IS NOT excluded.version OR config_reported.state IS NOT excluded.state
            OR config_reported.error IS NOT excluded.error",
    )?
    .execute(params![device_id, to_i64(report.version)?, state_name(report.state), report.error, now_ms])?;
    Ok(())
}

const VERSION_COLUMNS: &str = "d.name, v.version, v.toml, v.author, v.at_ms, v.comment";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

/// The latest desired version of `device`, or of every device that has one.
pub fn latest_desired(conn: &Connection, device: Option<&DeviceId>) -> Result<Vec<ConfigVersion>, StoreError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM config_versions v JOIN devices d ON d.id = v.device_id
         WHERE (?1 IS NULL OR d.name = ?1)
           AND v.version = (SELECT MAX(version) FROM config_versions WHERE device_id = v.device_id)
         ORDER BY d.name"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([device.map(DeviceId::as_str)], version_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_version).collect()
}

/// Up to `limit` versions of `device`, newest first.
pub fn history(conn: &Connection, device: &DeviceId, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM config_versions v JOIN devices d ON d.id = v.device_id
         WHERE d.name = ?1 ORDER BY v.version DESC LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![device.as_str(), limit], version_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_version).collect()
}

/// What the fleet knows of `device`'s config; `None` if nothing.
pub fn device_config(conn: &Connection, device: &DeviceId) -> Result<Option<DeviceConfig>, StoreError> {
    let Some(id) = conn
        .prepare_cached("SELECT id FROM devices WHERE name = ?1")?
        .query_row([device.as_str()], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let membership: Option<(Option<String>, String)> = conn
        .prepare_cached("SELECT group_name, override_toml FROM device_config WHERE device_id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let reported: Option<(i64, String, Option<String>, i64)> = conn
        .prepare_cached("SELECT version, state, error, at_ms FROM config_reported WHERE device_id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let desired = latest_desired(conn, Some(device))?.pop();
    device_config_of(membership, reported, desired)
}

/// Every group with its devices, by name.
pub fn groups(conn: &Connection) -> Result<Vec<ConfigGroup>, StoreError> {
    let mut groups = conn
        .prepare_cached("SELECT name, defaults, updated_ms FROM config_groups ORDER BY name")?
        .query_map([], |r| {
            Ok(ConfigGroup { name: r.get(0)?, defaults: r.get(1)?, updated_ms: r.get(2)?, devices: Vec::new() })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let members = conn
        .prepare_cached(
            "SELECT c.group_name, d.name FROM device_config c JOIN devices d ON d.id = c.device_id
             WHERE c.group_name IS NOT NULL ORDER BY d.name",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    // Both are in name order (SQLite's BINARY collation is Rust's `str` order).
    add_members(&mut groups, members);
    Ok(groups)
}
