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
use common::decision::{Decision, Identity, decide};
use common::engine::Engine;
use common::engine::container::{Container, ImageFacts, Source, State};
use common::informer::store::Store;
use common::reload::PolicyHandle;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::executor::{DecisionRecord, Decisions, now_rfc3339};
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

/// Serves the plugin on `listener` until `shutdown` resolves.
pub async fn serve<E: Engine>(
    listener: tokio::net::UnixListener,
    authz: Arc<Authz<E>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "authorization plugin: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let authz = authz.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let authz = authz.clone();
                async move { Ok::<_, Infallible>(authz.handle(req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "authorization plugin connection ended");
            }
        });
    }
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

impl<E: Engine> Authz<E> {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        // Read every request's body whole, even the ones not looked at: a connection whose
        // request body was left unread is closed after the answer, and the engine's plugin
        // client, reusing it a moment later, fails and retries after a second.
        let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let a = self.refuse("request", format!("unreadable authorization request: {e}"));
                return answer(&a);
            }
        };
        match path.as_str() {
            "/Plugin.Activate" => reply(StatusCode::OK, json!({"Implements": ["authz"]})),
            "/AuthZPlugin.AuthZRes" => reply(StatusCode::OK, json!({"Allow": true})),
            "/AuthZPlugin.AuthZReq" => {
                let a = match serde_json::from_slice::<AuthzRequest>(&body) {
                    Ok(r) => self.judge(&r).await,
                    Err(e) => self.refuse("request", format!("unreadable authorization request: {e}")),
                };
                answer(&a)
            }
            other => reply(
                StatusCode::NOT_FOUND,
                json!({"Err": format!("dockwarden serves the authz plugin protocol only, not {other}")}),
            ),
        }
    }

    /// Judges one request.
    pub async fn judge(&self, r: &AuthzRequest) -> Answer {
        let t0 = Instant::now();
        let route = match request::route(&r.method, &r.uri) {
            Ok(route) => route,
            Err(e) => return self.refuse("request", format!("{} {}: {e}", r.method, r.uri)),
        };
        if route == Route::Other {
            self.metrics.authz("other", "allow", t0);
            return Answer::allow();
        }
        let endpoint = route.endpoint();
        let facts = match &route {
            Route::Create { name } => self.create_facts(r, name.as_deref()).await,
            Route::Run { container, .. } | Route::Exec { container } => self.existing(container).await,
            _ => unreachable_other(),
        };
        let c = match facts {
            Ok(Some(c)) => c,
            // No such container: the engine answers 404 itself.
            Ok(None) => {
                self.metrics.authz(endpoint, "allow", t0);
                return Answer::allow();
            }
            Err(why) => return self.refused(endpoint, t0, None, why, self.audit()),
        };
        let loaded = self.policy.current();
        let me = self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let audit = self.audit();
        match decide(&loaded.policy, &c, &me) {
            Decision::Allow(_) | Decision::Spare(_) => {
                self.metrics.authz(endpoint, "allow", t0);
                Answer::allow()
            }
            Decision::Deny { verdict, .. } => self.refused(endpoint, t0, Some(&c), verdict.reason, audit),
            Decision::Undecided(missing) => self.refused(
                endpoint,
                t0,
                Some(&c),
                format!("cannot be judged before it runs: {missing} not known"),
                audit,
            ),
        }
    }

    /// Audit mode: everything passes, what would be refused is logged and counted.
    fn audit(&self) -> bool {
        self.policy.current().policy.mode == common::policy::Mode::Audit
    }

    /// A refusal that names no container (an unreadable request).
    fn refuse(&self, endpoint: &'static str, why: String) -> Answer {
        self.refused(endpoint, Instant::now(), None, why, self.audit())
    }

    fn refused(
        &self,
        endpoint: &'static str,
        t0: Instant,
        c: Option<&Container>,
        reason: String,
        audit: bool,
    ) -> Answer {
        let loaded = self.policy.current();
        let (name, image, id) = c.map_or(("", "", ""), |c| {
            (c.name.as_str(), c.image.as_str(), c.id.as_str())
        });
        let trigger = trigger(endpoint);
        let took_us = t0.elapsed().as_micros() as u64;
        if audit {
            self.metrics.authz(endpoint, "audit", t0);
            tracing::warn!(container = %name, image = %image, verdict = "deny", reason = %reason, action = "refuse",
                result = "would refuse (audit mode)", trigger, took_us, "decision");
        } else {
            self.metrics.authz(endpoint, "deny", t0);
            tracing::warn!(container = %name, image = %image, verdict = "deny", reason = %reason, action = "refuse",
                result = "refused", trigger, took_us, "decision");
        }
        self.decisions.push(DecisionRecord {
            time: now_rfc3339(),
            container: name.to_string(),
            id: id.to_string(),
            image: image.to_string(),
            verdict: "deny",
            rule: None,
            reason: reason.clone(),
            action: Some("refuse"),
            result: if audit { "audit".into() } else { "refused".into() },
            latency_ms: None,
            trigger,
        });
        if audit {
            return Answer::allow();
        }
        let what = match (name, image) {
            ("", "") => String::new(),
            ("", i) => format!(" (image {i})"),
            (n, "") => format!(" {n:?}"),
            (n, i) => format!(" {n:?} (image {i})"),
        };
        Answer {
            allow: false,
            msg: format!(
                "dockwarden policy {} (generation {}) refuses {endpoint} of container{what}: {reason}",
                self.policy.path.display(),
                loaded.generation
            ),
        }
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
            Ok(v) => Some(ImageFacts::from_json(&v)),
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
    async fn existing(&self, key: &str) -> Result<Option<Container>, String> {
        let loaded = self.policy.current();
        let me = self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Ok(c) = self.store.resolve(key)
            && !matches!(decide(&loaded.policy, &c, &me), Decision::Undecided(_))
        {
            return Ok(Some((*c).clone()));
        }
        // Not in the picture yet (just created), or a bounded copy: ask the engine. Our own
        // calls pass through this plugin too; they are answered on other connections.
        let v = match self.engine.inspect(key).await {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(format!("cannot look the container up: {e}")),
        };
        let image = match v.get("Image").and_then(serde_json::Value::as_str) {
            Some(id) if !id.is_empty() => match self.engine.image(id).await {
                Ok(iv) => Some(ImageFacts::from_json(&iv)),
                Err(e) if e.status() == Some(404) => None,
                Err(e) => return Err(format!("cannot look its image up: {e}")),
            },
            _ => None,
        };
        Container::from_inspect(&v, image.as_ref())
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

fn answer(a: &Answer) -> Response<Full<Bytes>> {
    if a.allow {
        reply(StatusCode::OK, json!({"Allow": true}))
    } else {
        reply(StatusCode::OK, json!({"Allow": false, "Msg": a.msg}))
    }
}

fn trigger(endpoint: &str) -> &'static str {
    match endpoint {
        "create" => "authz create",
        "start" => "authz start",
        "restart" => "authz restart",
        "unpause" => "authz unpause",
        "exec" => "authz exec",
        _ => "authz request",
    }
}

fn unreachable_other() -> Result<Option<Container>, String> {
    Err("internal: an unjudged route reached the judge".into())
}

#[cfg(test)]
mod tests;
