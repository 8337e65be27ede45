//! The trust tables (`enrolment_tokens`, `device_certs`, `security_events`) in PostgreSQL
//! (as `sqlite/trust.rs`), and the broker's revocation check on them. The spend and the
//! renewal decide in [`crate::trust::store`]; this file answers their queries.

use postgres::{Row, Transaction};
use simpul_protocol::DeviceId;

use super::{Conn, PgTarget, control_tx};
use crate::broker::SecurityEvent;
use crate::store::StoreError;
use crate::trust::Issued;
use crate::trust::store::{
    DeviceCert, EnrolmentToken, NewEnrolmentToken, RenewBlocked, SpendRefused, TokenForCheck, TrustStore, TrustTx,
    canonical_serial, renew_in, spend_in,
};

/// Enrolment tokens and device certificates in the fleet's PostgreSQL database.
#[derive(Debug)]
pub struct PgTrustStore {
    conn: Conn,
}

impl PgTrustStore {
    /// Connects to `target` (creating the schema if needed).
    pub fn open(target: &PgTarget) -> Result<PgTrustStore, StoreError> {
        Ok(PgTrustStore { conn: super::connect(target)? })
    }
}

const TOKEN_COLUMNS: &str = "id, group_name, site, created_ms, expires_ms, created_by, spent_ms, spent_by, secret_hash";

fn token_row(r: &Row) -> Result<TokenForCheck, StoreError> {
    Ok(TokenForCheck {
        token: EnrolmentToken {
            id: r.try_get(0)?,
            group: r.try_get(1)?,
            site: r.try_get(2)?,
            created_ms: r.try_get(3)?,
            expires_ms: r.try_get(4)?,
            created_by: r.try_get(5)?,
            spent_ms: r.try_get(6)?,
            spent_by: r.try_get(7)?,
        },
        secret_hash: r.try_get(8)?,
    })
}

/// The queries of the trust transactions in PostgreSQL's SQL.
struct Pg<'a, 'b>(&'a mut Transaction<'b>);

impl TrustTx for Pg<'_, '_> {
    fn spent(&mut self, token_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        let row = self.0.query_opt(
            "SELECT spent_ms, spent_by FROM enrolment_tokens WHERE id = $1 AND spent_ms IS NOT NULL",
            &[&token_id],
        )?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    fn live_cert(&mut self, device: &str, now_ms: i64) -> Result<Option<(String, i64)>, StoreError> {
        let row = self.0.query_opt(
            "SELECT serial, not_after_ms FROM device_certs
             WHERE device = $1 AND revoked_ms IS NULL AND not_after_ms > $2
             ORDER BY issued_ms DESC LIMIT 1",
            &[&device, &now_ms],
        )?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    fn cert(&mut self, serial: &str) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = self.0.query_opt("SELECT device, revoked_ms FROM device_certs WHERE serial = $1", &[&serial])?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    fn insert_cert(&mut self, device: &str, now_ms: i64, issued: &Issued) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO device_certs (serial, device, issued_ms, not_after_ms) VALUES ($1, $2, $3, $4)",
            &[&issued.serial, &device, &now_ms, &issued.not_after_ms],
        )?;
        Ok(())
    }

    fn spend(&mut self, token_id: &str, now_ms: i64, device: &str) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE enrolment_tokens SET spent_ms = $2, spent_by = $3 WHERE id = $1",
            &[&token_id, &now_ms, &device],
        )?;
        Ok(())
    }
}

impl TrustStore for PgTrustStore {
    fn add_enrolment_token(&self, t: &NewEnrolmentToken, secret_hash: &str) -> Result<(), StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        tx.execute(
            "INSERT INTO enrolment_tokens (id, group_name, site, created_ms, expires_ms, created_by, secret_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&t.id, &t.group, &t.site, &t.created_ms, &t.expires_ms, &t.created_by, &secret_hash],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn enrolment_tokens(&self) -> Result<Vec<EnrolmentToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM enrolment_tokens ORDER BY created_ms DESC, id");
        let rows = self.conn.get()?.query(sql.as_str(), &[])?;
        rows.iter().map(|r| Ok(token_row(r)?.token)).collect()
    }

    fn enrolment_token(&self, id: &str) -> Result<Option<TokenForCheck>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM enrolment_tokens WHERE id = $1");
        let row = self.conn.get()?.query_opt(sql.as_str(), &[&id])?;
        row.as_ref().map(token_row).transpose()
    }

    fn spend_for_certificate(
        &self,
        token_id: &str,
        device: &DeviceId,
        now_ms: i64,
        issued: &Issued,
    ) -> Result<Result<(), SpendRefused>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let spent = spend_in(&mut Pg(&mut tx), token_id, device, now_ms, issued)?;
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
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let renewed = renew_in(&mut Pg(&mut tx), presented, device, now_ms, issued)?;
        if renewed.is_ok() {
            tx.commit()?;
        }
        Ok(renewed)
    }

    fn device_certs(&self, device: &DeviceId) -> Result<Vec<DeviceCert>, StoreError> {
        let rows = self.conn.get()?.query(
            "SELECT device, serial, issued_ms, not_after_ms, revoked_ms FROM device_certs
             WHERE device = $1 ORDER BY issued_ms DESC, serial",
            &[&device.as_str()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DeviceCert {
                    device: r.try_get(0)?,
                    serial: r.try_get(1)?,
                    issued_ms: r.try_get(2)?,
                    not_after_ms: r.try_get(3)?,
                    revoked_ms: r.try_get(4)?,
                })
            })
            .collect()
    }

    fn record_security_event(&self, e: &SecurityEvent) -> Result<(), StoreError> {
        // One insert, atomic on its own: no control lock.
        self.conn.get()?.execute(
            "INSERT INTO security_events (at_ms, identity, kind, detail, remote) VALUES ($1, $2, $3, $4, $5)",
            &[&e.at_ms, &e.identity, &e.kind, &e.detail, &e.remote],
        )?;
        Ok(())
    }

    fn security_events(&self, identity: Option<&str>, limit: usize) -> Result<Vec<SecurityEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.conn.get()?.query(
            "SELECT at_ms, identity, kind, detail, remote FROM security_events
             WHERE $1::TEXT IS NULL OR identity = $1 ORDER BY id DESC LIMIT $2",
            &[&identity, &limit],
        )?;
        rows.iter()
            .map(|r| {
                Ok(SecurityEvent {
                    at_ms: r.try_get(0)?,
                    identity: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    detail: r.try_get(3)?,
                    remote: r.try_get(4)?,
                })
            })
            .collect()
    }

    fn revoke_device(&self, device: &DeviceId, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let rows = tx.query(
            "UPDATE device_certs SET revoked_ms = $2 WHERE device = $1 AND revoked_ms IS NULL RETURNING serial",
            &[&device.as_str(), &now_ms],
        )?;
        let serials = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(serials)
    }

    fn is_revoked(&self, serial: &str) -> Result<bool, StoreError> {
        // One lookup by primary key: the broker asks on every connect.
        let row = self.conn.get()?.query_opt(
            "SELECT revoked_ms IS NOT NULL FROM device_certs WHERE serial = $1",
            &[&canonical_serial(serial)],
        )?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => false,
        })
    }
}

impl crate::broker::Revocations for PgTrustStore {
    fn is_revoked(&self, serial: &str) -> Result<bool, String> {
        TrustStore::is_revoked(self, serial).map_err(|e| e.to_string())
    }
}
