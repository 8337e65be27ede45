//! The SQLite schema. `PRAGMA user_version` names its version; a later change adds a
//! `vN_to_vN+1` step here.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this build writes.
pub const VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE devices (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    watermark       INTEGER NOT NULL DEFAULT 0,
    dropped         INTEGER NOT NULL DEFAULT 0,
    stored          INTEGER NOT NULL DEFAULT 0,
    malformed       INTEGER NOT NULL DEFAULT 0,
    online          INTEGER
);
-- Done (stored or dropped) seq ranges above each device's watermark.
CREATE TABLE device_ranges (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    first     INTEGER NOT NULL,
    last      INTEGER NOT NULL,
    PRIMARY KEY (device_id, first)
) WITHOUT ROWID;
CREATE TABLE readings (
    device_id       INTEGER NOT NULL REFERENCES devices(id),
    seq             INTEGER NOT NULL,
    sensor          TEXT NOT NULL,
    metric          TEXT NOT NULL,
    unit            TEXT NOT NULL,
    value           REAL,
    wall_ms         INTEGER NOT NULL,
    synced          INTEGER NOT NULL,
    boot_id         BLOB NOT NULL,
    mono_ms         INTEGER NOT NULL,
    time_ms         INTEGER NOT NULL,
    time_corrected  INTEGER NOT NULL,
    arrived_ms      INTEGER NOT NULL,
    -- NULL while held (time not yet known); then the delivery cursor.
    delivery_id     INTEGER,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX readings_delivery ON readings(delivery_id) WHERE delivery_id IS NOT NULL;
CREATE INDEX readings_held_boot ON readings(device_id, boot_id) WHERE delivery_id IS NULL;
CREATE INDEX readings_held_arrival ON readings(arrived_ms) WHERE delivery_id IS NULL;
-- The first offset a device reported for a boot (later ones are ignored: delivered
-- readings never change).
CREATE TABLE clock_offsets (
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    boot_id    BLOB NOT NULL,
    offset_ms  INTEGER NOT NULL,
    PRIMARY KEY (device_id, boot_id)
) WITHOUT ROWID;
CREATE TABLE protocol_events (
    id      INTEGER PRIMARY KEY,
    device  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE TABLE consumer_cursors (
    name    TEXT PRIMARY KEY,
    cursor  INTEGER NOT NULL
);
-- One row: the last delivery id given. Taking it inside the commit serialises commits
-- that deliver, so ids increase in commit order (also on PostgreSQL, by row lock).
CREATE TABLE delivery_counter (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL
);
INSERT INTO delivery_counter (one, last_id) VALUES (1, 0);
";

/// Creates or checks the schema.
pub fn upgrade(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::SchemaTooNew { path: path.to_owned(), found, known: VERSION });
    }
    if found == 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(V1)?;
        tx.pragma_update(None, "user_version", VERSION)?;
        tx.commit()?;
    }
    Ok(())
}
