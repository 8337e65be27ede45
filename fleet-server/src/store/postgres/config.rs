//! Desired and reported device config in PostgreSQL (docs/design/fleet-config-distribution.md).
//!
//! A change (a device's override, a group's defaults, a device's group) and the new version
//! of every device it affects are written in one transaction that first takes
//! `pg_advisory_xact_lock(LOCK_CONTROL)`: control-plane writes of every process run one at
//! a time, as on SQLite, so a version is the merge of the group's defaults and the device's
//! override as they are in that transaction, numbered one more than the device's last.

use postgres::{Client, Row, Transaction};
use simpul_protocol::DeviceId;
use simpul_protocol::control::ReportedConfig;

use super::{LOCK_CONTROL, to_i64};
use crate::store::StoreError;
use crate::store::config::{
    ConfigChange, ConfigGroup, ConfigInputs, ConfigRefused, ConfigVersion, DeviceConfig, VersionRow, add_members,
    device_config_of, device_name, next_version_of, state_name, to_version,
};

/// A transaction holding the control-plane lock.
pub(super) fn control_transaction(client: &mut Client) -> Result<Transaction<'_>, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CONTROL])?;
    Ok(tx)
}

/// The device's row id, creating the row if the fleet never heard from it (another process
/// may create the same name at once: the insert then does nothing).
pub(super) fn device_id(tx: &mut Transaction<'_>, device: &DeviceId) -> Result<i64, StoreError> {
    tx.execute("INSERT INTO devices (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[&device.as_str()])?;
    Ok(tx.query_one("SELECT id FROM devices WHERE name = $1", &[&device.as_str()])?.try_get(0)?)
}

/// The device's group defaults and its own override text as they are in `tx`.
pub(super) fn inputs(tx: &mut Transaction<'_>, id: i64) -> Result<ConfigInputs, StoreError> {
    let row = tx.query_opt(
        "SELECT g.defaults, c.override_toml FROM device_config c
         LEFT JOIN config_groups g ON g.name = c.group_name WHERE c.device_id = $1",
        &[&id],
    )?;
    let (defaults, own): (Option<String>, Option<String>) = match row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (None, None),
    };
    Ok(ConfigInputs { defaults, own: own.unwrap_or_default() })
}

/// Writes the device's next version: its group's defaults merged with its override.
fn next_version(
    tx: &mut Transaction<'_>,
    id: i64,
    device: &DeviceId,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    let toml = inputs(tx, id)?.desired_toml()?;
    let last: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM config_versions WHERE device_id = $1", &[&id])?
        .try_get(0)?;
    let v = next_version_of(device, last, toml, change)?;
    tx.execute(
        "INSERT INTO config_versions (device_id, version, toml, author, at_ms, comment)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &to_i64(v.version)?, &v.toml, &v.author, &v.at_ms, &v.comment],
    )?;
    Ok(v)
}

/// Sets a device's own override and writes its next version.
pub fn set_device_override(
    client: &mut Client,
    device: &DeviceId,
    toml: &str,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    let mut tx = control_transaction(client)?;
    let v = write_override(&mut tx, device, toml, change)?;
    tx.commit()?;
    Ok(v)
}

/// Within `tx`: sets a device's own override and writes its next version.
pub(super) fn write_override(
    tx: &mut Transaction<'_>,
    device: &DeviceId,
    toml: &str,
    change: &ConfigChange,
) -> Result<ConfigVersion, StoreError> {
    let id = device_id(tx, device)?;
    tx.execute(
        "INSERT INTO device_config (device_id, override_toml) VALUES ($1, $2)
         ON CONFLICT (device_id) DO UPDATE SET override_toml = excluded.override_toml",
        &[&id, &toml],
    )?;
    next_version(tx, id, device, change)
}

/// Creates or replaces a group's defaults and writes the next version of each of its devices.
pub fn set_group_defaults(
    client: &mut Client,
    group: &str,
    toml: &str,
    change: &ConfigChange,
) -> Result<Vec<ConfigVersion>, StoreError> {
    let mut tx = control_transaction(client)?;
    tx.execute(
        "INSERT INTO config_groups (name, defaults, updated_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET defaults = excluded.defaults, updated_ms = excluded.updated_ms",
        &[&group, &toml, &change.at_ms],
    )?;
    let members = tx
        .query(
            r#"SELECT d.id, d.name FROM device_config c JOIN devices d ON d.id = c.device_id
             WHERE c.group_name = $1 ORDER BY d.name COLLATE "C""#,
            &[&group],
        )?
        .iter()
        .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut versions = Vec::with_capacity(members.len());
    for (id, name) in members {
        versions.push(next_version(&mut tx, id, &device_name(name)?, change)?);
    }
    tx.commit()?;
    Ok(versions)
}

