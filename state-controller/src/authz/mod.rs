//! Prevention: Docker's authorization-plugin protocol on a unix socket, so the engine asks
//! dockwarden before a denied container exists. Same process, policy, reload and decision
//! ([`common::decision::decide`]) as the event path, which stays the backstop for what the
//! plugin never sees (Swarm tasks, containers created before the plugin was configured, a
//! policy that narrowed).
//!
//! Protocol (moby `pkg/authorization`): every call is a POST with JSON;
//! `/Plugin.Activate` → `{"Implements":["authz"]}`; `/AuthZPlugin.AuthZReq` carries
//! `RequestMethod`, `RequestUri`, `RequestBody` (base64), `RequestHeaders`; the answer is
//! `{"Allow":bool,"Msg":"..."}`. `/AuthZPlugin.AuthZRes` comes after the engine acted: allowed.
//!
//! Judged: `POST /containers/create` (the body as the engine will read it, see [`request`]),
//! `start`/`restart`/`unpause` of a container as it exists, and `exec` into a container the
//! policy denies. Everything else is allowed at once, without decoding bodies: this path is
//! on every API call of the host. When in doubt (no body, an unreadable one, a container
//! that cannot be looked up), deny.

pub mod request;

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use common::decision::{
    ActionResult, Decision, DecisionRecord, Denied, Endpoint, Identity, Plan, Trigger, Why, decide,
};
use common::engine::Engine;
use common::engine::container::{Container, Source, State};
use common::informer::store::Store;
use common::policy::Mode;
use common::reload::{Loaded, PolicyHandle};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::decisions::Decisions;
use crate::metrics::Metrics;
use request::{AuthzRequest, Route};

/// The content type of every answer (moby's plugin client sends and expects it).
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";
/// Largest authorization request read: the engine forwards bodies up to 1 MiB, base64.
const MAX_REQUEST: usize = 4 << 20;

/// Everything the plugin reads; shared by its connections.
pub struct Authz<E: Engine> {
    pub policy: PolicyHandle,
    pub store: Store,
    pub engine: E,
    pub identity: Arc<Mutex<Identity>>,
    pub metrics: Arc<Metrics>,
    pub decisions: Decisions,
}

/// The plugin's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub allow: bool,
    pub msg: String,
}

impl Answer {
    fn allow() -> Answer {
        Answer {
            allow: true,
            msg: String::new(),
        }
    }
}

/// Binds the plugin socket at `path` (its file name without `.sock` is the plugin's name
/// for `dockerd --authorization-plugin`), replacing a stale one.
pub fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the stale socket {}", path.display())),
    }
    tokio::net::UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))
}

/// Serves the plugin on `listener` until `shutdown` resolves, with the header-read timeout
/// and connection cap every server of dockwarden has ([`common::http::server`]).
pub async fn serve<E: Engine>(
    listener: tokio::net::UnixListener,
    authz: Arc<Authz<E>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let svc = hyper::service::service_fn(move |req| {
        let authz = authz.clone();
        async move { Ok::<_, Infallible>(authz.handle(req).await) }
    });
    common::http::serve(
        listener,
        svc,
        common::http::Limits::default(),
        Arc::default(),
        shutdown,
    )
    .await;
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

/// What the plugin makes of one judged request: the answer, and the record and log line
/// when it refused (or, in audit mode, would have). Pure.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub answer: Answer,
    /// `allow`, `deny` or `audit`, as the metrics count it.
    pub result: &'static str,
    pub record: Option<DecisionRecord>,
}

