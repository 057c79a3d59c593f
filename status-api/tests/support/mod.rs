//! What status-api's integration tests share beyond testkit: the real server on
//! `127.0.0.1:0` in this process (scoped by label to one test's containers), requests to it
//! through testkit's one HTTP client (paths go on the wire as written: `/containers/../etc`
//! reaches the server as that), a keep-alive client and a reader that stops reading (both
//! hyper), and the one raw-bytes sender, for garbage on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use status_api::Config;
use testkit::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use testkit::http::Resp;

/// A running server; shut down (gracefully) when dropped or by [`Api::stop`].
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`Api::start`].
#[derive(Default, Clone)]
pub struct Opts {
    pub allowlist: Option<PathBuf>,
    pub token: Option<String>,
    pub docker_host: Option<String>,
    pub grace: Option<Duration>,
    pub controller_url: Option<String>,
    pub logs: bool,
    pub header_read_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    /// Listen here instead of `127.0.0.1:0`.
    pub listen: Option<SocketAddr>,
    /// The fleet view: `--peers`, `--node-name`, `--peer-timeout`, `--fleet-interval`.
    pub peers: Option<String>,
    pub node_name: Option<String>,
    pub peer_timeout: Option<Duration>,
    pub fleet_interval: Option<Duration>,
}

impl Api {
    /// Starts the server scoped to `scope`'s label and waits until it is synced.
    pub async fn start(scope: &Scope, opts: Opts) -> Api {
        let api = Self::start_unsynced(Some(scope.selector()), opts).await;
        api.wait_ready().await;
        api
    }

    /// [`Api::start`] with only a policy file.
    pub async fn with_policy(scope: &Scope, policy: PathBuf) -> Api {
        let opts = Opts {
            allowlist: Some(policy),
            ..Default::default()
        };
        Self::start(scope, opts).await
    }

    /// Starts the server without waiting for Docker.
    pub async fn start_unsynced(scope: Option<String>, opts: Opts) -> Api {
        let config = Config {
            listen: opts.listen.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()),
            allowlist: opts.allowlist,
            docker_host: opts.docker_host,
            token: opts.token.clone(),
            scope,
            stats_interval: Duration::from_millis(500),
            shutdown_grace: opts.grace.unwrap_or(Duration::from_secs(3)),
            header_read_timeout: opts.header_read_timeout.unwrap_or(Duration::from_secs(10)),
            max_connections: opts.max_connections.unwrap_or(1024),
            controller_url: opts.controller_url,
            logs: opts.logs,
            peers: opts.peers,
            node_name: opts.node_name,
            peer_timeout: opts.peer_timeout.unwrap_or(Duration::from_secs(3)),
            fleet_interval: opts.fleet_interval.unwrap_or(Duration::from_secs(2)),
            ..Default::default()
        };
        let server = status_api::bind(config).await.expect("bind");
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Api {
            addr,
            token: opts.token,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn wait_ready(&self) {
        testkit::eventually(
            Duration::from_secs(15),
            "status-api synced (/readyz 200)",
            || async { (self.get("/readyz").await.status == 200).then_some(()) },
        )
        .await
        .unwrap();
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await?,
            None => Ok(()),
        }
    }

    /// GET with the token (when the server has one).
    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[]).await
    }

    /// GET with `Accept: text/html`, as a browser sends it.
    pub async fn get_html(&self, path: &str) -> Resp {
        self.request(
            "GET",
            path,
            &[(
                "Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            )],
        )
        .await
    }

    /// Any method, with the token (when the server has one) and `headers`.
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &auth {
            all.push(("Authorization", a));
        }
        request(self.addr, method, path, &all).await
    }

    /// The containers `GET /containers?query` lists.
    pub async fn list(&self, query: &str) -> Vec<Value> {
        let path = if query.is_empty() {
            "/containers".to_string()
        } else {
            format!("/containers?{query}")
        };
        let r = self.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()["containers"].as_array().cloned().unwrap_or_default()
    }

    /// Names listed by `GET /containers?query`, sorted.
    pub async fn names(&self, query: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .list(query)
            .await
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// The listed container with this ID.
    pub async fn find(&self, id: &str) -> Option<Value> {
        self.list("").await.into_iter().find(|c| c["id"] == id)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One request with exactly these headers (no token added), through testkit's client;
/// panics (the test fails) when no answer comes.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    testkit::http::request(addr, method, path, headers)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Sends raw bytes and returns everything the server answers until it closes: only for
/// what no HTTP client sends (garbage, a broken protocol version).
pub async fn send_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let io = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    };
    tokio::time::timeout(Duration::from_secs(20), io)
        .await
        .expect("server answered within 20 s")
}

/// A keep-alive HTTP/1.1 client (hyper): one connection, one request at a time.
pub struct KeepAlive {
    sender: SendRequest<Full<Bytes>>,
    conn: JoinHandle<()>,
}

impl KeepAlive {
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        KeepAlive { sender, conn }
    }

    /// GETs `path` on the open connection; returns the answer and the time it took. Panics
    /// when the connection was closed.
    pub async fn get(&mut self, path: &str) -> (Resp, Duration) {
        let t0 = Instant::now();
        let exchange = async {
            self.sender
                .ready()
                .await
                .context("the connection is not usable")?;
            let req = hyper::Request::get(path)
                .header("Host", "t")
                .body(Full::new(Bytes::new()))?;
            let resp = self.sender.send_request(req).await?;
            testkit::http::read(resp).await
        };
        let r = exchange
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the keep-alive connection: {e:#}"));
        (r, t0.elapsed())
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// A client that asked for `path` and read the answer's head, then stopped reading: the
/// body stays unread until it is dropped. It reads 1 KiB at a time and hyper reads no more
/// body than one chunk ahead of the reader, so it holds next to nothing itself (the tests
/// that use it measure the memory of this process, the server's included).
pub struct Stalled {
    /// The answer's status; 0 when none came within 30 s.
    pub status: u16,
    /// The unread answer and the connection's handle, held until dropped.
    _held: (Option<hyper::Response<Incoming>>, SendRequest<Full<Bytes>>),
    conn: JoinHandle<()>,
}

impl Stalled {
    pub async fn start(addr: SocketAddr, path: &str) -> Stalled {
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .read_buf_exact_size(Some(1024))
            .handshake(TokioIo::new(s))
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(path)
            .header("Host", "t")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
            .await
            .ok()
            .and_then(Result::ok);
        Stalled {
            status: resp.as_ref().map_or(0, |r| r.status().as_u16()),
            _held: (resp, sender),
            conn,
        }
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.conn.abort();
    }
}
