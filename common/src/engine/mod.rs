//! dockwarden's own small client for the Docker Engine API: the calls the informer and the
//! enforcer make (ping, list, inspect, image inspect, events, kill, stop, remove), over
//! hyper's HTTP/1 client on a Unix socket or plain TCP.
//!
//! Why not bollard here: its generated models decode strictly, so one enum value it does not
//! know (`--isolation=Default`, a Podman port type, a newer engine's restart policy) makes a
//! whole inspect, list or event stream fail, and a container that cannot be decoded was never
//! judged (the "fail closed" issue). This client returns `serde_json::Value`s; the fields
//! dockwarden reads are picked out leniently in [`crate::engine::container`] and [`crate::engine::event`], so
//! a field it does not use can never stop a judgement. Paths are sent unversioned: the engine
//! answers in its own API version (Engine 20.10, 25+, and Podman's compat API alike).
//!
//! [`Engine`] is the seam the informer and the enforcer call through; [`HttpEngine`] is the
//! real implementation, and the informer's tests script a fake.

pub mod container;
pub mod event;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod logs;
pub mod resolve;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::BoxStream;
use hyper::Method;
use serde_json::Value;

use crate::http::client::{self, Client, JsonLines, Target, encode};
use crate::power::{EngineDefaults, VolumeFacts};
use container::{Container, ImageFacts, Summary};
use event::Event;