/// Answers `decision` about `c` (None: a request that names no container) under `loaded`.
pub fn verdict(
    loaded: &Loaded,
    path: &Path,
    endpoint: Endpoint,
    c: Option<&Container>,
    decision: &Decision,
) -> Judged {
    if decision.allowed() {
        return Judged {
            answer: Answer::allow(),
            result: "allow",
            record: None,
        };
    }
    let audit = loaded.policy.mode == Mode::Audit;
    let (name, image, id) = c.map_or(("", "", ""), |c| {
        (c.name.as_str(), c.image.as_str(), c.id.as_str())
    });
    let result = if audit {
        ActionResult::Audit
    } else {
        ActionResult::Refused
    };
    let record = DecisionRecord::new(decision, name, id, image, None, result, Trigger::Authz(endpoint));
    if audit {
        return Judged {
            answer: Answer::allow(),
            result: "audit",
            record: Some(record),
        };
    }
    let what = match (name, image) {
        ("", "") => String::new(),
        ("", i) => format!(" (image {i})"),
        (n, "") => format!(" {n:?}"),
        (n, i) => format!(" {n:?} (image {i})"),
    };
    Judged {
        answer: Answer {
            allow: false,
            msg: format!(
                "dockwarden policy {} (generation {}) refuses {} of container{what}: {decision}",
                path.display(),
                loaded.generation,
                endpoint.as_str(),
            ),
        },
        result: "deny",
        record: Some(record),
    }
}

/// A request that cannot be judged: denied, saying why (audit mode lets it through).
fn unjudgeable(loaded: &Loaded, why: String) -> Decision {
    Decision::Deny(Denied {
        why: Why::Unjudgeable(why),
        plan: Plan::Nothing,
        audit: loaded.policy.mode == Mode::Audit,
    })
}

fn endpoint_of(route: &Route) -> Endpoint {
    match route {
        Route::Create { .. } => Endpoint::Create,
        Route::Run { what: "restart", .. } => Endpoint::Restart,
        Route::Run { what: "unpause", .. } => Endpoint::Unpause,
        Route::Run { .. } => Endpoint::Start,
        Route::Exec { .. } => Endpoint::Exec,
        Route::Other => Endpoint::Other,
    }
}

