//! Helpers for status-api's integration tests: the real server on `127.0.0.1:0` in this
//! process (scoped by label to one test's containers), and a raw HTTP client that sends
//! exactly the bytes asked for (paths like `/containers/../etc` reach the server as written,
//! which ordinary clients would normalise away).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use status_api::Config;
use testkit::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
}

impl Api {
    /// Starts the server scoped to `scope`'s label and waits until it is synced.
    pub async fn start(scope: &Scope, opts: Opts) -> Api {
        let api = Self::start_unsynced(Some(scope.selector()), opts).await;
        api.wait_ready().await;
        api
    }

    /// Starts the server without waiting for Docker.
    pub async fn start_unsynced(scope: Option<String>, opts: Opts) -> Api {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
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
        raw(self.addr, method, path, &all).await
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

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }

    /// Asserts an error answer: this status, JSON `{"error": code, "message": non-empty}`.
    pub fn assert_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: content type {:?}",
            self.header("content-type")
        );
        let v = self.json();
        assert_eq!(v["error"], code, "{what}: {}", self.body);
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {}",
            self.body
        );
    }
}

/// One HTTP/1.0 request with exactly this method, path and headers; reads to EOF.
pub async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let bytes = send_bytes(addr, req.as_bytes()).await;
    parse(&bytes).unwrap_or_else(|| {
        panic!(
            "{method} {}: no HTTP answer: {:?}",
            &path[..path.len().min(80)],
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Sends raw bytes and returns everything the server answers until it closes.
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

fn parse(bytes: &[u8]) -> Option<Resp> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A private temp directory for a test's allowlist, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("dwtest-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Replaces `name` the way editors do: write a temp file, rename it over.
    pub fn replace(&self, name: &str, content: &str) -> PathBuf {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        let dst = self.0.join(name);
        std::fs::rename(&tmp, &dst).unwrap();
        dst
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
