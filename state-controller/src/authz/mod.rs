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
    ActionResult, Decision, DecisionRecord, Denied, Endpoint, Identity, Plan, Trigger, Why, decide_with,
    signatures_to_verify,
};
use common::engine::Engine;
use common::policy::Missing;
use common::provenance::Verifier;
use std::collections::BTreeMap;

use common::engine::container::{Container, Source, State};
use common::informer::store::Store;
use common::policy::Mode;
use common::power::Power;
use common::reload::{Loaded, PolicyHandle};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::decisions::Decisions;
use crate::metrics::Metrics;
use request::{AuthzRequest, PluginAction, Route};

/// The content type of every answer (moby's plugin client sends and expects it).
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";
/// Largest authorization request read: the engine forwards bodies up to 1 MiB, base64.
const MAX_REQUEST: usize = 4 << 20;

/// Everything the plugin reads; shared by its connections.
pub struct Authz<E: Engine> {
    pub policy: PolicyHandle,
    pub store: Store,
    pub engine: E,
    /// Signatures of `signed_by` rules: the cache the decision reads, verified here when
    /// not known yet (within the verifier's timeout).
    pub verifier: Verifier,
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
        ("", i) if endpoint.object() == "engine plugin" => format!(" {i}"),
        ("", i) => format!(" (image {i})"),
        (n, "") => format!(" {n:?}"),
        (n, i) => format!(" {n:?} (image {i})"),
    };
    Judged {
        answer: Answer {
            allow: false,
            msg: format!(
                "dockwarden policy {} (generation {}) refuses {} of {}{what}: {decision}",
                path.display(),
                loaded.generation,
                endpoint.as_str(),
                endpoint.object(),
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
        Route::ServiceCreate => Endpoint::ServiceCreate,
        Route::ServiceUpdate { .. } => Endpoint::ServiceUpdate,
        Route::EnginePlugin { action, .. } => match action {
            PluginAction::Pull => Endpoint::PluginPull,
            PluginAction::Create => Endpoint::PluginCreate,
            PluginAction::Enable => Endpoint::PluginEnable,
            PluginAction::Upgrade => Endpoint::PluginUpgrade,
            PluginAction::Set => Endpoint::PluginSet,
        },
        Route::Other => Endpoint::Other,
    }
}

/// What one request asks to be judged.
enum Subject {
    /// A container, as it will run (create) or runs (start, exec).
    Container(Container),
    /// A service's tasks: what only the nodes can tell is left to the event path.
    Service(Container),
    /// An engine plugin, by the reference it is pulled from.
    EnginePlugin(String),
    /// Nothing to judge (no such container, a rollback, a service without containers).
    Pass(&'static str),
}

/// The request's body, when the engine forwarded one it reads as JSON. The engine forwards
/// it only for exactly `application/json`; a body it did not forward, or one it would
/// decode differently, cannot be judged.
fn json_body(r: &AuthzRequest, what: &str) -> Result<Option<Vec<u8>>, String> {
    match r
        .content_type()
        .map(|ct| ct.split(';').next().unwrap_or("").trim())
    {
        Some(ct) if ct.eq_ignore_ascii_case("application/json") => {}
        Some(ct) => {
            return Err(format!(
                "a {what} request with Content-Type {ct:?} cannot be judged"
            ));
        }
        None => {}
    }
    if r.body_b64.as_deref().is_none_or(str::is_empty) {
        return Ok(None);
    }
    r.body().map(Some).map_err(|e| e.to_string())
}

fn no_body() -> String {
    "the engine forwarded no body (chunked, over 1 MiB, or not plain application/json): it cannot be judged"
        .to_string()
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
        let judged = match &route {
            Route::Create { name } => self
                .create_facts(r, name.as_deref(), &loaded)
                .await
                .map(Subject::Container),
            Route::Run {
                container,
                host_config_body,
                ..
            } => {
                self.run_facts(r, container, *host_config_body, &loaded, &me)
                    .await
            }
            Route::Exec { container } => self.exec_facts(r, container, &loaded, &me).await,
            Route::ServiceCreate | Route::ServiceUpdate { rollback: false, .. } => {
                self.service_facts(r, &loaded).await
            }
            // The engine runs the service's previous spec, judged when it was made; a policy
            // that narrowed since is the event path's (docs/authz.md).
            Route::ServiceUpdate { rollback: true, .. } => {
                Ok(Subject::Pass("a rollback runs the previous spec"))
            }
            Route::EnginePlugin { action, reference } => self.plugin_facts(*action, reference).await,
            Route::Other => Ok(Subject::Pass("not judged")),
        };
        let (c, decision) = match judged {
            Ok(Subject::Container(c)) => {
                let d = match self.decide(&loaded, &c, &me).await {
                    Decision::Undecided(m) => {
                        unjudgeable(&loaded, format!("{} not known before it runs", m.as_str()))
                    }
                    d => d,
                };
                (Some(c), d)
            }
            Ok(Subject::Service(c)) => match self.decide(&loaded, &c, &me).await {
                // What only a node can tell (a task's name, a volume or the image's user
                // there) is left to the event path, which judges every task.
                Decision::Undecided(_)
                | Decision::Deny(Denied {
                    why: Why::PowerUnknown { .. },
                    ..
                }) => {
                    self.metrics.authz(endpoint, "allow", t0);
                    return Answer::allow();
                }
                d => (Some(c), d),
            },
            Ok(Subject::EnginePlugin(plugin)) => {
                let d = common::decision::decide_engine_plugin(&loaded.policy, &plugin);
                let c = Container {
                    image: plugin,
                    ..Default::default()
                };
                (Some(c), d)
            }
            // No such container: the engine answers 404 itself. Or nothing to judge.
            Ok(Subject::Pass(why)) => {
                tracing::debug!(endpoint = endpoint.as_str(), why, "authorization plugin: passed");
                self.metrics.authz(endpoint, "allow", t0);
                return Answer::allow();
            }
            Err(why) => (None, unjudgeable(&loaded, why)),
        };
        self.answer(&loaded, endpoint, t0, c.as_ref(), &decision)
    }

    /// The decision, with the signatures it needs verified first (each within the
    /// verifier's timeout; the results are cached for the event path too).
    async fn decide(&self, loaded: &Loaded, c: &Container, me: &Identity) -> Decision {
        // One round per signed_by rule it could reach; more means the cache lost the
        // results meanwhile (a reload): then it is not known, and refused.
        let rounds = loaded.policy.key_set_ids().len() + 1;
        for _ in 0..rounds {
            let d = decide_with(&loaded.policy, c, me, &self.verifier);
            if d != Decision::Undecided(Missing::Signature) {
                return d;
            }
            let keys = signatures_to_verify(&loaded.policy, c, &self.verifier);
            if keys.is_empty() {
                return d;
            }
            for k in keys {
                self.verifier.verify_image(&c.image, &c.image_digests, k).await;
            }
        }
        decide_with(&loaded.policy, c, me, &self.verifier)
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

    /// The container a create request would make, as the engine will read it, with the
    /// host power it asks, resolved as the engine will resolve it.
    async fn create_facts(
        &self,
        r: &AuthzRequest,
        name: Option<&str>,
        loaded: &Loaded,
    ) -> Result<Container, String> {
        let body = json_body(r, "create")?.ok_or_else(no_body)?;
        let b = request::create_body(&body).map_err(|e| e.to_string())?;
        let mut power = b.power();
        self.resolve(&mut power, loaded).await?;
        let mut c = self.about_to_run(b.image, b.labels, power).await;
        c.name = name.unwrap_or("").to_string();
        Ok(c)
    }

    /// A container about to be made from `image` (which may not exist yet: then it stays
    /// unresolved, and only what does not depend on it can allow).
    async fn about_to_run(&self, image: String, labels: BTreeMap<String, String>, power: Power) -> Container {
        let facts = match self.engine.image(&image).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(image = %image, error = %e, "authorization plugin: image not resolved");
                None
            }
        };
        let (image_id, tags, digests, source) = match facts {
            Some(f) => (f.id, f.tags, f.digests, Source::Inspect),
            None => (String::new(), Vec::new(), Vec::new(), Source::Event),
        };
        Container {
            image,
            image_id,
            image_tags: tags,
            image_digests: digests,
            labels,
            state: State::Created,
            source,
            power,
            ..Default::default()
        }
    }

    /// Looks up what the facts refer to (joined containers, volumes, the image's user).
    async fn resolve(&self, power: &mut Power, loaded: &Loaded) -> Result<(), String> {
        common::engine::resolve::resolve(&self.engine, power, loaded.policy.profile)
            .await
            .map_err(|e| format!("cannot look up what it asks of the host: {e}"))
    }

    /// `start`, `restart`, `unpause` of a container as it exists; for a `start` on an API
    /// version before 1.24, with the host config its body sets.
    async fn run_facts(
        &self,
        r: &AuthzRequest,
        key: &str,
        host_config_body: bool,
        loaded: &Loaded,
        me: &Identity,
    ) -> Result<Subject, String> {
        let Some(mut c) = self.existing(key, loaded, me).await? else {
            return Ok(Subject::Pass("no such container"));
        };
        if host_config_body && let Some(body) = json_body(r, "start")? {
            let mut extra = request::start_body(&body).map_err(|e| e.to_string())?;
            self.resolve(&mut extra, loaded).await?;
            c.power.merge(extra);
        }
        Ok(Subject::Container(c))
    }

    /// An exec into a container as it exists: judged as the container, with what the exec
    /// asks besides (`--privileged`) as if the container asked it.
    async fn exec_facts(
        &self,
        r: &AuthzRequest,
        key: &str,
        loaded: &Loaded,
        me: &Identity,
    ) -> Result<Subject, String> {
        let body = json_body(r, "exec")?.ok_or_else(no_body)?;
        let exec = request::exec_body(&body).map_err(|e| e.to_string())?;
        let Some(mut c) = self.existing(key, loaded, me).await? else {
            return Ok(Subject::Pass("no such container"));
        };
        c.power.merge(exec.power());
        Ok(Subject::Container(c))
    }

    /// A service's tasks, as far as the service tells: the image, labels and host power of
    /// its containers; their names are made on the nodes.
    async fn service_facts(&self, r: &AuthzRequest, loaded: &Loaded) -> Result<Subject, String> {
        let body = json_body(r, "service")?.ok_or_else(no_body)?;
        let spec = request::service_body(&body).map_err(|e| e.to_string())?;
        if let Some(plugin) = spec.plugin {
            return Ok(Subject::EnginePlugin(plugin));
        }
        let Some(task) = spec.container else {
            return Ok(Subject::Pass("a service that runs no container"));
        };
        let mut power = task.power();
        self.resolve(&mut power, loaded).await?;
        let mut c = self.about_to_run(task.image, task.labels, power).await;
        c.name_unknown = true;
        Ok(Subject::Service(c))
    }

    /// An engine plugin by what it is pulled from; an installed plugin (enable, set) by the
    /// reference it was pulled from, which its local name (an alias) need not say.
    async fn plugin_facts(&self, action: PluginAction, reference: &str) -> Result<Subject, String> {
        match action {
            PluginAction::Pull | PluginAction::Upgrade | PluginAction::Create => {
                Ok(Subject::EnginePlugin(reference.to_string()))
            }
            PluginAction::Enable | PluginAction::Set => match self.engine.plugin(reference).await {
                Ok(Some(pulled_from)) if !pulled_from.is_empty() => Ok(Subject::EnginePlugin(pulled_from)),
                Ok(_) => Ok(Subject::EnginePlugin(reference.to_string())),
                Err(e) => Err(format!("cannot look the engine plugin up: {e}")),
            },
        }
    }

    /// A container that exists, by ID, name or ID prefix: from the picture when that can
    /// settle it, else inspected whole. `None` when the engine has no such container.
    async fn existing(&self, key: &str, loaded: &Loaded, me: &Identity) -> Result<Option<Container>, String> {
        if let Ok(c) = self.store.resolve(key)
            && !matches!(
                decide_with(&loaded.policy, &c, me, &self.verifier),
                Decision::Undecided(m) if m != Missing::Signature
            )
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
        let mut c = match self.engine.image(&c.image_id).await {
            Ok(f) => c.with_image(&f),
            Err(e) if e.status() == Some(404) => c,
            Err(e) => return Err(format!("cannot look its image up: {e}")),
        };
        // What it refers to (its volumes' options, a joined container), as the informer
        // would have found it.
        self.resolve(&mut c.power, loaded).await?;
        Ok(Some(c))
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
