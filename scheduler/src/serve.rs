//! The accept loop of the HTTP API, one code path for plain HTTP and HTTPS: [`serve`].
//!
//! Invariants:
//! - at most [`ConnLimits::max_connections`] connections are open at once; a connection
//!   over the cap is shed at once (plain HTTP: a 503 JSON answer is offered, then the
//!   socket is closed), so a flood of sockets can neither exhaust the server's file
//!   descriptors nor stall the accept loop;
//! - every connection is served on its own task; a TLS handshake runs there too, bounded
//!   by [`HANDSHAKE_TIMEOUT`], so a slow or hostile client never holds up the accept
//!   loop, and a failed handshake (plain HTTP on the HTTPS port, garbage, an untrusting
//!   client) is logged at debug level and only ends that connection;
//! - a request's head must arrive within [`ConnLimits::header_read_timeout`] (for HTTP/1
//!   this also bounds the wait for the next request on a kept-alive connection), and a
//!   connection with no request in progress for [`ConnLimits::idle_timeout`] is closed
//!   (HTTP/2 included); request bodies are bounded by the API (see [`crate::http`]);
//! - hyper's own answers to unparsable requests (400, 414, 431) carry the JSON error
//!   body like every other error ([`framing`]);
//! - every request carries the TCP peer as `axum::extract::ConnectInfo<SocketAddr>`
//!   (what the admin loopback rule reads), over TLS as well;
//! - when a burst of connections has passed (they fell to a quarter of their peak), the
//!   allocator's free pages go back to the system ([`memory`]), so the resident set
//!   returns to its baseline instead of staying at the burst's peak;
//! - on shutdown the listener is closed first, handshakes still in progress are dropped,
//!   open connections finish the requests they are serving (HTTP/1 keep-alive ends,
//!   HTTP/2 sends GOAWAY) for at most [`DRAIN_TIMEOUT`], then whatever is left is
//!   aborted; [`serve`] returns only when no connection task is left.

mod framing;
mod memory;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
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

/// Limits on the connections of the API (`[server]` in `retz.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once; more are shed.
    pub max_connections: usize,
    /// Longest wait for a request's head (and, HTTP/1, for the next request).
    pub header_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What a shed connection is offered before it is closed.
static SHED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    framing::error_response(
        503,
        "Service Unavailable",
        "the server is at its connection limit (server.max_connections); try again shortly",
    )
});

/// Serves `router` on `listener` until `shutdown` resolves, with the default
/// [`ConnLimits`]; over TLS when `tls` is given (see the module invariants).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, router, tls, ConnLimits::default(), shutdown).await;
}

/// [`serve`] with the given limits.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping, stopping_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut trimmer = memory::Trimmer::new();
    tokio::pin!(shutdown);
    loop {
        let look_again = trimmer.pending();
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        shed(stream, peer, acceptor.is_none());
                        continue;
                    };
                    connections.spawn(connection(
                        stream,
                        peer,
                        router.clone(),
                        acceptor.clone(),
                        limits,
                        stopping_rx.clone(),
                        permit,
                    ));
                    trimmer.observe(connections.len(), Instant::now());
                }
                Err(e) => {
                    // Per-connection errors (reset before accept) and resource
                    // exhaustion alike: wait a little and go on.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                if trimmer.observe(connections.len(), Instant::now()) {
                    memory::release_free_memory();
                }
            }
            () = sleep_until_some(look_again), if look_again.is_some() => {
                if trimmer.due(Instant::now()) {
                    memory::release_free_memory();
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open,
            "connections still open {} s after shutdown; closing them",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    connections.shutdown().await;
}

/// Sleeps until `at` (never resolves for `None`; the caller guards the branch).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Over the cap: offer the 503 without waiting (plain HTTP only), then close.
fn shed(stream: TcpStream, peer: SocketAddr, plain: bool) {
    debug!(%peer, "connection limit reached; connection shed");
    if plain {
        let _ = stream.try_write(&SHED);
    }
    drop(stream);
}

/// What one connection is doing: requests in progress and the time of the last one's
/// end, for the idle timeout and [`framing`].
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    in_progress: AtomicUsize,
    /// Milliseconds since `started` when the last response ended.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_progress: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Whether a response of the service is being produced or written.
    pub(crate) fn responding(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) > 0
    }

    fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        InProgress(self.clone())
    }

    /// How long until the connection has been idle for `idle`, or `None` when it has.
    fn idle_left(&self, idle: Duration) -> Option<Duration> {
        if self.responding() {
            return Some(idle);
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        let idle_for = self.started.elapsed().saturating_sub(last);
        idle.checked_sub(idle_for).filter(|d| !d.is_zero())
    }
}

/// One request in progress, until its response body is dropped.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(now, Ordering::Release);
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection: the TLS handshake if any, then HTTP/1.1 or HTTP/2 until the client
/// closes, the connection idles out, or shutdown drains it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    acceptor: Option<TlsAcceptor>,
    limits: ConnLimits,
    mut stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Small request/answer exchanges: do not wait for more bytes to fill a segment.
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    match acceptor {
        None => {
            let io = framing::FramingErrors::new(stream, activity.clone());
            http(io, peer, router, limits, activity, stopping).await;
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let done = tokio::select! {
                done = handshake => done,
                // Shutting down: a connection that has not even said hello is dropped.
                _ = stopping.wait_for(|s| *s) => return,
            };
            match done {
                Ok(Ok(tls)) => {
                    let io = framing::FramingErrors::new(tls, activity.clone());
                    http(io, peer, router, limits, activity, stopping).await;
                }
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

async fn http<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    limits: ConnLimits,
    activity: Arc<Activity>,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = activity.clone();
    let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = tracker.begin();
        let router = router.clone();
        async move {
            let res = router.oneshot(req).await.unwrap_or_else(|e| match e {});
            // The request stays in progress until its body has been written.
            Ok::<_, Infallible>(res.map(|body| {
                Body::new(body.map_frame(move |f| {
                    let _ = &busy;
                    f
                }))
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let idle = activity.idle_left(limits.idle_timeout);
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopping.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(idle.unwrap_or_default()), if !closing => {
                if activity.idle_left(limits.idle_timeout).is_none() {
                    debug!(%peer, "connection idle for {:?}; closed", limits.idle_timeout);
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
