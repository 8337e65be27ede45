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
    online          INTEGER,
    -- When the fleet last received anything from the device (fleet clock, ms).
    last_seen_ms    INTEGER
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
-- Operators (docs/design/auth.md). Passwords only as argon2id PHC strings.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('ops', 'viewer')),
    password_hash  TEXT NOT NULL,
    created_ms     INTEGER NOT NULL
);
-- API tokens, and login sessions (user_id and expires_ms set). A token is
-- `spl_{id}_{secret}`: `id` finds the row, the secret is kept only as an argon2id PHC string.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('ops', 'viewer')),
    secret_hash  TEXT NOT NULL,
    user_id      INTEGER REFERENCES users(id) ON DELETE CASCADE,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);
-- One row: the last delivery id given. Taking it inside the commit serialises commits
-- that deliver, so ids increase in commit order (also on PostgreSQL, by row lock).
CREATE TABLE delivery_counter (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL
);
INSERT INTO delivery_counter (one, last_id) VALUES (1, 0);
-- The latest heartbeat of each device, with the fields the device list shows extracted
-- (docs/design/fleet-health.md).
CREATE TABLE device_health (
    device_id           INTEGER PRIMARY KEY REFERENCES devices(id),
    received_at_ms      INTEGER NOT NULL,
    version             TEXT NOT NULL,
    config_version      INTEGER,
    buffer_depth        INTEGER,
    oldest_unsent_age_s INTEGER,
    soc_temp_c          REAL,
    -- Any of the Pi's throttle flags set now (under-voltage, capped, throttled, soft limit).
    throttled_now       INTEGER,
    sensors             INTEGER NOT NULL,
    -- Sensors whose state is failing or disconnected.
    sensors_failing     INTEGER NOT NULL,
    heartbeat           TEXT NOT NULL
);
-- Every heartbeat, kept for `store.health_retention`.
CREATE TABLE health_history (
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    at_ms      INTEGER NOT NULL,
    heartbeat  TEXT NOT NULL
);
CREATE INDEX health_history_device ON health_history(device_id, at_ms);
CREATE INDEX health_history_at ON health_history(at_ms);
-- Events devices reported (all but clock_synced, which corrects readings instead).
CREATE TABLE device_events (
    id         INTEGER PRIMARY KEY,
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    at_ms      INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX device_events_device ON device_events(device_id, id);
-- Desired device config (docs/design/fleet-config-distribution.md): groups and their defaults,
CREATE TABLE config_groups (
    name        TEXT PRIMARY KEY,
    defaults    TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
-- each device's group (at most one) and its own override, as written,
CREATE TABLE device_config (
    device_id      INTEGER PRIMARY KEY REFERENCES devices(id),
    group_name     TEXT REFERENCES config_groups(name),
    override_toml  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX device_config_group ON device_config(group_name);
-- every desired version of each device: the merged TOML sent to it, numbered 1, 2, ...
CREATE TABLE config_versions (
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    version    INTEGER NOT NULL,
    toml       TEXT NOT NULL,
    author     TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    comment    TEXT NOT NULL,
    PRIMARY KEY (device_id, version)
) WITHOUT ROWID;
-- and what each device last reported (its retained ReportedConfig).
CREATE TABLE config_reported (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id),
    version    INTEGER NOT NULL,
    state      TEXT NOT NULL,
    error      TEXT,
    at_ms      INTEGER NOT NULL
);
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