/// A failed engine call: the one HTTP client's error, naming the engine.
pub type EngineError = client::Error;

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
        let bad = |why: &str| EngineError::Address(format!("of the Docker Engine {host:?}: {why}"));
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

    fn target(&self) -> Target {
        match self {
            Endpoint::Unix(p) => Target::Unix(p.clone()),
            Endpoint::Tcp(a) => Target::Tcp(a.clone()),
        }
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

/// What the informer, the enforcer and the plugin ask of the engine, as our own typed
/// pictures: the engine's JSON is decoded leniently at this edge, once, by the same
/// functions ([`decode`]) for the real engine ([`HttpEngine`]) and the scripted one
/// ([`fake::FakeEngine`], behind the `test-util` feature).
pub trait Engine: Clone + Send + Sync + 'static {
    /// `GET /_ping`: the engine answers.
    fn ping(&self) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// The IDs of every container (`GET /containers/json?all=1`), only those with `label`
    /// when given.
    fn list(&self, label: Option<&str>) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;
    /// Every container's list entry (`GET /containers/json?all=1`): for the one-time
    /// search of our own container at start-up.
    fn summaries(&self) -> impl Future<Output = Result<Vec<Summary>, EngineError>> + Send;
    /// What the list shows of one container (`GET /containers/json?all=1&filters={"id":[id]}`),
    /// for a container whose inspect keeps failing; `None` when the engine has no such
    /// container.
    fn summary(&self, id: &str) -> impl Future<Output = Result<Option<Container>, EngineError>> + Send;
    /// `GET /containers/{id}/json`: the container without its image's names (see
    /// [`Container::with_image`]); an inspect that lacks a field a decision needs is an
    /// [`EngineError::Decode`].
    fn inspect(&self, id: &str) -> impl Future<Output = Result<Container, EngineError>> + Send;
    /// `GET /images/{id}/json`.
    fn image(&self, id: &str) -> impl Future<Output = Result<ImageFacts, EngineError>> + Send;
    /// `GET /volumes/{name}`: its driver and options; `None` when there is no such volume.
    fn volume(&self, name: &str) -> impl Future<Output = Result<Option<VolumeFacts>, EngineError>> + Send;
    /// `GET /plugins/{name}/json`: the reference an installed engine plugin was pulled from
    /// (`PluginReference`); `None` when there is no such plugin.
    fn plugin(&self, name: &str) -> impl Future<Output = Result<Option<String>, EngineError>> + Send;
    /// What the engine does by default that its inspects do not say apart from a request
    /// (`GET /info`, learnt once): whether containers share the host's cgroup namespace.
    fn defaults(&self) -> impl Future<Output = Result<EngineDefaults, EngineError>> + Send;
    /// `GET /events?since=..&filters=..`: the events until the stream ends (events that
    /// name no actor are skipped). `filters` is the engine's JSON filter object.
    fn events(&self, since: &str, filters: &Value) -> BoxStream<'static, Result<Event, EngineError>>;
    /// `POST /containers/{id}/kill` (SIGKILL).
    fn kill(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// `POST /containers/{id}/stop?t=secs`.
    fn stop(&self, id: &str, secs: u64) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// `DELETE /containers/{id}?force=1`.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// The engine's JSON into our pictures, leniently: the one place the real and the fake
/// engine decode answers.
pub mod decode {
    use serde_json::Value;

    use super::EngineError;
    use crate::engine::container::{Container, ImageFacts, Summary};
    use crate::engine::event::Event;
    use crate::power::{EngineDefaults, VolumeFacts};

    fn array(what: &str, v: Value) -> Result<Vec<Value>, EngineError> {
        match v {
            Value::Array(v) => Ok(v),
            other => Err(EngineError::Decode {
                what: what.into(),
                message: format!("expected an array, got {}", super::kind(&other)),
            }),
        }
    }

    pub fn summaries(v: Value) -> Result<Vec<Summary>, EngineError> {
        Ok(array("list containers", v)?
            .iter()
            .map(Summary::from_json)
            .filter(|s| !s.id.is_empty())
            .collect())
    }

    /// The list entry of container `id` in a list answer.
    pub fn summary(v: Value, id: &str) -> Result<Option<Container>, EngineError> {
        Ok(array("list one container", v)?
            .iter()
            .find(|c| c.get("Id").and_then(Value::as_str) == Some(id))
            .map(Container::from_summary))
    }

    pub fn inspect(v: &Value, engine: &EngineDefaults) -> Result<Container, EngineError> {
        Container::from_inspect(v, None, engine).map_err(|e| EngineError::Decode {
            what: "inspect container".into(),
            message: e.to_string(),
        })
    }

    pub fn image(v: &Value) -> ImageFacts {
        ImageFacts::from_json(v)
    }

    /// A volume inspect: `Driver`, `Options` (null: none); values that are not strings
    /// are kept as their JSON text.
    pub fn volume(v: &Value) -> VolumeFacts {
        VolumeFacts {
            driver: v.get("Driver").and_then(Value::as_str).unwrap_or("").to_string(),
            options: crate::engine::container::labels_of(v.get("Options").unwrap_or(&Value::Null))
                .into_iter()
                .collect(),
        }
    }

    /// `GET /info`: an engine whose `SecurityOptions` lack `name=cgroupns` gives
    /// containers the host's cgroup namespace by default (cgroup v1, or configured so).
    pub fn defaults(v: &Value) -> EngineDefaults {
        let private = v
            .get("SecurityOptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|o| o.split(',').any(|kv| kv == "name=cgroupns"));
        EngineDefaults {
            host_cgroupns_by_default: !private,
        }
    }

    pub fn event(v: Result<Value, EngineError>) -> Option<Result<Event, EngineError>> {
        match v {
            Ok(v) => Event::from_json(&v).map(Ok),
            Err(e) => Some(Err(e)),
        }
    }
}

/// The real engine, over [`crate::http::client`]. Cheap to clone; one connection per call.
#[derive(Debug, Clone)]
pub struct HttpEngine {
    endpoint: std::sync::Arc<Endpoint>,
    client: Client,
    /// Learnt from the engine once ([`Engine::defaults`]).
    defaults: std::sync::Arc<tokio::sync::OnceCell<EngineDefaults>>,
}

impl HttpEngine {
    /// A client for `host` (see [`Endpoint::resolve`]). Nothing is contacted yet.
    pub fn new(host: Option<&str>) -> Result<HttpEngine, EngineError> {
        let endpoint = Endpoint::resolve(host)?;
        let client = Client::new(
            endpoint.target(),
            format!("the Docker Engine at {endpoint}"),
            REQUEST_TIMEOUT,
        )
        .with_host_header("docker");
        Ok(HttpEngine {
            endpoint: std::sync::Arc::new(endpoint),
            client,
            defaults: std::sync::Arc::default(),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn get_json(&self, what: &str, path_and_query: &str) -> Result<Value, EngineError> {
        self.client.get_json(what, path_and_query, MAX_BODY).await
    }

    async fn call(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        self.client.call(what, method, path_and_query, timeout).await
    }

    /// `GET /containers/{id}/stats?stream=false&one-shot=true`: one resource sample, as the
    /// engine's JSON (picked leniently by the caller).
    pub async fn stats(&self, id: &str) -> Result<Value, EngineError> {
        let q = format!("/containers/{}/stats?stream=false&one-shot=true", encode(id));
        self.get_json("read container stats", &q).await
    }

    /// `GET /containers/{id}/logs?stdout=1&stderr=1&tail=N`: the last `tail` lines, then
    /// whatever the container writes meanwhile until the engine ends the answer (the log
    /// is not followed). `tty`: the container's `Config.Tty` (raw bytes, else frames).
    pub async fn logs(&self, id: &str, tail: u32, tty: bool) -> Result<logs::LogBytes, EngineError> {
        let q = format!("/containers/{}/logs?stdout=1&stderr=1&tail={tail}", encode(id));
        let resp = self
            .client
            .send("read the logs", Method::GET, &q, &[], self.client.timeout())
            .await?;
        Ok(logs::LogBytes::new(resp.into_body(), tty))
    }

    /// `GET /info`'s `Name`: the engine's host name, which names the node in the fleet view
    /// when no `--node-name` is given.
    pub async fn node_name(&self) -> Result<String, EngineError> {
        let v = self.get_json("read the engine's name", "/info").await?;
        match v.get("Name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(name) => Ok(name.to_string()),
            None => Err(EngineError::Decode {
                what: "read the engine's name".into(),
                message: "GET /info has no Name".into(),
            }),
        }
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

impl Engine for HttpEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        self.call("ping", Method::GET, "/_ping", self.client.timeout())
            .await
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
        let listed: Vec<Listed> = self.client.get_streamed("list containers", &q).await?;
        Ok(listed.into_iter().filter_map(|l| l.id).collect())
    }

    async fn summaries(&self) -> Result<Vec<Summary>, EngineError> {
        decode::summaries(self.get_json("list containers", "/containers/json?all=1").await?)
    }

    async fn summary(&self, id: &str) -> Result<Option<Container>, EngineError> {
        let filters = serde_json::json!({ "id": [id] });
        let q = format!("/containers/json?all=1&filters={}", encode(&filters.to_string()));
        decode::summary(self.get_json("list one container", &q).await?, id)
    }

    async fn inspect(&self, id: &str) -> Result<Container, EngineError> {
        let defaults = self.defaults().await?;
        let v = self
            .get_json("inspect container", &format!("/containers/{}/json", encode(id)))
            .await?;
        decode::inspect(&v, &defaults)
    }

    async fn volume(&self, name: &str) -> Result<Option<VolumeFacts>, EngineError> {
        match self
            .get_json("inspect volume", &format!("/volumes/{}", encode(name)))
            .await
        {
            Ok(v) => Ok(Some(decode::volume(&v))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn plugin(&self, name: &str) -> Result<Option<String>, EngineError> {
        match self
            .get_json(
                "inspect engine plugin",
                &format!("/plugins/{}/json", encode(name)),
            )
            .await
        {
            Ok(v) => Ok(v
                .get("PluginReference")
                .and_then(Value::as_str)
                .map(str::to_string)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn defaults(&self) -> Result<EngineDefaults, EngineError> {
        self.defaults
            .get_or_try_init(|| async {
                let v = self.get_json("read the engine's defaults", "/info").await?;
                let d = decode::defaults(&v);
                tracing::info!(
                    host_cgroupns_by_default = d.host_cgroupns_by_default,
                    "engine defaults learnt"
                );
                Ok(d)
            })
            .await
            .copied()
    }

    async fn image(&self, id: &str) -> Result<ImageFacts, EngineError> {
        let v = self
            .get_json("inspect image", &format!("/images/{}/json", encode(id)))
            .await?;
        Ok(decode::image(&v))
    }

    fn events(&self, since: &str, filters: &Value) -> BoxStream<'static, Result<Event, EngineError>> {
        let this = self.clone();
        let q = format!(
            "/events?since={}&filters={}",
            encode(since),
            encode(&filters.to_string())
        );
        let start = async move {
            let resp = this
                .client
                .send("subscribe to events", Method::GET, &q, &[], this.client.timeout())
                .await?;
            Ok::<_, EngineError>(JsonLines::new(
                resp.into_body(),
                "read the event stream",
                MAX_BODY,
            ))
        };
        use futures_util::StreamExt;
        futures_util::stream::once(start)
            .flat_map(|r| match r {
                Ok(lines) => lines.boxed(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            })
            .filter_map(|v| std::future::ready(decode::event(v)))
            .boxed()
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        let q = format!("/containers/{}/kill?signal=SIGKILL", encode(id));
        self.call("kill container", Method::POST, &q, self.client.timeout())
            .await
            .map_err(not_running_is_a_conflict)
    }

    async fn stop(&self, id: &str, secs: u64) -> Result<(), EngineError> {
        let q = format!("/containers/{}/stop?t={secs}", encode(id));
        // The engine answers once the container is down: wait longer than that may take.
        let timeout = self.client.timeout() + Duration::from_secs(secs);
        self.call("stop container", Method::POST, &q, timeout).await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let q = format!("/containers/{}?force=1", encode(id));
        self.call("remove container", Method::DELETE, &q, self.client.timeout())
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
            peer,
            status: 500,
            message,
        } if message.contains(PODMAN_STATE_IMPROPER) => EngineError::Status {
            what,
            peer,
            status: 409,
            message,
        },
        other => other,
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
            peer: "podman".into(),
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
}
