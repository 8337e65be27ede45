//! The SQLite schema. `PRAGMA user_version` names its version; a later change adds a
//! `vN_to_vN+1` step here.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this build writes.
pub const VERSION: i64 = 8;

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

/// Version 2: the per-minute aggregate the dashboard's charts read (docs/design/dashboard.md),
/// kept by the ingest commit, filled from the readings already stored; and each device's
/// last water levels, extracted from its latest heartbeat for the level alert.
const V1_TO_V2: &str = "
-- One row per (series, minute of the reading's time): count, min, max and sum of its
-- values (NaN left out). Readings have no per-device index (fleet-ingest.md, Throughput);
-- this small table is what a chart reads. Upserted once per (series, minute) per commit.
CREATE TABLE series_minutes (
    series_id INTEGER NOT NULL,
    minute    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    sum       REAL NOT NULL,
    PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;
INSERT INTO series_minutes (series_id, minute, n, min, max, sum)
    SELECT series_id, time_ms / 60000, count(*), min(value), max(value), sum(value)
    FROM readings WHERE value IS NOT NULL GROUP BY series_id, time_ms / 60000;
-- The last `level` value of each sensor in the latest heartbeat, as JSON {sensor: value}.
ALTER TABLE device_health ADD COLUMN levels TEXT NOT NULL DEFAULT '{}';
";

/// Version 3: sensor proposals ops accepted into a device's desired config; when each
/// device's heartbeat last went into the sampled history.
const V2_TO_V3: &str = "
ALTER TABLE device_health ADD COLUMN history_at_ms INTEGER;
CREATE TABLE proposal_acceptances (
    event_id   INTEGER PRIMARY KEY REFERENCES device_events(id),
    sensor_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    author     TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
";

/// Version 4: enrolment tokens and the device certificates the fleet CA issued
/// (docs/design/trust.md).
const V3_TO_V4: &str = "
CREATE TABLE enrolment_tokens (
    id          TEXT PRIMARY KEY,
    group_name  TEXT,
    site        TEXT,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    spent_ms    INTEGER,
    spent_by    TEXT
);
CREATE TABLE device_certs (
    serial       TEXT PRIMARY KEY,
    device       TEXT NOT NULL,
    issued_ms    INTEGER NOT NULL,
    not_after_ms INTEGER NOT NULL,
    revoked_ms   INTEGER
);
CREATE INDEX device_certs_device ON device_certs(device, issued_ms);
";

/// Security events: what the broker refused a client (docs/design/trust.md).
const V4_TO_V5: &str = "
CREATE TABLE security_events (
    id        INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    identity  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL,
    remote    TEXT NOT NULL
);
CREATE INDEX security_events_identity ON security_events(identity, id);
";

/// Signed releases and their binaries; the release each device should run
/// (docs/design/updates.md).
const V5_TO_V6: &str = "
CREATE TABLE releases (
    version      TEXT NOT NULL,
    target       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    public_key   TEXT NOT NULL,
    signature    TEXT NOT NULL,
    binary       BLOB NOT NULL,
    published_ms INTEGER NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (version, target)
);
CREATE TABLE device_releases (
    device  TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    rollout INTEGER,
    set_ms  INTEGER NOT NULL,
    set_by  TEXT NOT NULL
);
";

/// Rollouts in waves and where each of their devices is (docs/design/updates.md).
const V6_TO_V7: &str = "
CREATE TABLE rollouts (
    id                INTEGER PRIMARY KEY,
    -- The spec as asked for (JSON: version, group, canary, waves, gate, ...).
    spec              TEXT NOT NULL,
    state             TEXT NOT NULL,
    reason            TEXT,
    -- The wave open now (0: the canaries).
    wave              INTEGER NOT NULL DEFAULT 0,
    accepted_failures INTEGER NOT NULL DEFAULT 0,
    created_ms        INTEGER NOT NULL,
    created_by        TEXT NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX rollouts_state ON rollouts(state);
CREATE TABLE rollout_devices (
    rollout    INTEGER NOT NULL REFERENCES rollouts(id),
    device     TEXT NOT NULL,
    position   INTEGER NOT NULL,
    wave       INTEGER NOT NULL,
    state      TEXT NOT NULL,
    since_ms   INTEGER NOT NULL,
    ordered_ms INTEGER,
    detail     TEXT,
    PRIMARY KEY (rollout, device)
);
";

/// Version 8: when the device's stored status was received, so an older one committed
/// later (by another fleet process) does not replace it.
const V7_TO_V8: &str = "
ALTER TABLE devices ADD COLUMN status_ms INTEGER NOT NULL DEFAULT 0;
";

/// Creates or checks the schema.
pub fn upgrade(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::SchemaTooNew { path: path.to_owned(), found, known: VERSION });
    }
    if found == VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    if found < 1 {
        tx.execute_batch(V1)?;
    }
    if found < 2 {
        tx.execute_batch(V1_TO_V2)?;
    }
    if found < 3 {
        tx.execute_batch(V2_TO_V3)?;
    }
    if found < 4 {
        tx.execute_batch(V3_TO_V4)?;
    }
    if found < 5 {
        tx.execute_batch(V4_TO_V5)?;
    }
    if found < 6 {
        tx.execute_batch(V5_TO_V6)?;
    }
    if found < 7 {
        tx.execute_batch(V6_TO_V7)?;
    }
    if found < 8 {
        tx.execute_batch(V7_TO_V8)?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_version_1_database_gets_its_minutes_from_the_readings_already_stored() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO devices (id, name) VALUES (1, 'kel-a');
             INSERT INTO series (id, device_id, sensor, metric, unit) VALUES (1, 1, 'river', 'level', 'cm');
             INSERT INTO readings VALUES (1, 1, 1, 1, 4.0, 120000, 120000, 1, 1, 0, 1);
             INSERT INTO readings VALUES (2, 1, 2, 1, 8.0, 150000, 150000, 2, 1, 0, 1);
             INSERT INTO readings VALUES (3, 1, 3, 1, NULL, 170000, 170000, 3, 1, 0, 1);
             INSERT INTO device_health (device_id, received_at_ms, version, sensors, sensors_failing, heartbeat)
                 VALUES (1, 1, '1.0', 0, 0, '{}');",
        )
        .unwrap();
        upgrade(&mut conn, "test").unwrap();
        let row: (i64, i64, i64, f64, f64, f64) = conn
            .query_row("SELECT series_id, minute, n, min, max, sum FROM series_minutes", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .unwrap();
        assert_eq!(row, (1, 2, 2, 4.0, 8.0, 12.0));
        let levels: String = conn.query_row("SELECT levels FROM device_health", [], |r| r.get(0)).unwrap();
        assert_eq!(levels, "{}");
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, VERSION);
    }
}
