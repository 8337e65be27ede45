//! A load check of the embedded broker: many devices connect, all drop at once, all come back
//! at once (a reconnect storm after an ISP outage). It prints what it measures and asserts
//! only that every device got back in, never a speed. A benchmark, not a test (it takes
//! the machine for a while):
//!
//! `cargo bench -p simpul-fleet --bench broker_load` (9,000 devices, 3 storms), or
//! `SIMPUL_BROKER_LOAD_CONNECTIONS=N SIMPUL_BROKER_LOAD_STORMS=S`; `-- --quick` for 500 and 1.
//!
//! Clients and broker share this process, so each connection costs two file descriptors:
//! 10,000 connections need `ulimit -n` above 20,000 (the default here is 9,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use simpul_fleet::broker::{self, BrokerConfig};

/// A minimal MQTT 3.1.1 CONNECT: clean session, keepalive 600 s, username = client id.
fn connect_packet(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0x02, 0x58];
    for field in [id, id] {
        body.extend_from_slice(&u16::try_from(field.len()).expect("valid test input").to_be_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    let mut p = vec![0x10, u8::try_from(body.len()).expect("valid test input")];
    p.extend(body);
    p
}

/// Connects until CONNACK 0 comes back, retrying with a short, growing, jittered backoff as
/// a device would. Returns the open stream and how many attempts it took.
async fn connect_device(addr: std::net::SocketAddr, id: String, refused: Arc<AtomicUsize>) -> (TcpStream, u32) {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(&connect_packet(&id)).await?;
            let mut ack = [0u8; 4];
            s.read_exact(&mut ack).await?;
            Ok::<_, std::io::Error>((s, ack))
        };
        match tokio::time::timeout(Duration::from_secs(30), result).await {
            Ok(Ok((s, [0x20, 2, _, 0]))) => return (s, attempt),
            _ => {
                refused.fetch_add(1, Ordering::Relaxed);
                let jitter = u64::from(id.bytes().fold(0u8, |a, b| a.wrapping_add(b)));
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(20)) + jitter)).await;
            }
        }
    }
}

fn rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".to_owned(), |kb| format!("{} MiB", kb / 1024))
}

async fn connect_all(addr: std::net::SocketAddr, n: usize) -> (Vec<TcpStream>, Duration, usize, u32) {
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(connect_device(addr, format!("dev-{i}"), refused.clone()));
    }
    let mut streams = Vec::with_capacity(n);
    let mut max_attempts = 0;
    while let Some(r) = set.join_next().await {
        let (s, attempts) = r.expect("client task");
        max_attempts = max_attempts.max(attempts);
        streams.push(s);
    }
    (streams, started.elapsed(), refused.load(Ordering::Relaxed), max_attempts)
}

fn env_or(name: &str, quick: bool, quick_value: usize, full: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { quick_value } else { full })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = env_or("SIMPUL_BROKER_LOAD_CONNECTIONS", quick, 500, 9_000);
    let shutdown = CancellationToken::new();
    let config = BrokerConfig { listen: "127.0.0.1:0".parse().expect("valid test input"), ..BrokerConfig::default() };
    let handle = broker::start(&config, shutdown.clone()).await.expect("broker starts");
    let addr = handle.local_addr();
    println!("load: {n} devices, broker on {addr}, RSS before: {}", rss_mib());

    let (streams, took, refused, max_attempts) =
        tokio::time::timeout(Duration::from_secs(600), connect_all(addr, n)).await.expect("first wave in time");
    assert_eq!(streams.len(), n);
    println!(
        "load: first wave: {n} connected in {took:?} ({refused} refused or timed-out attempts, worst device {max_attempts} attempts); RSS {}; broker {:?}",
        rss_mib(),
        handle.counts()
    );

    // Every device drops at once, without DISCONNECT, and comes straight back; several times,
    // to see whether memory stays flat from storm to storm.
    let storms = env_or("SIMPUL_BROKER_LOAD_STORMS", quick, 1, 3);
    let mut streams = streams;
    for storm in 1..=storms {
        drop(streams);
        let (again, took, refused, max_attempts) =
            tokio::time::timeout(Duration::from_secs(600), connect_all(addr, n)).await.expect("storm in time");
        assert_eq!(again.len(), n, "every device got back in");
        println!(
            "load: reconnect storm {storm}: {n} back in {took:?} ({refused} refused or timed-out attempts, worst device {max_attempts} attempts); RSS {}; broker {:?}",
            rss_mib(),
            handle.counts()
        );
        streams = again;
    }
    drop(streams);
    shutdown.cancel();
    handle.stopped().await;
    println!("load: after stop RSS {}", rss_mib());
}
