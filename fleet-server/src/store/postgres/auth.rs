//! The operators' tables (`users`, `tokens`) in PostgreSQL, on a connection of their own
//! (as `sqlite/auth.rs`): the API's auth checks never wait for ingest.

use postgres::Row;

use super::{Conn, PgTarget, control_tx};
use crate::auth::{AuthStore, Role, TokenInfo, TokenRow, User};
use crate::store::StoreError;

/// Users, API tokens and sessions in the fleet's PostgreSQL database.
#[derive(Debug)]
pub struct PgAuthStore {
    conn: Conn,
}

impl PgAuthStore {
    /// Connects to `target` (creating the schema if needed).
    pub fn open(target: &PgTarget) -> Result<PgAuthStore, StoreError> {
        Ok(PgAuthStore { conn: super::connect(target)? })
    }
}

fn role(s: String) -> Result<Role, StoreError> {
    s.parse().map_err(StoreError::Corrupt)
}

fn user_of(r: &Row) -> Result<User, StoreError> {
    Ok(User { name: r.try_get(0)?, role: role(r.try_get(1)?)?, created_ms: r.try_get(2)? })
}

impl AuthStore for PgAuthStore {
    fn add_user(&self, user: &User, password_hash: &str) -> Result<bool, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let n = tx.execute(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[&user.name, &user.role.as_str(), &password_hash, &user.created_ms],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn user(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = self
            .conn
            .get()?
            .query_opt("SELECT name, role, created_ms, password_hash FROM users WHERE name = $1", &[&name])?;
        row.map(|r| Ok((user_of(&r)?, r.try_get(3)?))).transpose()
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = self.conn.get()?.query("SELECT name, role, created_ms FROM users ORDER BY name", &[])?;
        rows.iter().map(user_of).collect()
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        // Sessions go with the user (ON DELETE CASCADE).
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let n = tx.execute("DELETE FROM users WHERE name = $1", &[&name])?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn add_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        tx.execute(
            "INSERT INTO tokens (id, name, role, secret_hash, user_id, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, (SELECT id FROM users WHERE name = $5), $6, $7)",
            &[&t.id, &t.name, &t.role.as_str(), &t.secret_hash, &t.user, &t.created_ms, &t.expires_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = self.conn.get()?.query_opt(
            "SELECT t.id, t.name, t.role, t.secret_hash, u.name, t.created_ms, t.expires_ms
             FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = $1",
            &[&id],
        )?;
        row.map(|r| {
            Ok(TokenRow {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                role: role(r.try_get(2)?)?,
                secret_hash: r.try_get(3)?,
                user: r.try_get(4)?,
                created_ms: r.try_get(5)?,
                expires_ms: r.try_get(6)?,
            })
        })
        .transpose()
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = self.conn.get()?.query(
            "SELECT id, name, role, created_ms FROM tokens WHERE user_id IS NULL ORDER BY created_ms, id",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    role: role(r.try_get(2)?)?,
                    created_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    fn remove_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let n = tx.execute("DELETE FROM tokens WHERE id = $1", &[&id])?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn remove_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let mut client = self.conn.get()?;
        let mut tx = control_tx(&mut client)?;
        let n = tx.execute("DELETE FROM tokens WHERE expires_ms IS NOT NULL AND expires_ms < $1", &[&now_ms])?;
        tx.commit()?;
        Ok(n)
    }
}
