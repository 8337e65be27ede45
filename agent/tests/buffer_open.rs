//! Opening the buffer: creating, reopening, read-only, and files that are not a buffer;
//! seqs across reopens; odd input.

mod buffer_support;

use std::sync::Arc;

use simpul_agent::buffer::{Buffer, BufferError};
use simpul_protocol::SeqRange;

use buffer_support::{open_unlimited, sample, samples, temp_buffer_path};

#[test]
fn open_creates_the_directory_and_an_empty_buffer() {
    let (_dir, path) = temp_buffer_path();
    let buffer = open_unlimited(&path);
    assert!(path.exists());
    let stats = buffer.stats().expect("stats");
    assert_eq!((stats.readings, stats.first_seq, stats.next_seq, stats.dropped_total), (0, None, 1, 0));
}

#[test]
fn seqs_are_never_reused_after_everything_is_acknowledged() {
    let (_dir, path) = temp_buffer_path();
    let mut buffer = open_unlimited(&path);
    let first = buffer.append(samples(&["a", "b"], 0, 10)).expect("append");
    assert_eq!(first, Some(SeqRange { first: 1, last: 10 }));
    assert_eq!(buffer.delete_through(10).expect("ack"), 10);
    assert_eq!(buffer.stats().expect("stats").readings, 0);
    let again = buffer.append(samples(&["a"], 0, 3)).expect("append");
    assert_eq!(again, Some(SeqRange { first: 11, last: 13 }));
    buffer.delete_through(13).expect("ack");
    drop(buffer);
    let mut reopened = open_unlimited(&path);
    let after_reopen = reopened.append(samples(&["a"], 0, 1)).expect("append");
    assert_eq!(after_reopen, Some(SeqRange { first: 14, last: 14 }));
}

#[test]
fn an_empty_append_gives_no_seqs() {
    let (_dir, path) = temp_buffer_path();
    let mut buffer = open_unlimited(&path);
    assert_eq!(buffer.append(Vec::new()).expect("append"), None);
    assert_eq!(buffer.stats().expect("stats").next_seq, 1);
}

#[test]
fn nan_empty_and_huge_strings_are_stored_and_read_back() {
    let (_dir, path) = temp_buffer_path();
    let mut buffer = open_unlimited(&path);
    let huge: Arc<str> = Arc::from("x".repeat(1 << 20));
    let mut odd = sample("", f64::NAN, i64::MIN);
    odd.unit = Arc::from("");
    let mut big = sample("big", f64::INFINITY, i64::MAX);
    big.metric = huge.clone();
    big.unit = huge.clone();
    let nul = sample("nul\0in the middle", -1e300, -5);
    buffer.append(vec![odd, big, nul]).expect("append");
    let got = buffer.read_batch(0, 10).expect("read_batch").readings;
    assert_eq!(got.len(), 3);
    assert!(got[0].value.is_nan() && got[0].sensor.is_empty() && got[0].unit.is_empty());
    assert_eq!(got[0].time.wall_ms, i64::MIN);
    assert_eq!((got[1].value, got[1].metric.len(), got[1].time.wall_ms), (f64::INFINITY, 1 << 20, i64::MAX));
    assert_eq!((got[2].sensor.as_str(), got[2].value), ("nul\0in the middle", -1e300));
}

#[test]
fn a_read_batch_returns_at_most_limit_readings_after_the_seq_given() {
    let (_dir, path) = temp_buffer_path();
    let mut buffer = open_unlimited(&path);
    buffer.append(samples(&["a", "b", "c"], 0, 30)).expect("append");
    let batch = buffer.read_batch(7, 5).expect("read_batch");
    let seqs: Vec<u64> = batch.readings.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![8, 9, 10, 11, 12]);
    assert!(buffer.read_batch(30, 5).expect("read_batch").readings.is_empty());
    assert!(buffer.read_batch(0, 0).expect("read_batch").readings.is_empty());
}

#[test]
fn a_non_sqlite_file_gives_a_clear_error_not_a_panic() {
    let (_dir, path) = temp_buffer_path();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"this is not a database, it is a shopping list: rice, chilli, tempeh\n".repeat(100))
        .expect("write");
    let err = Buffer::open(&path, Default::default()).expect_err("must refuse");
    assert!(err.is_corrupt(), "{err}");
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("not a SQLite database"), "{message}");
    let err = Buffer::open_read_only(&path).expect_err("must refuse");
    assert!(err.is_corrupt(), "{err}");
}

#[test]
fn a_damaged_buffer_gives_a_clear_error_not_a_panic() {
    let (_dir, path) = temp_buffer_path();
    let mut buffer = open_unlimited(&path);
    buffer.append(samples(&["a"], 0, 2000)).expect("append");
    drop(buffer);
    // Overwrite everything after the header with garbage.
    let mut bytes = std::fs::read(&path).expect("read");
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 31 % 251) as u8;
    }
    std::fs::write(&path, bytes).expect("write");
    let result = Buffer::open(&path, Default::default()).and_then(|b| b.read_batch(0, 10_000).map(|_| b));
    let err = result.expect_err("a damaged file must not read as a buffer");
    assert!(!err.is_retryable(), "{err}");
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let (_dir, path) = temp_buffer_path();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY)").expect("create");
    drop(conn);
    let err = Buffer::open(&path, Default::default()).expect_err("must refuse");
    assert!(
        matches!(&err, BufferError::Open { source, .. } if matches!(**source, BufferError::NotABuffer(_))),
        "{err}"
    );
}

#[test]
fn read_only_open_of_a_missing_file_fails_and_creates_nothing() {
    let (_dir, path) = temp_buffer_path();
    let err = Buffer::open_read_only(&path).expect_err("no file");
    assert!(err.to_string().contains("buffer.db"), "{err}");
    assert!(!path.exists());
}

#[test]
fn a_read_only_buffer_refuses_to_write() {
    let (_dir, path) = temp_buffer_path();
    let mut writer = open_unlimited(&path);
    writer.append(samples(&["a"], 0, 5)).expect("append");
    let mut reader = Buffer::open_read_only(&path).expect("open read-only");
    assert_eq!(reader.stats().expect("stats").readings, 5);
    assert!(reader.append(samples(&["a"], 0, 1)).is_err());
    assert!(reader.delete_through(5).is_err());
    assert_eq!(writer.stats().expect("stats").readings, 5);
}

#[test]
fn stats_display_as_a_small_table() {
    let (_dir, path) = temp_buffer_path();
    let mut buffer = open_unlimited(&path);
    buffer.append(samples(&["level-1", "rain"], 1_700_000_000_000, 4)).expect("append");
    let text = buffer.stats().expect("stats").to_string();
    assert!(text.contains("readings") && text.contains("level-1") && text.contains("rain"), "{text}");
    let json = serde_json::to_value(buffer.stats().expect("stats")).expect("json");
    assert_eq!(json["readings_by_sensor"]["rain"], 2);
}

#[test]
fn a_buffer_from_a_newer_agent_is_refused_not_downgraded() {
    let (_dir, path) = temp_buffer_path();
    drop(open_unlimited(&path));
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.pragma_update(None, "user_version", 99).expect("user_version");
    drop(conn);
    for err in [
        Buffer::open(&path, Default::default()).expect_err("must refuse"),
        Buffer::open_read_only(&path).expect_err("must refuse"),
    ] {
        assert!(err.to_string().contains("schema version 99"), "{err}");
        assert!(!err.is_retryable());
    }
}
