//! The one HTTP/1 client of dockwarden's programs, over hyper's client connection: the
//! Docker Engine (a Unix socket or plain TCP), the controller's `/decisions`, the health
//! probe, image registries (plain TCP on loopback, else TLS: [`Target::Tls`]). Every call
//! is bounded: a timeout on the connection and the response headers, a size limit on bodies
//! read whole, and errors that name what was being done and to whom.
//!
//! One connection per call: a Unix socket connect costs microseconds, and no pool can go
//! stale across a peer's restart. Streams (the engine's events, logs and stats) are handed
//! back as the response body, not cut by the timeout once their headers arrived.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where a peer listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
    /// HTTPS: `host` (a DNS name or an IP address, without brackets) is both where to connect
    /// and the name the server's certificate must carry (SNI). Needs [`Client::with_tls`].
    Tls {
        host: String,
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
            Target::Tcp(a) => write!(f, "tcp://{a}"),
            Target::Tls { host, port } => write!(f, "https://{}", host_port(host, *port)),
        }
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Target {
    /// `http://host[:port][/base]` → the target and the base path (without a trailing `/`).
    /// Only plain `http://`: the URLs this takes name peers on a private network.
    pub fn from_http_url(url: &str) -> Result<(Target, String), String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?}: only http:// is supported"));
        }
        let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        let base = uri.path().trim_end_matches('/').to_string();
        Ok((Target::Tcp(format!("{host}:{port}")), base))
    }
}

/// A failed call. Every variant names what was being done, and all but the last whom.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: cannot connect to {peer}: {source}")]
    Connect {
        what: String,
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: no answer from {peer} within {secs} s")]
    Timeout { what: String, peer: String, secs: u64 },
    #[error("{what}: {peer} answered HTTP {status}: {message}")]
    Status {
        what: String,
        peer: String,
        status: u16,
        message: String,
    },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    #[error("{what}: cannot decode the answer: {message}")]
    Decode { what: String, message: String },
    #[error("bad address {0}")]
    Address(String),
}

