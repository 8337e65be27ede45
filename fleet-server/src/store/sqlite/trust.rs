//! The trust tables (`enrolment_tokens`, `device_certs`) on their own connection to the
//! fleet database, like the operators' tables (auth.rs): the offline CLI opens only this.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use simpul_protocol::DeviceId;

use crate::broker::SecurityEvent;
use crate::store::StoreError;
use crate::trust::Issued;
use crate::trust::store::{
    DeviceCert, EnrolmentToken, NewEnrolmentToken, RenewBlocked, SpendRefused, TokenForCheck, TrustStore, TrustTx,
    canonical_serial, renew_in, spend_in,
};

/// Enrolment tokens and device certificates in the fleet's SQLite database.
#[derive(Debug)]
pub struct SqliteTrustStore {
    conn: Mutex<Connection>,
}

impl SqliteTrustStore {
    /// Opens the database at `path` (creating it and its schema if needed).
    pub fn open(path: &Path) -> Result<SqliteTrustStore, StoreError> {
        Ok(SqliteTrustStore { conn: Mutex::new(super::open_side(path)?) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const TOKEN_COLUMNS: &str = "id, group_name, site, created_ms, expires_ms, created_by, spent_ms, spent_by, secret_hash";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenForCheck> {
    Ok(TokenForCheck {
        token: EnrolmentToken {
            id: r.get(0)?,
            group: r.get(1)?,
            site: r.get(2)?,
            created_ms: r.get(3)?,
            expires_ms: r.get(4)?,
            created_by: r.get(5)?,
            spent_ms: r.get(6)?,
            spent_by: r.get(7)?,
        },
        secret_hash: r.get(8)?,
    })
}

/// The queries of the trust transactions on a connection (or a transaction, by deref).
struct Sql<'a>(&'a Connection);

impl TrustTx for Sql<'_> {
    fn spent(&mut self, token_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        let row = self
            .0
            .query_row(
                "SELECT spent_ms, spent_by FROM enrolment_tokens WHERE id = ?1 AND spent_ms IS NOT NULL",
                [token_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row)
    }

    fn live_cert(&mut self, device: &str, now_ms: i64) -> Result<Option<(String, i64)>, StoreError> {
        let row = self
            .0
            .query_row(
                "SELECT serial, not_after_ms FROM device_certs
                 WHERE device = ?1 AND revoked_ms IS NULL AND not_after_ms > ?2
                 ORDER BY issued_ms DESC LIMIT 1",
                params![device, now_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row)
    }

    fn cert(&mut self, serial: &str) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = self
            .0
            .query_row("SELECT device, revoked_ms FROM device_certs WHERE serial = ?1", [serial], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(row)
    }

    fn insert_cert(&mut self, device: &str, now_ms: i64, issued: &Issued) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO device_certs (serial, device, issued_ms, not_after_ms) VALUES (?1, ?2, ?3, ?4)",
            params![issued.serial, device, now_ms, issued.not_after_ms],
        )?;
        Ok(())
    }

    fn spend(&mut self, token_id: &str, now_ms: i64, device: &str) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE enrolment_tokens SET spent_ms = ?2, spent_by = ?3 WHERE id = ?1",
            params![token_id, now_ms, device],
        )?;
        Ok(())
    }
}

impl TrustStore for SqliteTrustStore {
    fn add_enrolment_token(&self, t: &NewEnrolmentToken, secret_hash: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO enrolment_tokens (id, group_name, site, created_ms, expires_ms, created_by, secret_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![t.id, t.group, t.site, t.created_ms, t.expires_ms, t.created_by, secret_hash],
        )?;
        Ok(())
    }

    fn enrolment_tokens(&self) -> Result<Vec<EnrolmentToken>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM enrolment_tokens ORDER BY created_ms DESC, id"))?;
        let rows = stmt.query_map([], token_row)?.map(|r| r.map(|t| t.token)).collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn enrolment_token(&self, id: &str) -> Result<Option<TokenForCheck>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(&format!("SELECT {TOKEN_COLUMNS} FROM enrolment_tokens WHERE id = ?1"), [id], token_row)
            .optional()?;
        Ok(row)
    }

    fn spend_for_certificate(
        &self,
        token_id: &str,
        device: &DeviceId,
        now_ms: i64,
        issued: &Issued,
    ) -> Result<Result<(), SpendRefused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let spent = spend_in(&mut Sql(&tx), token_id, device, now_ms, issued)?;
        if spent.is_ok() {
            tx.commit()?;
        }
        Ok(spent)
    }

    fn record_renewal(
        &self,
        presented: &str,
        device: &DeviceId,
        now_ms: i64,
        issued: &Issued,
    ) -> Result<Result<(), RenewBlocked>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let renewed = renew_in(&mut Sql(&tx), presented, device, now_ms, issued)?;
        if renewed.is_ok() {
            tx.commit()?;
        }
        Ok(renewed)
    }

    fn device_certs(&self, device: &DeviceId) -> Result<Vec<DeviceCert>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT device, serial, issued_ms, not_after_ms, revoked_ms FROM device_certs
             WHERE device = ?1 ORDER BY issued_ms DESC, serial",
        )?;
        let rows = stmt
            .query_map([device.as_str()], |r| {
                Ok(DeviceCert {
                    device: r.get(0)?,
                    serial: r.get(1)?,
                    issued_ms: r.get(2)?,
                    not_after_ms: r.get(3)?,
                    revoked_ms: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn record_security_event(&self, e: &SecurityEvent) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO security_events (at_ms, identity, kind, detail, remote) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.at_ms, e.identity, e.kind, e.detail, e.remote],
        )?;
        Ok(())
    }

    fn security_events(&self, identity: Option<&str>, limit: usize) -> Result<Vec<SecurityEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ms, identity, kind, detail, remote FROM security_events
             WHERE ?1 IS NULL OR identity = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![identity, limit], |r| {
                Ok(SecurityEvent {
                    at_ms: r.get(0)?,
                    identity: r.get(1)?,
                    kind: r.get(2)?,
                    detail: r.get(3)?,
                    remote: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn revoke_device(&self, device: &DeviceId, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let serials: Vec<String> = {
            let mut stmt = tx.prepare("SELECT serial FROM device_certs WHERE device = ?1 AND revoked_ms IS NULL")?;
            stmt.query_map([device.as_str()], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE device_certs SET revoked_ms = ?2 WHERE device = ?1 AND revoked_ms IS NULL",
            params![device.as_str(), now_ms],
        )?;
        tx.commit()?;
        Ok(serials)
    }

    fn is_revoked(&self, serial: &str) -> Result<bool, StoreError> {
        let revoked: Option<Option<i64>> = self
            .conn()
            .query_row("SELECT revoked_ms FROM device_certs WHERE serial = ?1", [canonical_serial(serial)], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(matches!(revoked, Some(Some(_))))
    }
}

impl crate::broker::Revocations for SqliteTrustStore {
    fn is_revoked(&self, serial: &str) -> Result<bool, String> {
        TrustStore::is_revoked(self, serial).map_err(|e| e.to_string())
    }
}