impl<E: Engine> Authz<E> {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        // Read every request's body whole, even the ones not looked at: a connection whose
        // request body was left unread is closed after the answer, and the engine's plugin
        // client, reusing it a moment later, fails and retries after a second.
        let body = Limited::new(req.into_body(), MAX_REQUEST).collect().await;
        match path.as_str() {
            "/Plugin.Activate" => reply(StatusCode::OK, json!({"Implements": ["authz"]})),
            "/AuthZPlugin.AuthZRes" => reply(StatusCode::OK, json!({"Allow": true})),
            "/AuthZPlugin.AuthZReq" => {
                let parsed = body.map_err(|e| e.to_string()).and_then(|b| {
                    serde_json::from_slice::<AuthzRequest>(&b.to_bytes()).map_err(|e| e.to_string())
                });
                let a = match parsed {
                    Ok(r) => self.judge(&r).await,
                    Err(e) => {
                        let loaded = self.policy.current();
                        let d = unjudgeable(&loaded, format!("unreadable authorization request: {e}"));
                        self.answer(&loaded, Endpoint::Request, Instant::now(), None, &d)
                    }
                };
                answer(&a)
            }
            other => reply(
                StatusCode::NOT_FOUND,
                json!({"Err": format!("dockwarden serves the authz plugin protocol only, not {other}")}),
            ),
        }
    }

    /// Judges one request, on one read of the policy.
    pub async fn judge(&self, r: &AuthzRequest) -> Answer {
        let t0 = Instant::now();
        let loaded = self.policy.current();
        let route = match request::route(&r.method, &r.uri) {
            Ok(route) => route,
            Err(e) => {
                let d = unjudgeable(&loaded, format!("{} {}: {e}", r.method, r.uri));
                return self.answer(&loaded, Endpoint::Request, t0, None, &d);
            }
        };
        let endpoint = endpoint_of(&route);
        if route == Route::Other {
            self.metrics.authz(endpoint, "allow", t0);
            return Answer::allow();
        }
        let me = self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let facts = match &route {
            Route::Create { name } => self.create_facts(r, name.as_deref()).await,
            Route::Run { container, .. } | Route::Exec { container } => {
                self.existing(container, &loaded, &me).await
            }
            Route::Other => Ok(None),
        };
        let (c, decision) = match facts {
            Ok(Some(c)) => {
                let d = match decide(&loaded.policy, &c, &me) {
                    Decision::Undecided(m) => {
                        unjudgeable(&loaded, format!("{} not known before it runs", m.as_str()))
                    }
                    d => d,
                };
                (Some(c), d)
            }
            // No such container: the engine answers 404 itself.
            Ok(None) => {
                self.metrics.authz(endpoint, "allow", t0);
                return Answer::allow();
            }
            Err(why) => (None, unjudgeable(&loaded, why)),
        };
        self.answer(&loaded, endpoint, t0, c.as_ref(), &decision)
    }

    /// Turns a decision into the answer, and logs, counts and keeps what it refused.
    fn answer(
        &self,
        loaded: &Loaded,
        endpoint: Endpoint,
        t0: Instant,
        c: Option<&Container>,
        d: &Decision,
    ) -> Answer {
        let judged = verdict(loaded, &self.policy.path, endpoint, c, d);
        self.metrics.authz(endpoint, judged.result, t0);
        if let Some(record) = judged.record {
            let took_us = t0.elapsed().as_micros() as u64;
            let (container, image) = (&record.container, &record.image);
            let trigger = record.trigger.to_string();
            if judged.result == "audit" {
                tracing::warn!(container = %container, image = %image, verdict = "deny", reason = %d, action = "refuse",
                    result = "would refuse (audit mode)", trigger, took_us, "decision");
            } else {
                tracing::warn!(container = %container, image = %image, verdict = "deny", reason = %d, action = "refuse",
                    result = "refused", trigger, took_us, "decision");
            }
            self.decisions.push(record);
        }
        judged.answer
    }

    /// The container a create request would make, as the engine will read it.
    async fn create_facts(&self, r: &AuthzRequest, name: Option<&str>) -> Result<Option<Container>, String> {
        // The engine forwards the body only for exactly `application/json`; a body it did not
        // forward, or one it would decode differently, cannot be judged.
        match r
            .content_type()
            .map(|ct| ct.split(';').next().unwrap_or("").trim())
        {
            Some(ct) if ct.eq_ignore_ascii_case("application/json") => {}
            Some(ct) => {
                return Err(format!(
                    "a create request with Content-Type {ct:?} cannot be judged"
                ));
            }
            None => {}
        }
        let body = r.body().map_err(|e| e.to_string())?;
        let b = request::create_body(&body).map_err(|e| e.to_string())?;
        // Resolve the image as the engine will (it may not exist yet: then it stays
        // unresolved, and only what does not depend on it can allow).
        let facts = match self.engine.image(&b.image).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(image = %b.image, error = %e, "authorization plugin: image not resolved");
                None
            }
        };
        let (image_id, tags, digests, source) = match facts {
            Some(f) => (f.id, f.tags, f.digests, Source::Inspect),
            None => (String::new(), Vec::new(), Vec::new(), Source::Event),
        };
        Ok(Some(Container {
            name: name.unwrap_or("").to_string(),
            image: b.image,
            image_id,
            image_tags: tags,
            image_digests: digests,
            labels: b.labels,
            state: State::Created,
            source,
            ..Default::default()
        }))
    }

    /// A container that exists, by ID, name or ID prefix: from the picture when that can
    /// settle it, else inspected whole. `None` when the engine has no such container.
    async fn existing(&self, key: &str, loaded: &Loaded, me: &Identity) -> Result<Option<Container>, String> {
        if let Ok(c) = self.store.resolve(key)
            && !matches!(decide(&loaded.policy, &c, me), Decision::Undecided(_))
        {
            return Ok(Some((*c).clone()));
        }
        // Not in the picture yet (just created), or a bounded copy: ask the engine. Our own
        // calls pass through this plugin too; they are answered on other connections.
        let c = match self.engine.inspect(key).await {
            Ok(c) => c,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(format!("cannot look the container up: {e}")),
        };
        match self.engine.image(&c.image_id).await {
            Ok(f) => Ok(Some(c.with_image(&f))),
            Err(e) if e.status() == Some(404) => Ok(Some(c)),
            Err(e) => Err(format!("cannot look its image up: {e}")),
        }
    }
}

fn answer(a: &Answer) -> Response<Full<Bytes>> {
    if a.allow {
        reply(StatusCode::OK, json!({"Allow": true}))
    } else {
        reply(StatusCode::OK, json!({"Allow": false, "Msg": a.msg}))
    }
}

#[cfg(test)]
mod tests;