impl Error {
    /// The peer could not be reached, or the connection broke: it is down or restarting.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Transport { .. })
    }

    /// The HTTP status, when the peer answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client for one peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    target: Arc<Target>,
    /// The peer as errors name it ("the Docker Engine at unix:///var/run/docker.sock").
    peer: Arc<str>,
    /// The `Host` header sent.
    host: Arc<str>,
    timeout: Duration,
    /// Roots and settings for a [`Target::Tls`] peer (see [`super::tls`]).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    pub fn new(target: Target, peer: impl Into<String>, timeout: Duration) -> Client {
        let host = match &target {
            Target::Unix(_) => "localhost".to_string(),
            Target::Tcp(a) => a.clone(),
            Target::Tls { host, port: 443 } if !host.contains(':') => host.clone(),
            Target::Tls { host, port } => host_port(host, *port),
        };
        Client {
            target: Arc::new(target),
            peer: peer.into().into(),
            host: host.into(),
            timeout,
            tls: None,
        }
    }

    /// The TLS settings (roots) for a [`Target::Tls`] peer; ignored for the others.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_host_header(mut self, host: &str) -> Self {
        self.host = host.into();
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn connect(&self, what: &str) -> Result<Box<dyn Io>, Error> {
        let fail = |source| Error::Connect {
            what: what.to_string(),
            peer: self.peer.to_string(),
            source,
        };
        let tls = match (&*self.target, &self.tls) {
            (Target::Tls { host, .. }, Some(config)) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| Error::Address(format!("{}: {e}", self.target)))?;
                Some((tokio_rustls::TlsConnector::from(config.clone()), name))
            }
            (Target::Tls { .. }, None) => {
                return Err(Error::Address(format!(
                    "{}: no TLS settings given for an https peer",
                    self.target
                )));
            }
            _ => None,
        };
        let connect = async {
            Ok::<Box<dyn Io>, std::io::Error>(match &*self.target {
                Target::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
                Target::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str()).await?;
                    let _ = s.set_nodelay(true);
                    Box::new(s)
                }
                Target::Tls { host, port } => {
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    let _ = s.set_nodelay(true);
                    match tls {
                        // The handshake's errors (an unknown issuer, a name mismatch) are
                        // io::Errors that say which.
                        Some((connector, name)) => Box::new(connector.connect(name, s).await?),
                        None => Box::new(s),
                    }
                }
            })
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(r) => r.map_err(fail),
            Err(_) => Err(self.timed_out(what, self.timeout)),
        }
    }

    fn timed_out(&self, what: &str, timeout: Duration) -> Error {
        Error::Timeout {
            what: what.to_string(),
            peer: self.peer.to_string(),
            secs: timeout.as_secs(),
        }
    }

    /// Sends one request without a body and waits for the response headers within
    /// `timeout`. An error status (other than 304) is an [`Error::Status`] with the peer's
    /// message.
    pub async fn send(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<Response<Incoming>, Error> {
        let resp = self
            .exchange(what, method, path_and_query, headers, timeout)
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        Err(self.status_error(what, resp, timeout).await)
    }

    /// The [`Error::Status`] for an answer the caller does not take: its status and the
    /// peer's message (read within `timeout`, at most 64 KiB).
    pub async fn status_error(&self, what: &str, resp: Response<Incoming>, timeout: Duration) -> Error {
        let status = resp.status().as_u16();
        let body = read_body(what, resp, 64 << 10, timeout).await.unwrap_or_default();
        Error::Status {
            what: what.to_string(),
            peer: self.peer.to_string(),
            status,
            message: error_message(&body),
        }
    }

    /// Like [`Client::send`], but hands back the answer whatever its status: for callers
    /// that act on a 401's challenge or follow a redirect themselves (image registries).
    pub async fn exchange(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<Response<Incoming>, Error> {
        let io = self.connect(what).await?;
        let transport = |e: hyper::Error| Error::Transport {
            what: what.to_string(),
            message: e.to_string(),
        };
        let exchange = async {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(transport)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "client connection ended");
                }
            });
            let mut req = Request::builder()
                .method(method)
                .uri(path_and_query)
                .header(hyper::header::HOST, &*self.host);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let req = req.body(Empty::<Bytes>::new()).map_err(|e| Error::Transport {
                what: what.to_string(),
                message: e.to_string(),
            })?;
            tx.send_request(req).await.map_err(transport)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(self.timed_out(what, timeout)),
        }
    }

    /// GETs a whole body of at most `max` bytes, with the response's status and headers.
    pub async fn get(
        &self,
        what: &str,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        max: usize,
    ) -> Result<(Response<()>, Bytes), Error> {
        let resp = self
            .send(what, Method::GET, path_and_query, headers, self.timeout)
            .await?;
        let (parts, body) = resp.into_parts();
        let bytes = read_body(what, Response::from_parts(parts.clone(), body), max, self.timeout).await?;
        Ok((Response::from_parts(parts, ()), bytes))
    }

    /// GETs and decodes a JSON answer of at most `max` bytes.
    pub async fn get_json(&self, what: &str, path_and_query: &str, max: usize) -> Result<Value, Error> {
        let (_, body) = self.get(what, path_and_query, &[], max).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// GETs and decodes a JSON answer as it streams in, without holding the whole body.
    pub async fn get_streamed<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        what: &str,
        path_and_query: &str,
    ) -> Result<T, Error> {
        let resp = self
            .send(what, Method::GET, path_and_query, &[], self.timeout)
            .await?;
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
                let frame = frame.map_err(|e| Error::Transport {
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
        let decoded = decoder.await.map_err(|e| Error::Decode {
            what: what.to_string(),
            message: format!("decoder failed: {e}"),
        })?;
        match pumped {
            Err(_) => Err(self.timed_out(what, self.timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => decoded.map_err(|e| Error::Decode {
                what: what.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Sends a request whose answer is not needed beyond its status; drains it.
    pub async fn call(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let resp = self.send(what, method, path_and_query, &[], timeout).await?;
        let _ = read_body(what, resp, 64 << 10, timeout).await;
        Ok(())
    }
}

/// The message of an error answer: Docker's `{"message"}`, a registry's
/// `{"errors":[{"message"}]}`, else the text itself.
fn error_message(body: &[u8]) -> String {
    let json = serde_json::from_slice::<Value>(body).ok();
    json.as_ref()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.pointer("/errors/0/message"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
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

/// Reads a whole body within `timeout`, refusing more than `max` bytes.
pub async fn read_body<B>(
    what: &str,
    resp: Response<B>,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, Error>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    let mut body = resp.into_body();
    let mut out = BytesMut::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Transport {
                what: what.to_string(),
                message: format!("reading the answer: {e}"),
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > max {
                    return Err(Error::Decode {
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
            return Err(Error::Transport {
                what: what.to_string(),
                message: format!("the answer did not arrive whole within {} s", timeout.as_secs()),
            });
        }
    }
    Ok(out.freeze())
}

/// A streamed body split into JSON lines (the engine's events and stats), each at most
/// `max` bytes. Any error ends the stream.
pub struct JsonLines {
    body: Incoming,
    buf: BytesMut,
    done: bool,
    what: &'static str,
    max: usize,
}

impl JsonLines {
    pub fn new(body: Incoming, what: &'static str, max: usize) -> JsonLines {
        JsonLines {
            body,
            buf: BytesMut::new(),
            done: false,
            what,
            max,
        }
    }

    /// The next complete line already buffered, decoded.
    fn next_buffered(&mut self) -> Option<Result<Value, Error>> {
        loop {
            let nl = self.buf.iter().position(|b| *b == b'\n')?;
            let line = self.buf.split_to(nl + 1);
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            return Some(self.decode(line));
        }
    }

    fn decode(&self, line: &[u8]) -> Result<Value, Error> {
        serde_json::from_slice(line).map_err(|e| Error::Decode {
            what: self.what.into(),
            message: e.to_string(),
        })
    }
}

impl Stream for JsonLines {
    type Item = Result<Value, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.next_buffered() {
                return Poll::Ready(Some(item));
            }
            if self.done {
                // A last line without its newline, then the end.
                let rest = self.buf.split();
                let rest = rest.trim_ascii();
                return Poll::Ready((!rest.is_empty()).then(|| self.decode(rest)));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.done = true,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.buf.clear();
                    return Poll::Ready(Some(Err(Error::Transport {
                        what: self.what.into(),
                        message: e.to_string(),
                    })));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if self.buf.len() + data.len() > self.max {
                            self.done = true;
                            self.buf.clear();
                            return Poll::Ready(Some(Err(Error::Decode {
                                what: self.what.into(),
                                message: format!("a line longer than {} bytes", self.max),
                            })));
                        }
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
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
    fn encodes_queries() {
        assert_eq!(
            encode("{\"label\":[\"a=b\"]}"),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(encode("1700000000.000000001"), "1700000000.000000001");
    }

    #[test]
    fn error_messages_from_docker_and_registries() {
        assert_eq!(
            error_message(br#"{"message":"no such container"}"#),
            "no such container"
        );
        assert_eq!(
            error_message(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
            "manifest unknown"
        );
        assert_eq!(error_message(b" plain text\n"), "plain text");
    }

    #[test]
    fn http_urls() {
        let (t, base) = Target::from_http_url("http://state-controller:9090").unwrap();
        assert_eq!(
            (t, base.as_str()),
            (Target::Tcp("state-controller:9090".into()), "")
        );
        let (t, base) = Target::from_http_url("http://127.0.0.1/base/").unwrap();
        assert_eq!((t, base.as_str()), (Target::Tcp("127.0.0.1:80".into()), "/base"));
        assert!(Target::from_http_url("https://x").is_err());
        assert!(Target::from_http_url("not a url").is_err());
    }
}
