//! A TCP proxy that makes the agent-to-broker direction slow: a link with little
//! bandwidth, as a metered GSM uplink is.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A running proxy; dropping it cuts every connection.
#[derive(Debug)]
pub struct SlowProxy {
    port: u16,
    _tasks: JoinSet<()>,
}

impl SlowProxy {
    /// Listens on a free port and forwards to `127.0.0.1:target`, waiting `delay` before
    /// each chunk of at most `chunk` bytes sent upstream.
    pub async fn start(target: u16, chunk: usize, delay: Duration) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                conns.spawn(async move {
                    let Ok(up) = TcpStream::connect(("127.0.0.1", target)).await else { return };
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let upstream = async move {
                        let mut buf = vec![0u8; chunk];
                        while let Ok(n @ 1..) = dr.read(&mut buf).await {
                            tokio::time::sleep(delay).await;
                            if uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let downstream = async move {
                        let _ = tokio::io::copy(&mut ur, &mut dw).await;
                    };
                    tokio::select! {
                        () = upstream => {}
                        () = downstream => {}
                    }
                });
            }
        });
        SlowProxy { port, _tasks: tasks }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }
}