/// Puts a device in `group` (or in none) and writes its next version.
pub fn set_device_group(
    client: &mut Client,
    device: &DeviceId,
    group: Option<&str>,
    change: &ConfigChange,
) -> Result<Result<ConfigVersion, ConfigRefused>, StoreError> {
    let mut tx = control_transaction(client)?;
    if let Some(g) = group {
        let known = tx.query_opt("SELECT 1 FROM config_groups WHERE name = $1", &[&g])?;
        if known.is_none() {
            return Ok(Err(ConfigRefused::NoSuchGroup(g.to_owned())));
        }
    }
    let id = device_id(&mut tx, device)?;
    tx.execute(
        "INSERT INTO device_config (device_id, group_name) VALUES ($1, $2)
         ON CONFLICT (device_id) DO UPDATE SET group_name = excluded.group_name",
        &[&id, &group],
    )?;
    let v = next_version(&mut tx, id, device, change)?;
    tx.commit()?;
    Ok(Ok(v))
}

/// Records the device's report (inside the ingest transaction). A retained report heard
/// again after a reconnect keeps the time it was first received.
pub fn record_reported(
    tx: &mut Transaction<'_>,
    device_id: i64,
    report: &ReportedConfig,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO config_reported (device_id, version, state, error, at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, state = excluded.state,
         error = excluded.error, at_ms = excluded.at_ms
         WHERE config_reported.version IS DISTINCT FROM excluded.version
            OR config_reported.state IS DISTINCT FROM excluded.state
            OR config_reported.error IS DISTINCT FROM excluded.error",
        &[&device_id, &to_i64(report.version)?, &state_name(report.state), &report.error, &now_ms],
    )?;
    Ok(())
}

const VERSION_COLUMNS: &str = "d.name, v.version, v.toml, v.author, v.at_ms, v.comment";

fn version_row(r: &Row) -> Result<ConfigVersion, StoreError> {
    let row: VersionRow = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?);
    to_version(row)
}

/// The latest desired version of `device`, or of every device that has one.
pub fn latest_desired(client: &mut Client, device: Option<&DeviceId>) -> Result<Vec<ConfigVersion>, StoreError> {
    let sql = format!(
        r#"SELECT {VERSION_COLUMNS} FROM config_versions v JOIN devices d ON d.id = v.device_id
         WHERE ($1::text IS NULL OR d.name = $1)
           AND v.version = (SELECT MAX(version) FROM config_versions WHERE device_id = v.device_id)
         ORDER BY d.name COLLATE "C""#
    );
    client.query(&sql, &[&device.map(DeviceId::as_str)])?.iter().map(version_row).collect()
}

/// Up to `limit` versions of `device`, newest first.
pub fn history(client: &mut Client, device: &DeviceId, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM config_versions v JOIN devices d ON d.id = v.device_id
         WHERE d.name = $1 ORDER BY v.version DESC LIMIT $2"
    );
    client.query(&sql, &[&device.as_str(), &super::read::limit_i64(limit)])?.iter().map(version_row).collect()
}

/// What the fleet knows of `device`'s config; `None` if nothing.
pub fn device_config(client: &mut Client, device: &DeviceId) -> Result<Option<DeviceConfig>, StoreError> {
    let Some(id) = client.query_opt("SELECT id FROM devices WHERE name = $1", &[&device.as_str()])? else {
        return Ok(None);
    };
    let id: i64 = id.try_get(0)?;
    let membership = client
        .query_opt("SELECT group_name, override_toml FROM device_config WHERE device_id = $1", &[&id])?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
    let reported = client
        .query_opt("SELECT version, state, error, at_ms FROM config_reported WHERE device_id = $1", &[&id])?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .transpose()?;
    let desired = latest_desired(client, Some(device))?.pop();
    device_config_of(membership, reported, desired)
}

/// Every group with its devices, by name.
pub fn groups(client: &mut Client) -> Result<Vec<ConfigGroup>, StoreError> {
    let mut groups = client
        .query(r#"SELECT name, defaults, updated_ms FROM config_groups ORDER BY name COLLATE "C""#, &[])?
        .iter()
        .map(|r| {
            Ok(ConfigGroup {
                name: r.try_get(0)?,
                defaults: r.try_get(1)?,
                updated_ms: r.try_get(2)?,
                devices: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let members = client
        .query(
            r#"SELECT c.group_name, d.name FROM device_config c JOIN devices d ON d.id = c.device_id
             WHERE c.group_name IS NOT NULL ORDER BY d.name COLLATE "C""#,
            &[],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Both are in name order (COLLATE "C" is Rust's `str` order).
    add_members(&mut groups, members);
    Ok(groups)
}
