//! A scripted fake registry on a loopback port, for the faults a real registry does not
//! produce on demand: a blob that is not its descriptor, redirects (to a second host, in a
//! loop, to plain HTTP elsewhere), the Bearer and Basic challenges, slow and oversized
//! answers, a referrers index. The real registry is tested in common/tests/provenance.rs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::testvectors::Vector;

/// How the fake authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// 401 with a Bearer challenge whose realm is this fake's `/token`; the token endpoint
    /// requires Basic `user:password` when given.
    Bearer {
        basic: Option<(String, String)>,
    },
    /// 401 with a Basic challenge.
    Basic {
        user: String,
        password: String,
    },
}

#[derive(Debug)]
pub struct Script {
    /// `repo` → `reference` → (media type, body).
    pub manifests: HashMap<String, HashMap<String, (String, Vec<u8>)>>,
    pub blobs: HashMap<String, Vec<u8>>,
    pub auth: Auth,
    /// Blob GETs answer 307 to this base URL + `/cdn/<digest>`.
    pub redirect_blobs_to: Option<String>,
    /// Flip a byte of every blob served.
    pub tamper_blobs: bool,
    /// Wait this long before every answer.
    pub delay: Duration,
    /// Answer every request with this status.
    pub status: Option<u16>,
    /// Every request: (method, path with query, Authorization header).
    pub seen: Vec<(String, String, Option<String>)>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            manifests: HashMap::new(),
            blobs: HashMap::new(),
            auth: Auth::None,
            redirect_blobs_to: None,
            tamper_blobs: false,
            delay: Duration::ZERO,
            status: None,
            seen: Vec::new(),
        }
    }
}

pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeRegistry {
    pub async fn start() -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let script = Arc::new(Mutex::new(Script::default()));
        let (s, a) = (script.clone(), addr.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, a) = (s.clone(), a.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (s, a) = (s.clone(), a.clone());
                        async move { Ok::<_, Infallible>(answer(&s, &a, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeRegistry { addr, script, task }
    }

    /// Serves a vector's manifests and blobs in `repo`.
    pub fn install(&self, repo: &str, v: &Vector) {
        let mut s = self.script.lock().unwrap();
        for (reference, mt, body) in &v.manifests {
            s.manifests
                .entry(repo.to_string())
                .or_default()
                .insert(reference.clone(), (mt.clone(), body.clone().into_bytes()));
        }
        for (d, b) in &v.blobs {
            s.blobs.insert(d.clone(), b.clone());
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Script) -> R) -> R {
        f(&mut self.script.lock().unwrap())
    }

    /// Requests seen whose path contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.with(|s| s.seen.iter().filter(|(_, p, _)| p.contains(needle)).count())
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(Bytes::from(body))).unwrap()
}

fn not_found() -> Response<Full<Bytes>> {
    reply(
        404,
        &[("content-type", "application/json".into())],
        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_vec(),
    )
}

async fn answer(script: &Mutex<Script>, addr: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authz = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let delay = {
        let mut s = script.lock().unwrap();
        s.seen
            .push((req.method().to_string(), path.clone(), authz.clone()));
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let s = script.lock().unwrap();
    if let Some(status) = s.status {
        return reply(status, &[], b"scripted".to_vec());
    }
    if let Some(d) = path.strip_prefix("/cdn/") {
        // The "CDN" a redirect leads to: no authentication at all.
        let d = d.split('?').next().unwrap_or(d);
        return match s.blobs.get(d) {
            Some(b) => reply(200, &[], b.clone()),
            None => not_found(),
        };
    }
    if let Some(q) = path.strip_prefix("/token") {
        if let Auth::Bearer { basic: Some((u, p)) } = &s.auth {
            let want = format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{u}:{p}"))
            );
            if authz.as_deref() != Some(want.as_str()) {
                return reply(401, &[], br#"{"details":"bad credentials"}"#.to_vec());
            }
        }
        let _ = q;
        return reply(200, &[], br#"{"token":"tok-123","expires_in":300}"#.to_vec());
    }
    match &s.auth {
        Auth::None => {}
        Auth::Bearer { .. } => {
            if authz.as_deref() != Some("Bearer tok-123") {
                let repo = repo_of(&path).unwrap_or_default();
                let challenge = format!(
                    r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:{repo}:pull""#
                );
                return reply(401, &[("www-authenticate", challenge)], b"{}".to_vec());
            }
        }
        Auth::Basic { user, password } => {
            let want = format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{user}:{password}")
                )
            );
            if authz.as_deref() != Some(want.as_str()) {
                return reply(
                    401,
                    &[("www-authenticate", r#"Basic realm="fake""#.into())],
                    b"{}".to_vec(),
                );
            }
        }
    }
    let Some(repo) = repo_of(&path) else {
        return reply(200, &[], b"{}".to_vec());
    };
    let rest = &path[4 + repo.len()..];
    if let Some(reference) = rest.strip_prefix("/manifests/") {
        return match s.manifests.get(&repo).and_then(|m| m.get(reference)) {
            Some((mt, body)) => reply(200, &[("content-type", mt.clone())], body.clone()),
            None => not_found(),
        };
    }
    if let Some(d) = rest.strip_prefix("/blobs/") {
        if let Some(base) = &s.redirect_blobs_to {
            return reply(307, &[("location", format!("{base}/cdn/{d}?sig=abc"))], vec![]);
        }
        return match s.blobs.get(d) {
            Some(b) => {
                let mut b = b.clone();
                if s.tamper_blobs && !b.is_empty() {
                    b[0] ^= 1;
                }
                reply(200, &[], b)
            }
            None => not_found(),
        };
    }
    not_found()
}

/// `/v2/<repo>/manifests|blobs|referrers/…` → `<repo>`.
fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    for sep in ["/manifests/", "/blobs/", "/referrers/"] {
        if let Some(i) = rest.find(sep) {
            return Some(rest[..i].to_string());
        }
    }
    None
}
