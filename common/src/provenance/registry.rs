//! The registry side of verification, over the one HTTP client: where a registry listens
//! (plain HTTP only on loopback, HTTPS with the system roots otherwise; Docker Hub's
//! `docker.io` is `registry-1.docker.io`), its authentication (the anonymous or
//! credentialled Bearer-token flow from a 401's `WWW-Authenticate`, tokens kept until they
//! expire; Basic when the registry asks for Basic), and bounded GETs of manifests and blobs
//! that follow a bounded number of redirects (blobs are often served from another host,
//! which never gets the registry's `Authorization`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use tokio::time::Instant;

use super::credentials::{Basic, RegistryCredentials};
use crate::http::client::{self, Client, Target, encode, host_port};
use crate::http::tls::TlsSettings;

/// Limits and settings of every registry request.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Per request: connection, headers and body each within this.
    pub request_timeout: Duration,
    /// A signature manifest (or referrers answer) larger than this is refused.
    pub max_manifest: usize,
    /// A signature payload blob larger than this is refused (cosign's are ~250 bytes).
    pub max_blob: usize,
    /// A signature manifest with more layers (signatures) than this is refused.
    pub max_layers: usize,
    /// Redirects followed per request (blob storage on another host).
    pub max_redirects: usize,
    /// From the operator's Docker `config.json`; none by default.
    pub credentials: RegistryCredentials,
    /// Roots for HTTPS registries. `None` (or no roots): only loopback registries work, and
    /// an HTTPS one fails with a reason that says how to give roots.
    pub tls: Option<TlsSettings>,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            request_timeout: Duration::from_secs(10),
            max_manifest: 4 << 20,
            max_blob: 1 << 20,
            max_layers: 32,
            max_redirects: 3,
            credentials: RegistryCredentials::none(),
            tls: None,
        }
    }
}

/// Why a registry request gave no answer to use. Messages never hold a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// Could not ask: refused, timed out, broke off, 5xx, 429, a redirect or challenge that
    /// cannot be followed.
    Unreachable(String),
    /// Asked, and refused access (401/403 with whatever credentials there are).
    Denied(String),
    /// An answer over its bound.
    TooLarge { what: String, message: String },
}

/// Docker's rule (and the engine's default insecure set): loopback registries speak plain
/// HTTP, every other one HTTPS.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where a registry (as named in references: `docker.io`, `ghcr.io`, `127.0.0.1:5000`)
/// listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub target: Target,
    /// `http` or `https`, for messages and redirects.
    pub scheme: &'static str,
    /// `host[:port]` as URLs and the `Host` header name it.
    pub authority: String,
}

/// Splits `host[:port]` (IPv6 in brackets) into host and port.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let bad = || format!("bad registry host {s:?}");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = port.map(|p| p.parse::<u16>().map_err(|_| bad())).transpose()?;
    Ok((host.to_string(), port))
}

