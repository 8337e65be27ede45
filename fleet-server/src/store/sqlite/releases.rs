//! The `releases` table on its own connection to the fleet database: signed manifests and
//! the binaries (a few MB each, read whole when a box downloads one).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use simpul_protocol::release::{Manifest, SignedManifest};

use simpul_protocol::DeviceId;

use crate::releases::{DeviceRelease, ReleaseInfo, ReleaseStore};
use crate::store::StoreError;

/// Releases in the fleet's SQLite database.
#[derive(Debug)]
pub struct SqliteReleaseStore {
    conn: Mutex<Connection>,
}

impl SqliteReleaseStore {
    /// Opens the database at `path` (creating it and its schema if needed).
    pub fn open(path: &Path) -> Result<SqliteReleaseStore, StoreError> {
        Ok(SqliteReleaseStore { conn: Mutex::new(super::open_side(path)?) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn size(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

impl ReleaseStore for SqliteReleaseStore {
    fn add_release(&self, signed: &SignedManifest, binary: &[u8], at_ms: i64, by: &str) -> Result<bool, StoreError> {
        let m = &signed.manifest;
        let added = self.conn().execute(
            "INSERT INTO releases (version, target, sha256, size, public_key, signature, binary, published_ms, published_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
            params![
                m.version,
                m.target,
                m.sha256,
                i64::try_from(m.size).unwrap_or(i64::MAX),
                signed.public_key,
                signed.signature,
                binary,
                at_ms,
                by
            ],
        )?;
        Ok(added == 1)
    }

    fn releases(&self) -> Result<Vec<ReleaseInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version, target, sha256, size, public_key, published_ms, published_by FROM releases
             ORDER BY published_ms DESC, version DESC, target",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ReleaseInfo {
                    version: r.get(0)?,
                    target: r.get(1)?,
                    sha256: r.get(2)?,
                    size: size(r.get(3)?),
                    public_key: r.get(4)?,
                    published_ms: r.get(5)?,
                    published_by: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn release(&self, version: &str, target: &str) -> Result<Option<(SignedManifest, Vec<u8>)>, StoreError> {
        let found = self
            .conn()
            .query_row(
                "SELECT sha256, size, public_key, signature, binary FROM releases WHERE version = ?1 AND target = ?2",
                params![version, target],
                |r| {
                    let manifest = Manifest {
                        version: version.to_owned(),
                        target: target.to_owned(),
                        sha256: r.get(0)?,
                        size: size(r.get(1)?),
                    };
                    let signed = SignedManifest { manifest, public_key: r.get(2)?, signature: r.get(3)? };
                    Ok((signed, r.get::<_, Vec<u8>>(4)?))
                },
            )
            .optional()?;
        Ok(found)
    }

    fn has_version(&self, version: &str) -> Result<bool, StoreError> {
        let n: i64 =
            self.conn().query_row("SELECT COUNT(*) FROM releases WHERE version = ?1", [version], |r| r.get(0))?;
        Ok(n > 0)
    }

    fn set_device_release(
        &self,
        device: &DeviceId,
        version: &str,
        rollout: Option<u64>,
        at_ms: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        let rollout = rollout.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
        upsert_device_release(&self.conn(), device.as_str(), version, rollout, at_ms, by)
    }

    fn device_releases(&self, device: Option<&DeviceId>) -> Result<Vec<DeviceRelease>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT device, version, rollout FROM device_releases WHERE ?1 IS NULL OR device = ?1 ORDER BY device",
        )?;
        let rows = stmt
            .query_map([device.map(DeviceId::as_str)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(device, version, rollout)| DeviceRelease::from_row(device, version, rollout))
            .collect())
    }
}

/// Sets the release `device` should run (`rollout`: the rollout that asked, if any).
pub(super) fn upsert_device_release(
    conn: &Connection,
    device: &str,
    version: &str,
    rollout: Option<i64>,
    at_ms: i64,
    by: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO device_releases (device, version, rollout, set_ms, set_by) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device) DO UPDATE SET version = ?2, rollout = ?3, set_ms = ?4, set_by = ?5",
    )?
    .execute(params![device, version, rollout, at_ms, by])?;
    Ok(())
}
