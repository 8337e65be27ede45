//! A TCP proxy in the test's hands: the link between an agent and its broker, which the
//! test can cut (every connection reset, new ones refused) and restore.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A proxy from a local port to `target`. Dropping it stops it and its connections.
#[derive(Debug)]
pub struct LinkProxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    bytes: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl LinkProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, up_rx) = watch::channel(true);
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, target, up_rx, bytes.clone(), stop.clone()));
        Ok(LinkProxy { addr, up, bytes, stop })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link: open connections are closed at once, new ones are closed on accept.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Restores the link: new connections are forwarded again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Bytes carried so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    up: watch::Receiver<bool>,
    bytes: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        let Ok((client, _)) = accepted else { continue };
        if !*up.borrow() {
            drop(client);
            continue;
        }
        let up = up.clone();
        let bytes = bytes.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else { return };
            relay(client, server, up, bytes, stop).await;
        });
    }
}

/// Copies both ways until either side closes, the link is cut, or the proxy stops.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    mut up: watch::Receiver<bool>,
    bytes: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let down = async {
        while up.changed().await.is_ok() {
            if !*up.borrow() {
                return;
            }
        }
    };
    tokio::select! {
        () = pump(cr, sw, &bytes) => {}
        () = pump(sr, cw, &bytes) => {}
        () = down => {}
        () = stop.cancelled() => {}
    }
}

/// Copies one direction, counting bytes as they pass.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, bytes: &AtomicU64) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}
