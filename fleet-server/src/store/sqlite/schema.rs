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
-- What a device measures: one row per (device, sensor, metric, unit), so a reading row
-- carries a small integer instead of three strings.
CREATE TABLE series (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    sensor    TEXT NOT NULL,
    metric    TEXT NOT NULL,
    unit      TEXT NOT NULL,
    UNIQUE (device_id, sensor, metric, unit)
);
-- Deliverable readings, keyed by their delivery cursor: rows are appended in cursor order,
-- and the platform reads them by cursor range. Never-twice is the device's progress
-- (watermark and done ranges, written in the same transaction): a seq already done is
-- never inserted again. No other index: an index on (device_id, seq) would dirty a page
-- per device per commit, doubling what each commit writes and fsyncs (measured with
-- benches/ingest.rs). No REFERENCES either: a foreign key check is a lookup per row.
CREATE TABLE readings (
    cursor          INTEGER PRIMARY KEY,
    device_id       INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    series_id       INTEGER NOT NULL,
    value           REAL,
    -- The reading's time (corrected when time_corrected), then the box's own clock.
    time_ms         INTEGER NOT NULL,
    wall_ms         INTEGER NOT NULL,
    mono_ms         INTEGER NOT NULL,
    synced          INTEGER NOT NULL,
    time_corrected  INTEGER NOT NULL,
    arrived_ms      INTEGER NOT NULL
);
-- Readings taken before the box's clock synced, held until the clock offset of their boot
-- arrives (then corrected) or the hold times out (then released as they are).
CREATE TABLE held_readings (
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    seq         INTEGER NOT NULL,
    series_id   INTEGER NOT NULL,
    value       REAL,
    wall_ms     INTEGER NOT NULL,
    mono_ms     INTEGER NOT NULL,
    boot_id     BLOB NOT NULL,
    arrived_ms  INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX held_readings_boot ON held_readings(device_id, boot_id);
CREATE INDEX held_readings_arrival ON held_readings(arrived_ms);
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