impl Endpoint {
    pub fn for_registry(registry: &str) -> Result<Endpoint, String> {
        let registry = if registry == crate::policy::reference::DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            registry
        };
        let (host, port) = split_host_port(registry)?;
        Ok(Self::at(&host, port, !is_loopback(&host)))
    }

    fn at(host: &str, port: Option<u16>, tls: bool) -> Endpoint {
        if tls {
            let port = port.unwrap_or(443);
            Endpoint {
                target: Target::Tls {
                    host: host.to_string(),
                    port,
                },
                scheme: "https",
                authority: if port == 443 {
                    host_port(host, port).trim_end_matches(":443").to_string()
                } else {
                    host_port(host, port)
                },
            }
        } else {
            let port = port.unwrap_or(80);
            Endpoint {
                target: Target::Tcp(host_port(host, port)),
                scheme: "http",
                authority: host_port(host, port),
            }
        }
    }

    /// An absolute `http(s)://…` URL (a redirect's `Location`, a token realm): its endpoint
    /// and path with query. Plain HTTP only to loopback hosts.
    fn from_url(url: &str) -> Result<(Endpoint, String), String> {
        let uri: hyper::Uri = url.parse().map_err(|_| "an unparsable URL".to_string())?;
        let authority = uri
            .authority()
            .ok_or_else(|| "a URL without a host".to_string())?;
        let (host, port) = split_host_port(authority.as_str().rsplit('@').next().unwrap_or(""))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        match uri.scheme_str() {
            Some("https") => Ok((Self::at(&host, port, true), path)),
            Some("http") if is_loopback(&host) => Ok((Self::at(&host, port, false), path)),
            Some("http") => Err(format!("plain http://{host} (plain HTTP only on loopback)")),
            _ => Err("a URL that is neither http nor https".into()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lowercase: `bearer`, `basic`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` value (RFC 7235: one or more challenges, each a scheme and
/// `key=value` or `key="quoted"` parameters, all comma separated).
pub(crate) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let b = value.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize, pred: &dyn Fn(u8) -> bool| {
        while *i < b.len() && pred(b[*i]) {
            *i += 1;
        }
    };
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    while i < b.len() {
        skip(&mut i, &|c| c == b' ' || c == b',' || c == b'\t');
        let start = i;
        skip(&mut i, &token);
        if i == start {
            break;
        }
        let word = &value[start..i];
        let mut j = i;
        skip(&mut j, &|c| c == b' ' || c == b'\t');
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            // A parameter of the current challenge.
            i = j + 1;
            skip(&mut i, &|c| c == b' ' || c == b'\t');
            let mut v = String::new();
            if i < b.len() && b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    v.push(b[i] as char);
                    i += 1;
                }
                i += 1;
            } else {
                let s = i;
                skip(&mut i, &|c| c != b',' && c != b' ');
                v.push_str(&value[s..i]);
            }
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_ascii_lowercase(), v);
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// The answer to a GET that found something.
#[derive(Debug)]
pub struct Found {
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A client for one registry: its endpoint, credentials and tokens. Shared by every
/// verification of that registry.
#[derive(Debug)]
pub struct RegistryClient {
    /// As references name it (`127.0.0.1:5000`, `docker.io`): what reasons say.
    registry: String,
    endpoint: Endpoint,
    settings: std::sync::Arc<RegistrySettings>,
    basic: Option<Basic>,
    /// Bearer tokens by scope, until they expire.
    tokens: Mutex<HashMap<String, (HeaderValue, Instant)>>,
    /// The registry asked for Basic once: send it from the first request on.
    wants_basic: AtomicBool,
}

impl RegistryClient {
    pub fn new(
        registry: &str,
        settings: std::sync::Arc<RegistrySettings>,
    ) -> Result<RegistryClient, RegistryError> {
        let endpoint = Endpoint::for_registry(registry).map_err(RegistryError::Unreachable)?;
        Ok(RegistryClient {
            registry: registry.to_string(),
            basic: settings.credentials.for_registry(registry).cloned(),
            endpoint,
            settings,
            tokens: Mutex::new(HashMap::new()),
            wants_basic: AtomicBool::new(false),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn client_for(&self, endpoint: &Endpoint) -> Result<Client, RegistryError> {
        let c = Client::new(
            endpoint.target.clone(),
            format!("registry {}", endpoint.authority),
            self.settings.request_timeout,
        );
        match &endpoint.target {
            Target::Tls { .. } => match &self.settings.tls {
                Some(tls) if tls.roots > 0 => Ok(c.with_tls(tls.config.clone())),
                _ => Err(RegistryError::Unreachable(format!(
                    "no CA roots to verify {endpoint}: give a CA bundle (SSL_CERT_FILE, a mounted /etc/ssl/certs, or the registry CA option; see docs/signatures.md)"
                ))),
            },
            _ => Ok(c),
        }
    }

    /// The `Authorization` for `scope` we already hold: a live token, or Basic when the
    /// registry asked for it.
    fn known_auth(&self, scope: &str) -> Option<HeaderValue> {
        if self.wants_basic.load(Ordering::Relaxed) {
            return self.basic.as_ref().and_then(Basic::header);
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get(scope) {
            Some((t, until)) if *until > Instant::now() => Some(t.clone()),
            Some(_) => {
                tokens.remove(scope);
                None
            }
            None => None,
        }
    }

    /// GETs `path` (`/v2/<repo>/…`) in `repository` with the pull scope: `Ok(None)` on 404.
    pub async fn get(
        &self,
        repository: &str,
        path: &str,
        accept: Option<&str>,
        max: usize,
        what: &str,
    ) -> Result<Option<Found>, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let mut endpoint = self.endpoint.clone();
        let mut path = path.to_string();
        let mut auth = self.known_auth(&scope);
        let mut authenticated = false;
        let mut redirects = 0;
        loop {
            // The registry's credentials go to the registry only, never to a redirect's host.
            let same_host = endpoint == self.endpoint;
            let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
            if let Some(a) = accept.and_then(|a| HeaderValue::from_str(a).ok()) {
                headers.push((header::ACCEPT, a));
            }
            if same_host && let Some(a) = &auth {
                headers.push((header::AUTHORIZATION, a.clone()));
            }
            let t = self.settings.request_timeout;
            let (c, resp) = self.send_get(&endpoint, what, &path, &headers).await?;
            let status = resp.status();
            if status.is_success() {
                let too_large = |message: String| RegistryError::TooLarge {
                    what: what.to_string(),
                    message,
                };
                if let Some(len) = resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    && len > max as u64
                {
                    return Err(too_large(format!("{len} bytes, at most {max}")));
                }
                let content_type = resp
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = client::read_body(what, resp, max, t).await.map_err(|e| match e {
                    client::Error::Decode { .. } => too_large(format!("more than {max} bytes")),
                    e => unreachable(&e),
                })?;
                return Ok(Some(Found { content_type, body }));
            }
            match status {
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if same_host && !authenticated => {
                    authenticated = true;
                    let challenges: Vec<Challenge> = resp
                        .headers()
                        .get_all(header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(parse_challenges)
                        .collect();
                    auth = Some(self.authenticate(&challenges, &scope).await?);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let e = c.status_error(what, resp, t).await;
                    return Err(RegistryError::Denied(format!(
                        "{} {}",
                        status_text(&e),
                        self.who()
                    )));
                }
                StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT => {
                    redirects += 1;
                    if redirects > self.settings.max_redirects {
                        return Err(RegistryError::Unreachable(format!(
                            "{what}: more than {} redirects",
                            self.settings.max_redirects
                        )));
                    }
                    let location = resp
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| {
                            RegistryError::Unreachable(format!("{what}: a redirect without a Location"))
                        })?;
                    if location.starts_with('/') {
                        path = location.to_string();
                    } else {
                        let (e, p) = Endpoint::from_url(location).map_err(|m| {
                            RegistryError::Unreachable(format!("{what}: refused a redirect to {m}"))
                        })?;
                        endpoint = e;
                        path = p;
                    }
                }
                _ => {
                    let e = c.status_error(what, resp, t).await;
                    return Err(RegistryError::Unreachable(status_text(&e)));
                }
            }
        }
    }

    /// One GET to `endpoint` within the request timeout; the client comes back with the
    /// answer, to read an error status's message with.
    async fn send_get(
        &self,
        endpoint: &Endpoint,
        what: &str,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<(Client, hyper::Response<hyper::body::Incoming>), RegistryError> {
        let c = self.client_for(endpoint)?;
        let resp = c
            .exchange(what, Method::GET, path, headers, self.settings.request_timeout)
            .await
            .map_err(|e| unreachable(&e))?;
        Ok((c, resp))
    }

    /// Answers a 401's challenges: a Bearer token from the realm (with Basic credentials
    /// when there are any), or Basic itself.
    async fn authenticate(
        &self,
        challenges: &[Challenge],
        scope: &str,
    ) -> Result<HeaderValue, RegistryError> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self.token(bearer, scope).await;
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let basic = self.basic.as_ref().and_then(Basic::header).ok_or_else(|| {
                RegistryError::Denied("it asks for Basic credentials and none are configured for it".into())
            })?;
            self.wants_basic.store(true, Ordering::Relaxed);
            return Ok(basic);
        }
        Err(RegistryError::Denied(
            "HTTP 401 without a Bearer or Basic challenge".into(),
        ))
    }

    async fn token(&self, challenge: &Challenge, scope: &str) -> Result<HeaderValue, RegistryError> {
        let bad = |m: String| RegistryError::Unreachable(format!("token service: {m}"));
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| bad("the Bearer challenge names no realm".into()))?;
        let (endpoint, mut path) =
            Endpoint::from_url(realm).map_err(|m| bad(format!("refused realm {m}")))?;
        // The registry's own scope when it gave one (it may name more than ours).
        let scope_key = challenge
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| scope.to_string());
        let mut query = Vec::new();
        if let Some(service) = challenge.params.get("service") {
            query.push(format!("service={}", encode(service)));
        }
        query.push(format!("scope={}", encode(&scope_key)));
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(&query.join("&"));
        let what = "token request";
        let mut headers = Vec::new();
        if let Some(b) = self.basic.as_ref().and_then(Basic::header) {
            headers.push((header::AUTHORIZATION, b));
        }
        let t = self.settings.request_timeout;
        let (c, resp) = self.send_get(&endpoint, what, &path, &headers).await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let e = c.status_error(what, resp, t).await;
            return Err(RegistryError::Denied(format!(
                "token service {endpoint}: {} {}",
                status_text(&e),
                self.who()
            )));
        }
        if !status.is_success() {
            let e = c.status_error(what, resp, t).await;
            return Err(bad(format!("{endpoint}: {}", status_text(&e))));
        }
        let body = client::read_body(what, resp, 1 << 20, t)
            .await
            .map_err(|e| unreachable(&e))?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| bad(format!("{endpoint} answered no JSON")))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad(format!("{endpoint} answered no token")))?;
        // Distribution's token spec: 60 s when not given. A little early, to never send an
        // expired one.
        let secs = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(60).max(1);
        let until = Instant::now() + Duration::from_secs(secs).saturating_sub(Duration::from_secs(5));
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| bad(format!("{endpoint} answered a token that is no header value")))?;
        value.set_sensitive(true);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(scope.to_string(), (value.clone(), until));
        Ok(value)
    }

    /// How we asked, for a refusal's reason.
    fn who(&self) -> &'static str {
        if self.basic.is_some() {
            "(with the configured credentials)"
        } else {
            "(anonymously: no credentials configured for it)"
        }
    }

    /// The registry as references name it.
    pub fn registry(&self) -> &str {
        &self.registry
    }
}

/// "HTTP 503: message" out of a status error.
fn status_text(e: &client::Error) -> String {
    match e {
        client::Error::Status { status, message, .. } if message.is_empty() => format!("HTTP {status}"),
        client::Error::Status { status, message, .. } => {
            let m: String = message.chars().take(200).collect();
            format!("HTTP {status}: {m}")
        }
        e => e.to_string(),
    }
}

/// Why the registry could not be asked, without repeating its name (the reason adds it).
fn unreachable(e: &client::Error) -> RegistryError {
    RegistryError::Unreachable(match e {
        client::Error::Connect { source, .. } => format!("cannot connect: {source}"),
        client::Error::Timeout { secs, .. } => format!("no answer within {secs} s"),
        client::Error::Transport { message, .. } => message.clone(),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http_and_the_rest_https() {
        for r in [
            "127.0.0.1:5000",
            "127.3.4.5:5000",
            "localhost:5000",
            "LOCALHOST",
            "[::1]:5000",
        ] {
            let e = Endpoint::for_registry(r).unwrap();
            assert_eq!(e.scheme, "http", "{r}");
            assert!(matches!(e.target, Target::Tcp(_)), "{r}");
        }
        let e = Endpoint::for_registry("[::1]:5000").unwrap();
        assert_eq!(e.target, Target::Tcp("[::1]:5000".into()));
        let e = Endpoint::for_registry("localhost").unwrap();
        assert_eq!(e.target, Target::Tcp("localhost:80".into()));
        for r in ["ghcr.io", "10.0.0.1:5000", "registry.local:5000", "128.0.0.1"] {
            let e = Endpoint::for_registry(r).unwrap();
            assert_eq!(e.scheme, "https", "{r}");
        }
        let hub = Endpoint::for_registry("docker.io").unwrap();
        assert_eq!(
            hub.target,
            Target::Tls {
                host: "registry-1.docker.io".into(),
                port: 443
            }
        );
        assert_eq!(hub.authority, "registry-1.docker.io");
        assert_eq!(
            Endpoint::for_registry("ghcr.io:8443").unwrap().authority,
            "ghcr.io:8443"
        );
        assert!(Endpoint::for_registry("host:notaport").is_err());
    }

    #[test]
    fn redirects_and_realms_keep_to_https_except_on_loopback() {
        let (e, p) = Endpoint::from_url("https://cdn.example.com/blobs/x?sig=1&exp=2").unwrap();
        assert_eq!(e.authority, "cdn.example.com");
        assert_eq!(p, "/blobs/x?sig=1&exp=2");
        let (e, _) = Endpoint::from_url("http://127.0.0.1:9999/b").unwrap();
        assert_eq!(e.target, Target::Tcp("127.0.0.1:9999".into()));
        assert!(
            Endpoint::from_url("http://cdn.example.com/b")
                .unwrap_err()
                .contains("plain HTTP only on loopback")
        );
        assert!(Endpoint::from_url("ftp://x/y").is_err());
        assert!(Endpoint::from_url("not a url").is_err());
    }

    #[test]
    fn www_authenticate_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:library/nginx:pull");
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        let c =
            parse_challenges(r#"Basic realm="a, b", Bearer realm=https://t/x, error="insufficient_scope""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].params["realm"], "a, b");
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "https://t/x");
        assert_eq!(c[1].params["error"], "insufficient_scope");
        let c = parse_challenges(r#"Bearer realm="q\"uote""#);
        assert_eq!(c[0].params["realm"], "q\"uote");
        assert!(parse_challenges("").is_empty());
    }
}
