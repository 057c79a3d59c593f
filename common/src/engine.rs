//! dockwarden's own small client for the Docker Engine API: the calls the informer and the
//! enforcer make (ping, list, inspect, image inspect, events, kill, stop, remove), over
//! hyper's HTTP/1 client on a Unix socket or plain TCP.
//!
//! Why not bollard here: its generated models decode strictly, so one enum value it does not
//! know (`--isolation=Default`, a Podman port type, a newer engine's restart policy) makes a
//! whole inspect, list or event stream fail, and a container that cannot be decoded was never
//! judged (the "fail closed" issue). This client returns `serde_json::Value`s; the fields
//! dockwarden reads are picked out leniently in [`crate::container`] and [`crate::event`], so
//! a field it does not use can never stop a judgement. Paths are sent unversioned: the engine
//! answers in its own API version (Engine 20.10, 25+, and Podman's compat API alike).
//!
//! [`Engine`] is the seam the informer and the enforcer call through; [`HttpEngine`] is the
//! real implementation, and the informer's tests script a fake.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a request may wait for the engine's response headers. Streams (events) are not
/// cut by it once their headers arrived.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest JSON answer read whole (an inspect with very large labels is a few MiB).
const MAX_BODY: usize = 64 << 20;
/// The default engine socket, as the Docker CLI uses it when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:///path`, `tcp://host:port` or `http://host:port`; `None` means
    /// `DOCKER_HOST`, else the default socket (as the Docker CLI does). TLS and SSH
    /// transports are refused with a clear message rather than tried in plain text.
    pub fn resolve(host: Option<&str>) -> Result<Endpoint, EngineError> {
        let from_env;
        let host = match host {
            Some(h) => h,
            None => {
                from_env = std::env::var("DOCKER_HOST").unwrap_or_default();
                if from_env.is_empty() {
                    return Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)));
                }
                from_env.as_str()
            }
        };
        let bad = |why: &str| EngineError::Endpoint(format!("{host:?}: {why}"));
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad("no socket path after unix://"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(rest) = host.strip_prefix(scheme) {
                let addr = rest.trim_end_matches('/');
                if addr.is_empty() || addr.contains('/') {
                    return Err(bad("expected host:port"));
                }
                let addr = if addr.contains(':') {
                    addr.to_string()
                } else {
                    format!("{addr}:2375")
                };
                return Ok(Endpoint::Tcp(addr));
            }
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        Err(bad(
            "only unix:// and plain tcp:// (http://) are supported; TLS and SSH are not",
        ))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A failed engine call. Every variant names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("bad Docker host {0}")]
    Endpoint(String),
    #[error("{what}: cannot connect to the Docker Engine at {endpoint}: {source}")]
    Connect {
        what: String,
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: no answer from the Docker Engine within {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("{what}: the engine answered HTTP {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    #[error("{what}: cannot decode the engine's answer: {message}")]
    Decode { what: String, message: String },
}

impl EngineError {
    /// The engine could not be reached, or the connection broke: it is down or restarting,
    /// which says nothing about any one container.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, EngineError::Connect { .. } | EngineError::Transport { .. })
    }

    /// The HTTP status, when the engine answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            EngineError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What the informer and the enforcer ask of the engine. Implemented by [`HttpEngine`] and
/// by a scripted fake in tests. Answers are raw JSON; decoding is lenient and happens above.
pub trait Engine: Clone + Send + Sync + 'static {
    /// `GET /_ping`: the engine answers.
    fn ping(&self) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// The IDs of every container (`GET /containers/json?all=1`), only those with `label`
    /// when given.
    fn list(&self, label: Option<&str>) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;
    /// Every container's list entry (`GET /containers/json?all=1`), whole: for the one-time
    /// search of our own container at start-up.
    fn summaries(&self) -> impl Future<Output = Result<Vec<Value>, EngineError>> + Send;
    /// One container's list entry (`GET /containers/json?all=1&filters={"id":[id]}`), for
    /// a container whose inspect keeps failing; `None` when the engine has no such container.
    fn summary(&self, id: &str) -> impl Future<Output = Result<Option<Value>, EngineError>> + Send;
    /// `GET /containers/{id}/json`.
    fn inspect(&self, id: &str) -> impl Future<Output = Result<Value, EngineError>> + Send;
    /// `GET /images/{id}/json`.
    fn image(&self, id: &str) -> impl Future<Output = Result<Value, EngineError>> + Send;
    /// `GET /events?since=..&filters=..`: one JSON object per event until the stream ends.
    /// `filters` is the engine's JSON filter object.
    fn events(&self, since: &str, filters: &Value) -> BoxStream<'static, Result<Value, EngineError>>;
    /// `POST /containers/{id}/kill` (SIGKILL).
    fn kill(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// `POST /containers/{id}/stop?t=secs`.
    fn stop(&self, id: &str, secs: u64) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// `DELETE /containers/{id}?force=1`.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// The real engine, over HTTP/1. Cheap to clone; one connection per call (a Unix socket
/// connect costs microseconds, and no pool can go stale across an engine restart).
#[derive(Debug, Clone)]
pub struct HttpEngine {
    endpoint: std::sync::Arc<Endpoint>,
    timeout: Duration,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl HttpEngine {
    /// A client for `host` (see [`Endpoint::resolve`]). Nothing is contacted yet.
    pub fn new(host: Option<&str>) -> Result<HttpEngine, EngineError> {
        Ok(HttpEngine {
            endpoint: std::sync::Arc::new(Endpoint::resolve(host)?),
            timeout: REQUEST_TIMEOUT,
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn connect(&self, what: &str) -> Result<Box<dyn Io>, EngineError> {
        let fail = |source| EngineError::Connect {
            what: what.to_string(),
            endpoint: self.endpoint.to_string(),
            source,
        };
        let connect = async {
            Ok::<Box<dyn Io>, std::io::Error>(match &*self.endpoint {
                Endpoint::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str()).await?;
                    let _ = s.set_nodelay(true);
                    Box::new(s)
                }
            })
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(r) => r.map_err(fail),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn timed_out(&self, what: &str) -> EngineError {
        EngineError::Timeout {
            what: what.to_string(),
            secs: self.timeout.as_secs(),
        }
    }

    /// Sends one request and waits for the response headers (within the timeout).
    async fn send(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<Response<Incoming>, EngineError> {
        let io = self.connect(what).await?;
        let transport = |e: hyper::Error| EngineError::Transport {
            what: what.to_string(),
            message: e.to_string(),
        };
        let exchange = async {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(transport)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "engine connection ended");
                }
            });
            let req = Request::builder()
                .method(method)
                .uri(path_and_query)
                .header(hyper::header::HOST, "docker")
                .body(Empty::<Bytes>::new())
                .map_err(|e| EngineError::Transport {
                    what: what.to_string(),
                    message: e.to_string(),
                })?;
            tx.send_request(req).await.map_err(transport)
        };
        let resp = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(EngineError::Timeout {
                    what: what.to_string(),
                    secs: timeout.as_secs(),
                });
            }
        };
        if resp.status().is_success() || resp.status() == hyper::StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = read_body(what, resp, 64 << 10, timeout).await.unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(EngineError::Status {
            what: what.to_string(),
            status,
            message,
        })
    }

    async fn get_json(&self, what: &str, path_and_query: &str) -> Result<Value, EngineError> {
        let resp = self.send(what, Method::GET, path_and_query, self.timeout).await?;
        let body = read_body(what, resp, MAX_BODY, self.timeout).await?;
        serde_json::from_slice(&body).map_err(|e| EngineError::Decode {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// GETs and decodes a JSON answer as it streams in, without holding the whole body.
    async fn get_streamed<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        what: &str,
        path_and_query: &str,
    ) -> Result<T, EngineError> {
        let resp = self.send(what, Method::GET, path_and_query, self.timeout).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let decoder = tokio::task::spawn_blocking(move || {
            serde_json::from_reader::<_, T>(std::io::BufReader::new(ChannelReader {
                rx,
                cur: Bytes::new(),
            }))
        });
        let mut body = resp.into_body();
        let pump = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| EngineError::Transport {
                    what: what.to_string(),
                    message: format!("reading the answer: {e}"),
                })?;
                if let Ok(data) = frame.into_data()
                    && tx.send(data).await.is_err()
                {
                    break; // the decoder stopped early: its error says why
                }
            }
            Ok(())
        };
        let pumped = tokio::time::timeout(self.timeout, pump).await;
        drop(tx);
        let decoded = decoder.await.map_err(|e| EngineError::Decode {
            what: what.to_string(),
            message: format!("decoder failed: {e}"),
        })?;
        match pumped {
            Err(_) => Err(self.timed_out(what)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => decoded.map_err(|e| EngineError::Decode {
                what: what.to_string(),
                message: e.to_string(),
            }),
        }
    }

    async fn call(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let resp = self.send(what, method, path_and_query, timeout).await?;
        // Drain what little the engine sends so the connection ends cleanly.
        let _ = read_body(what, resp, 64 << 10, timeout).await;
        Ok(())
    }

    /// `GET /version`: the engine's version and API version, for the start-up log.
    pub async fn version(&self) -> Result<(String, String), EngineError> {
        let v = self.get_json("read the engine version", "/version").await?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        Ok((s("Version"), s("ApiVersion")))
    }
}

/// One entry of the list answer: only the ID is decoded, everything else is skipped.
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(rename = "Id", default, deserialize_with = "lenient_string")]
    id: Option<String>,
}

fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    })
}

/// Feeds a body, frame by frame, to a decoder running on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Reads a whole body, refusing more than `max` bytes.
async fn read_body(
    what: &str,
    resp: Response<Incoming>,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, EngineError> {
    let mut body = resp.into_body();
    let mut out = BytesMut::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| EngineError::Transport {
                what: what.to_string(),
                message: format!("reading the answer: {e}"),
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > max {
                    return Err(EngineError::Decode {
                        what: what.to_string(),
                        message: format!("answer larger than {max} bytes"),
                    });
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(EngineError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs(),
            });
        }
    }
    Ok(out.freeze())
}

impl Engine for HttpEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        self.call("ping", Method::GET, "/_ping", self.timeout).await
    }

    async fn list(&self, label: Option<&str>) -> Result<Vec<String>, EngineError> {
        let mut q = String::from("/containers/json?all=1");
        if let Some(l) = label.filter(|l| !l.is_empty()) {
            let filters = serde_json::json!({ "label": [l] });
            q.push_str("&filters=");
            q.push_str(&encode(&filters.to_string()));
        }
        // Decoded as it streams in, keeping only the IDs: a host whose containers carry
        // megabytes of labels must not make every re-list hold them all at once.
        let listed: Vec<Listed> = self.get_streamed("list containers", &q).await?;
        Ok(listed.into_iter().filter_map(|l| l.id).collect())
    }

    async fn summaries(&self) -> Result<Vec<Value>, EngineError> {
        match self.get_json("list containers", "/containers/json?all=1").await? {
            Value::Array(v) => Ok(v),
            other => Err(EngineError::Decode {
                what: "list containers".into(),
                message: format!("expected an array, got {}", kind(&other)),
            }),
        }
    }

    async fn summary(&self, id: &str) -> Result<Option<Value>, EngineError> {
        let filters = serde_json::json!({ "id": [id] });
        let q = format!("/containers/json?all=1&filters={}", encode(&filters.to_string()));
        match self.get_json("list one container", &q).await? {
            Value::Array(v) => Ok(v
                .into_iter()
                .find(|c| c.get("Id").and_then(Value::as_str) == Some(id))),
            other => Err(EngineError::Decode {
                what: "list one container".into(),
                message: format!("expected an array, got {}", kind(&other)),
            }),
        }
    }

    async fn inspect(&self, id: &str) -> Result<Value, EngineError> {
        self.get_json("inspect container", &format!("/containers/{}/json", encode(id)))
            .await
    }

    async fn image(&self, id: &str) -> Result<Value, EngineError> {
        self.get_json("inspect image", &format!("/images/{}/json", encode(id)))
            .await
    }

    fn events(&self, since: &str, filters: &Value) -> BoxStream<'static, Result<Value, EngineError>> {
        let this = self.clone();
        let q = format!(
            "/events?since={}&filters={}",
            encode(since),
            encode(&filters.to_string())
        );
        let start = async move {
            let resp = this
                .send("subscribe to events", Method::GET, &q, this.timeout)
                .await?;
            Ok::<_, EngineError>(EventLines {
                body: resp.into_body(),
                buf: BytesMut::new(),
                done: false,
            })
        };
        use futures_util::StreamExt;
        futures_util::stream::once(start)
            .flat_map(|r| match r {
                Ok(lines) => lines.boxed(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        let q = format!("/containers/{}/kill?signal=SIGKILL", encode(id));
        self.call("kill container", Method::POST, &q, self.timeout)
            .await
            .map_err(not_running_is_a_conflict)
    }

    async fn stop(&self, id: &str, secs: u64) -> Result<(), EngineError> {
        let q = format!("/containers/{}/stop?t={secs}", encode(id));
        // The engine answers once the container is down: wait longer than that may take.
        let timeout = self.timeout + Duration::from_secs(secs);
        self.call("stop container", Method::POST, &q, timeout).await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let q = format!("/containers/{}?force=1", encode(id));
        self.call("remove container", Method::DELETE, &q, self.timeout)
            .await
    }
}

/// Podman's error for an action on a container in the wrong state (libpod's
/// `ErrCtrStateInvalid`).
const PODMAN_STATE_IMPROPER: &str = "container state improper";

/// A kill of a container that is no longer running is HTTP 409 on Docker. Podman 4.3's compat
/// handler answers 500 ("can only kill running containers. <id> is in state exited: container
/// state improper": it wraps the error in a per-container report it does not map). Read as
/// Docker's, so that a container already down is not reported as a failed kill and retried.
fn not_running_is_a_conflict(e: EngineError) -> EngineError {
    match e {
        EngineError::Status {
            what,
            status: 500,
            message,
        } if message.contains(PODMAN_STATE_IMPROPER) => EngineError::Status {
            what,
            status: 409,
            message,
        },
        other => other,
    }
}

/// The body of an event stream, split into JSON lines.
struct EventLines {
    body: Incoming,
    buf: BytesMut,
    done: bool,
}

impl EventLines {
    /// The next complete line already buffered, decoded.
    fn next_buffered(&mut self) -> Option<Result<Value, EngineError>> {
        loop {
            let nl = self.buf.iter().position(|b| *b == b'\n')?;
            let line = self.buf.split_to(nl + 1);
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            return Some(decode_event(line));
        }
    }
}

fn decode_event(line: &[u8]) -> Result<Value, EngineError> {
    serde_json::from_slice(line).map_err(|e| EngineError::Decode {
        what: "read the event stream".into(),
        message: e.to_string(),
    })
}

impl Stream for EventLines {
    type Item = Result<Value, EngineError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            if let Some(item) = self.next_buffered() {
                return Poll::Ready(Some(item));
            }
            if self.done {
                // A last line without its newline, then the end.
                let rest = self.buf.split();
                let rest = rest.trim_ascii();
                return Poll::Ready((!rest.is_empty()).then(|| decode_event(rest)));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.done = true,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.buf.clear();
                    return Poll::Ready(Some(Err(EngineError::Transport {
                        what: "read the event stream".into(),
                        message: e.to_string(),
                    })));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if self.buf.len() + data.len() > MAX_BODY {
                            self.done = true;
                            self.buf.clear();
                            return Poll::Ready(Some(Err(EngineError::Decode {
                                what: "read the event stream".into(),
                                message: format!("an event longer than {MAX_BODY} bytes"),
                            })));
                        }
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_like_the_docker_cli() {
        assert_eq!(
            Endpoint::resolve(Some("unix:///run/x.sock")).unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Endpoint::resolve(Some("tcp://10.0.0.1:2375")).unwrap(),
            Endpoint::Tcp("10.0.0.1:2375".into())
        );
        assert_eq!(
            Endpoint::resolve(Some("http://localhost")).unwrap(),
            Endpoint::Tcp("localhost:2375".into())
        );
        assert!(Endpoint::resolve(Some("https://h:2376")).is_err());
        assert!(Endpoint::resolve(Some("ssh://me@h")).is_err());
        assert!(Endpoint::resolve(Some("unix://")).is_err());
    }

    #[test]
    fn podmans_kill_of_a_stopped_container_is_a_conflict_as_on_docker() {
        let status = |status: u16, message: &str| EngineError::Status {
            what: "kill container".into(),
            status,
            message: message.into(),
        };
        // As Podman 4.3.1's service answered it.
        let podman = status(
            500,
            "can only kill running containers. 3a1d242cd374 is in state exited: container state improper",
        );
        assert_eq!(not_running_is_a_conflict(podman).status(), Some(409));
        let other = not_running_is_a_conflict(status(500, "runtime error"));
        assert_eq!(other.status(), Some(500), "other errors stay errors");
        assert_eq!(
            not_running_is_a_conflict(status(404, "no such container")).status(),
            Some(404)
        );
    }

    #[test]
    fn encodes_queries() {
        assert_eq!(
            encode("{\"label\":[\"a=b\"]}"),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(encode("1700000000.000000001"), "1700000000.000000001");
    }
}
