//! The PostgreSQL backend's schema on a real server (Debian's `postgresql`, started by the
//! test): created once when several processes start together, refused when newer.

#![allow(clippy::unwrap_used)]

use simpul_fleet::store::StoreError;
use simpul_fleet::store::postgres;
use simpul_tests::Postgres;

#[test]
fn fleet_processes_starting_together_create_the_schema_once() {
    let pg = Postgres::start().unwrap();
    let url = postgres::PgTarget::plain(&pg.url()).unwrap();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || postgres::connect(&url).map(drop))
        })
        .collect();
    for start in starts {
        start.join().unwrap().unwrap();
    }
    let conn = postgres::connect(&url).unwrap();
    let mut client = conn.get().unwrap();
    let versions: i64 = client.query_one("SELECT count(*) FROM schema_version", &[]).unwrap().get(0);
    assert_eq!(versions, 1);
    let counter: i64 = client.query_one("SELECT last_id FROM delivery_counter", &[]).unwrap().get(0);
    assert_eq!(counter, 0);
}

#[test]
fn a_database_from_a_newer_build_is_refused_not_changed() {
    let pg = Postgres::start().unwrap();
    let conn = postgres::connect(&postgres::PgTarget::plain(&pg.url()).unwrap()).unwrap();
    conn.get().unwrap().execute("UPDATE schema_version SET version = 999", &[]).unwrap();
    let err = postgres::connect(&postgres::PgTarget::plain(&pg.url()).unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 999, .. }), "{err}");
}

#[test]
fn one_of_two_fleet_processes_leads_and_the_other_takes_over_when_its_connection_dies() {
    use simpul_fleet::store::leader::Leadership;
    let pg = Postgres::start().unwrap();
    let a = postgres::PgLeader::open(&postgres::PgTarget::plain(&pg.url()).unwrap()).unwrap();
    let b = postgres::PgLeader::open(&postgres::PgTarget::plain(&pg.url()).unwrap()).unwrap();
    assert!(a.try_lead().unwrap());
    assert!(!b.try_lead().unwrap());
    // Asking again while leading keeps the lead and takes nothing more.
    assert!(a.try_lead().unwrap());
    assert!(!b.try_lead().unwrap());
    // The leader's process dies: its connection closes and the server frees the lock.
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.try_lead().unwrap() {
        assert!(std::time::Instant::now() < deadline, "the standby never took the lead");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `postgres::Client` closes by blocking on a runtime of its own; at shutdown the last
/// handle of a store often goes on an async worker, where that would panic (and abort).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_dropped_on_an_async_worker_closes_without_panicking() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap().unwrap();
    let url = postgres::PgTarget::plain(&pg.url()).unwrap();
    let conn = tokio::task::spawn_blocking(move || postgres::connect(&url)).await.unwrap().unwrap();
    drop(conn);
    // The server sees the session end (it was closed, not leaked).
    let url = postgres::PgTarget::plain(&pg.url()).unwrap();
    let sessions = tokio::task::spawn_blocking(move || {
        let check = postgres::Conn::connect(&url).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let n: i64 = check
                .get()
                .unwrap()
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'", &[])
                .unwrap()
                .get(0);
            if n == 1 || std::time::Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert_eq!(sessions, 1, "only the checking session is left");
}
