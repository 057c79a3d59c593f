//! The HTTP/1.1 server both binaries put on the network (status-api's `:8080`, the
//! controller's `:9090`), hardened for an open network. warp's own `serve` sets no timer, so
//! a client that sends half a request holds a connection (and a file descriptor) forever;
//! here every connection goes through hyper's `http1::Builder` with:
//!
//! - a header-read timeout ([`Limits::header_read_timeout`], 10 s): a request head not
//!   complete by then closes the connection. hyper starts this timer whenever it waits for a
//!   request head, so it also bounds how long an idle keep-alive connection stays open (the
//!   keep-alive idle timeout);
//! - a cap on open connections ([`Limits::max_connections`]): over it, the accept loop stops
//!   accepting, so new connections wait in the kernel's listen queue while the connections
//!   already open keep being served;
//! - graceful shutdown: on the signal the listener closes, in-flight requests get
//!   [`Limits::shutdown_grace`] to finish, then the rest are dropped.
//!
//! Clients that go away, time out or send garbage are normal on a network: they are debug
//! lines, never errors, and never one line per client at the default level.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What a connection may cost the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request head (request line and headers) must arrive within this time, counted from
    /// when the server starts waiting for it; also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait in the listen queue until one closes.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after the shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            // Under `docker stop`'s default 10 s before SIGKILL, with room to spare.
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Counters of the server, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections that ended with an error (timeout, reset, malformed request).
    pub errors: AtomicU64,
}

/// A listening socket the server accepts connections from: TCP (the API and metrics ports)
/// or a Unix socket (the authorization plugin).
pub trait Listener: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection and a name for its peer (for debug lines).
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, String)>> + Send;
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, String)> {
        let (s, peer) = TcpListener::accept(self).await?;
        let _ = s.set_nodelay(true);
        Ok((s, peer.to_string()))
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, String)> {
        let (s, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((s, "unix socket peer".to_string()))
    }
}

/// Serves a warp filter (see [`serve`]).
pub async fn serve_warp<F>(
    listener: TcpListener,
    filter: F,
    limits: Limits,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let svc = hyper_util::service::TowerToHyperService::new(warp::service(filter));
    serve(listener, svc, limits, stats, shutdown).await
}

/// Serves `service` on every connection `listener` accepts, HTTP/1.1 only, within `limits`,
/// until `shutdown` resolves; then stops accepting, lets in-flight requests finish within
/// the grace period and returns.
pub async fn serve<L, S, B>(
    listener: L,
    service: S,
    limits: Limits,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
        // Over the cap: wait here, not in accept, so new clients queue in the kernel.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: transient; back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        stats.accepted.fetch_add(1, Relaxed);
        let guard = Open::new(stats.clone(), permit);
        let conn = http.serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        conns.spawn(async move {
            if let Err(e) = conn.await {
                guard.stats.errors.fetch_add(1, Relaxed);
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(guard);
        });
    }
    drop(listener);
    let open = stats.open.load(Relaxed);
    tracing::info!(
        open,
        grace_ms = limits.shutdown_grace.as_millis() as u64,
        "no longer accepting connections; letting in-flight requests finish"
    );
    match tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; dropping the remaining connections"),
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// One open connection: counted while it lives, its permit returned when it ends (also when
/// its task is aborted at the end of the grace period).
struct Open {
    stats: Arc<Stats>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Open {
    fn new(stats: Arc<Stats>, permit: tokio::sync::OwnedSemaphorePermit) -> Open {
        stats.open.fetch_add(1, Relaxed);
        Open {
            stats,
            _permit: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Relaxed);
    }
}
