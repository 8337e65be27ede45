//! The operators' tables (`users`, `tokens`) on their own connection to the fleet database,
//! so the API's auth checks wait neither for ingest's commits nor for the readers, and the
//! offline CLI (`simpul-fleet users add --offline`) opens only this.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::auth::{AuthStore, Role, TokenInfo, TokenRow, User};
use crate::store::StoreError;

/// Users, API tokens and sessions in the fleet's SQLite database.
#[derive(Debug)]
pub struct SqliteAuthStore {
    conn: Mutex<Connection>,
}

impl SqliteAuthStore {
    /// Opens the database at `path` (creating it and its schema if needed).
    pub fn open(path: &Path) -> Result<SqliteAuthStore, StoreError> {
        Ok(SqliteAuthStore { conn: Mutex::new(super::open_side(path)?) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn role(s: String) -> Result<Role, StoreError> {
    s.parse().map_err(StoreError::Corrupt)
}

impl AuthStore for SqliteAuthStore {
    fn add_user(&self, user: &User, password_hash: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO NOTHING",
            params![user.name, user.role.as_str(), password_hash, user.created_ms],
        )?;
        Ok(n == 1)
    }

    fn user(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = self
            .conn()
            .query_row("SELECT name, role, created_ms, password_hash FROM users WHERE name = ?1", [name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
            })
            .optional()?;
        row.map(|(name, r, created_ms, hash)| Ok((User { name, role: role(r)?, created_ms }, hash))).transpose()
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, role, created_ms FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        rows.map(|row| {
            let (name, r, created_ms) = row?;
            Ok(User { name, role: role(r)?, created_ms })
        })
        .collect()
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        // Sessions go with the user (ON DELETE CASCADE; foreign keys are on).
        Ok(self.conn().execute("DELETE FROM users WHERE name = ?1", [name])? == 1)
    }

    fn add_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO tokens (id, name, role, secret_hash, user_id, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, (SELECT id FROM users WHERE name = ?5), ?6, ?7)",
            params![t.id, t.name, t.role.as_str(), t.secret_hash, t.user, t.created_ms, t.expires_ms],
        )?;
        Ok(())
    }

    fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT t.id, t.name, t.role, t.secret_hash, u.name, t.created_ms, t.expires_ms
                 FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, name, r, secret_hash, user, created_ms, expires_ms)| {
            Ok(TokenRow { id, name, role: role(r)?, secret_hash, user, created_ms, expires_ms })
        })
        .transpose()
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, name, role, created_ms FROM tokens WHERE user_id IS NULL ORDER BY created_ms, id")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?;
        rows.map(|row| {
            let (id, name, r, created_ms) = row?;
            Ok(TokenInfo { id, name, role: role(r)?, created_ms })
        })
        .collect()
    }

    fn remove_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM tokens WHERE id = ?1", [id])? == 1)
    }

    fn remove_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let n = self.conn().execute("DELETE FROM tokens WHERE expires_ms IS NOT NULL AND expires_ms < ?1", [now_ms])?;
        Ok(n as u64)
    }
}
