//! The RTSP server viewers use: `rtsp://FLEET:8554/cameras/{device}/{camera}` behind
//! viewer credentials (docs/design/cameras.md).

mod auth;
mod sdp;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::relay::Relays;
use crate::auth::AuthStore;

/// Binds `listen` and serves viewers until `shutdown`; returns the bound address.
pub async fn spawn(
    listen: SocketAddr,
    relays: Relays,
    auth: Arc<dyn AuthStore>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracker.spawn(async move {
        loop {
            let tcp = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "rtsp: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            tokio::spawn(session::serve(tcp, relays.clone(), Arc::clone(&auth), shutdown.clone()));
        }
    });
    tracing::info!(%addr, "camera relay: RTSP for viewers listening");
    Ok(addr)
}
