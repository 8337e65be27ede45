//! The `releases` and `device_releases` tables in PostgreSQL (as `sqlite/releases.rs`).

use postgres::Transaction;
use simpul_protocol::DeviceId;
use simpul_protocol::release::{Manifest, SignedManifest};

use super::{Conn, PgTarget, control_tx};
use crate::releases::{DeviceRelease, ReleaseInfo, ReleaseStore};
use crate::store::StoreError;

/// Releases in the fleet's PostgreSQL database.
#[derive(Debug)]
pub struct PgReleaseStore {
    conn: Conn,
}

impl PgReleaseStore {
    /// Connects to `target` (creating the schema if needed).
    pub fn open(target: &PgTarget) -> Result<PgReleaseStore, StoreError> {
        Ok(PgReleaseStore { conn: super::connect(target)? })
    }
}

fn size(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

impl ReleaseStore for PgReleaseStore {
    fn add_release(&self, signed: &SignedManifest, binary: &[u8], at_ms: i64, by: &str) -> Result<bool, StoreError> {
        let m = &signed.manifest;
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let added = tx.execute(
            r#"INSERT INTO releases (version, target, sha256, size, public_key, signature, "binary", published_ms, published_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"#,
            &[
                &m.version,
                &m.target,
                &m.sha256,
                &i64::try_from(m.size).unwrap_or(i64::MAX),
                &signed.public_key,
                &signed.signature,
                &binary,
                &at_ms,
                &by,
            ],
        )?;
        tx.commit()?;
        Ok(added == 1)
    }

    fn releases(&self) -> Result<Vec<ReleaseInfo>, StoreError> {
        let rows = self.conn.get()?.query(
            "SELECT version, target, sha256, size, public_key, published_ms, published_by FROM releases
             ORDER BY published_ms DESC, version DESC, target",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ReleaseInfo {
                    version: r.try_get(0)?,
                    target: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                    size: size(r.try_get(3)?),
                    public_key: r.try_get(4)?,
                    published_ms: r.try_get(5)?,
                    published_by: r.try_get(6)?,
                })
            })
            .collect()
    }

    fn release(&self, version: &str, target: &str) -> Result<Option<(SignedManifest, Vec<u8>)>, StoreError> {
        let row = self.conn.get()?.query_opt(
            r#"SELECT sha256, size, public_key, signature, "binary" FROM releases WHERE version = $1 AND target = $2"#,
            &[&version, &target],
        )?;
        row.map(|r| {
            let manifest = Manifest {
                version: version.to_owned(),
                target: target.to_owned(),
                sha256: r.try_get(0)?,
                size: size(r.try_get(1)?),
            };
            let signed = SignedManifest { manifest, public_key: r.try_get(2)?, signature: r.try_get(3)? };
            Ok((signed, r.try_get::<_, Vec<u8>>(4)?))
        })
        .transpose()
    }

    fn has_version(&self, version: &str) -> Result<bool, StoreError> {
        let row =
            self.conn.get()?.query_one("SELECT EXISTS (SELECT 1 FROM releases WHERE version = $1)", &[&version])?;
        Ok(row.try_get(0)?)
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
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        upsert_device_release(&mut tx, device.as_str(), version, rollout, at_ms, by)?;
        tx.commit()?;
        Ok(())
    }

    fn device_releases(&self, device: Option<&DeviceId>) -> Result<Vec<DeviceRelease>, StoreError> {
        let rows = self.conn.get()?.query(
            "SELECT device, version, rollout FROM device_releases WHERE $1::TEXT IS NULL OR device = $1 ORDER BY device",
            &[&device.map(DeviceId::as_str)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.extend(DeviceRelease::from_row(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        Ok(out)
    }
}

/// Sets the release `device` should run (`rollout`: the rollout that asked, if any).
pub(super) fn upsert_device_release(
    tx: &mut Transaction<'_>,
    device: &str,
    version: &str,
    rollout: Option<i64>,
    at_ms: i64,
    by: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO device_releases (device, version, rollout, set_ms, set_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (device) DO UPDATE SET version = $2, rollout = $3, set_ms = $4, set_by = $5",
        &[&device, &version, &rollout, &at_ms, &by],
    )?;
    Ok(())
}
