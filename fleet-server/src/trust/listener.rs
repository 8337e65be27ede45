//! The device listener: HTTPS with the fleet's server certificate, where boxes enrol
//! (and, later, renew and fetch updates with their client certificate). A client
//! certificate is asked for but not required; when one is presented and checks against
//! the fleet CA, handlers see it as [`PeerCert`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::TrustError;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client certificate a connection presented (checked against the fleet CA).
#[derive(Clone, Debug)]
pub struct PeerCert(pub Option<CertificateDer<'static>>);

/// The box a request comes from, if it presented a live certificate of the fleet: its
/// device id and certificate serial. Otherwise the status and message to answer with
/// (`401` no or bad certificate, `403` revoked, `503` the store failed). `what` names
/// what was asked for, for the refusal.
pub async fn live_box(
    peer: Option<&CertificateDer<'static>>,
    trust: &Arc<dyn super::store::TrustStore>,
    what: &str,
) -> Result<(simpul_protocol::DeviceId, String), (axum::http::StatusCode, String)> {
    use axum::http::StatusCode;
    let Some(der) = peer else {
        return Err((StatusCode::UNAUTHORIZED, format!("{what} is served to a box's client certificate only")));
    };
    let (device, serial) = super::renew::identify(der).map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    let (trust, sn) = (Arc::clone(trust), serial.clone());
    match tokio::task::spawn_blocking(move || trust.is_revoked(&sn)).await {
        Ok(Ok(false)) => Ok((device, serial)),
        Ok(Ok(true)) => {
            tracing::warn!(%device, %serial, "a revoked certificate asked for {what}");
            Err((StatusCode::FORBIDDEN, format!("certificate {serial} was revoked")))
        }
        Ok(Err(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn tls(e: impl std::fmt::Display) -> TrustError {
    TrustError::Tls(e.to_string())
}

/// Certificates from PEM text.
pub fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(tls)
}

/// A rustls server config on ring: `chain_pem` and `key_pem` as the server, client
/// certificates of `ca_pem` accepted (not required).
pub fn server_config(chain_pem: &str, key_pem: &str, ca_pem: &str) -> Result<rustls::ServerConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).map_err(tls)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .allow_unauthenticated()
        .build()
        .map_err(tls)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(tls)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(chain_pem)?, key)
        .map_err(tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `listen` and serves `app` over TLS until `shutdown`; returns the bound address.
pub async fn spawn(
    listen: SocketAddr,
    config: rustls::ServerConfig,
    app: Router,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<SocketAddr, TrustError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| TrustError::Io { path: listen.to_string(), source })?;
    let addr = listener.local_addr().map_err(|source| TrustError::Io { path: listen.to_string(), source })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tracker.spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "device listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (acceptor, app, shutdown) = (acceptor.clone(), app.clone(), shutdown.clone());
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "device listener: TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "device listener: TLS handshake timed out");
                        return;
                    }
                };
                let cert =
                    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
                let svc = TowerToHyperService::new(app.layer(axum::Extension(PeerCert(cert))));
                // Upgrades: a box's camera tunnel starts as an HTTP/1.1 request (docs/design/cameras.md).
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    served = conn.as_mut() => if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "device listener: connection ended");
                    },
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().await;
                    }
                }
            });
        }
    });
    tracing::info!(%addr, "device listener (HTTPS) listening");
    Ok(addr)
}
