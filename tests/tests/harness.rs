//! The harness itself: a real broker that can be killed and restarted, a link that can
//! be cut and restored.

use std::time::Duration;

use simpul_tests::{LinkProxy, Mosquitto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn mosquitto_restarts_on_the_same_port() {
    let mut m = Mosquitto::start().await.expect("mosquitto");
    let addr = m.addr();
    m.restart().await.expect("restart");
    assert_eq!(m.addr(), addr);
    TcpStream::connect(addr).await.expect("accepting after restart");
    m.kill();
    assert!(TcpStream::connect(addr).await.is_err(), "a killed broker accepts nothing");
}

#[tokio::test]
async fn a_cut_link_closes_open_connections_and_a_restored_one_carries_bytes_again() {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = LinkProxy::start(target).await.expect("proxy");
    let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
    c.write_all(b"ping").await.expect("write");
    let mut b = [0u8; 4];
    tokio::time::timeout(LIMIT, c.read_exact(&mut b)).await.expect("in time").expect("echo");
    assert_eq!(&b, b"ping");
    assert_eq!(proxy.bytes(), 8);

    proxy.cut();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(LIMIT, c.read_to_end(&mut rest)).await.expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "the open connection is closed by the cut");

    proxy.restore();
    let mut c = TcpStream::connect(proxy.addr()).await.expect("reconnect");
    c.write_all(b"pong").await.expect("write");
    tokio::time::timeout(LIMIT, c.read_exact(&mut b)).await.expect("in time").expect("echo");
    assert_eq!(&b, b"pong");
}
