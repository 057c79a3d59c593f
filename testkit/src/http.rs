//! One HTTP client for the tests and benches: hyper's (already in the tree), over TCP or a
//! Unix socket. Where malformed bytes on the wire are the point of a test, that test writes
//! them itself; everything else goes through here.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// Every request gives up after this long.
const LIMIT: Duration = Duration::from_secs(30);

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics (the test fails) with the body when it is not.
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

/// One request over an open connection. `path` goes on the wire as written (no
/// normalisation: `/containers/../etc` arrives as that).
pub async fn send<S>(io: S, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Resp>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let what = format!("{method} {}", &path[..path.len().min(80)]);
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .context("HTTP handshake")?;
        let conn = tokio::spawn(conn);
        let mut req = hyper::Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("Host", "localhost");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .context("building the request")?;
        let resp = sender.send_request(req).await.context("sending the request")?;
        let resp = read(resp).await?;
        conn.abort();
        Ok::<_, anyhow::Error>(resp)
    };
    tokio::time::timeout(LIMIT, exchange)
        .await
        .with_context(|| format!("{what}: no answer within {LIMIT:?}"))?
        .with_context(|| what.clone())
}

/// Reads a whole answer of hyper's client into a [`Resp`].
pub async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Result<Resp> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .context("reading the body")?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).to_string(),
    })
}

/// A request to a TCP address, with these headers.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Result<Resp> {
    let s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    send(s, method, path, headers, &[]).await
}

/// `GET` asking for JSON.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Resp> {
    request(addr, "GET", path, &[("Accept", "application/json")]).await
}

/// `GET` asking for JSON from `127.0.0.1:port`.
pub async fn get_port(port: u16, path: &str) -> Result<Resp> {
    get(SocketAddr::from(([127, 0, 0, 1], port)), path).await
}

/// A request over a Unix socket, with a body.
pub async fn unix(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp> {
    let s = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    send(s, method, path, headers, body).await
}
