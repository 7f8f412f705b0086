//! The accept loop of the HTTP API, one code path for plain HTTP and HTTPS: [`serve`].
//!
//! Invariants:
//! - every connection is served on its own task; a TLS handshake runs there too, bounded
//!   by [`HANDSHAKE_TIMEOUT`], so a slow or hostile client never holds up the accept
//!   loop, and a failed handshake (plain HTTP on the HTTPS port, garbage, an untrusting
//!   client) is logged at debug level and only ends that connection;
//! - every request carries the TCP peer as `axum::extract::ConnectInfo<SocketAddr>`
//!   (what the admin loopback rule reads), over TLS as well;
//! - on shutdown the listener is closed first, handshakes still in progress are dropped,
//!   open connections finish the requests they are serving (HTTP/1 keep-alive ends,
//!   HTTP/2 sends GOAWAY) for at most [`DRAIN_TIMEOUT`], then whatever is left is
//!   aborted; [`serve`] returns only when no connection task is left.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Longest time a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time open connections get to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves; over TLS when `tls` is given
/// (see the module invariants).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let (stopping, stopping_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(
                        stream,
                        peer,
                        router.clone(),
                        acceptor.clone(),
                        graceful.watcher(),
                        stopping_rx.clone(),
                    ));
                }
                Err(e) => {
                    // Per-connection errors (reset before accept) and resource
                    // exhaustion alike: wait a little and go on.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    let open = connections.len();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            open,
            "connections still open {} s after shutdown; closing them",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    connections.shutdown().await;
}

/// One connection: the TLS handshake if any, then HTTP/1.1 or HTTP/2 until the client
/// closes or shutdown drains it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    acceptor: Option<TlsAcceptor>,
    watcher: Watcher,
    mut stopping: watch::Receiver<bool>,
) {
    // Small request/answer exchanges: do not wait for more bytes to fill a segment.
    let _ = stream.set_nodelay(true);
    match acceptor {
        None => http(stream, peer, router, watcher).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let done = tokio::select! {
                done = handshake => done,
                // Shutting down: a connection that has not even said hello is dropped.
                _ = stopping.wait_for(|s| *s) => return,
            };
            match done {
                Ok(Ok(tls)) => http(tls, peer, router, watcher).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(
                    %peer,
                    "TLS handshake not done within {} s; connection closed",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            }
        }
    }
}

async fn http<S>(stream: S, peer: SocketAddr, router: Router, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}
