//! The fleet view (issue 20): every node's containers, decisions and policy in one place.
//! Each node runs its own status-api; given `--peers` (the orchestrator's name for all of
//! them, [`discovery`]), one of them asks the others in the background ([`poll`]) and merges
//! their answers with a `node` field ([`merge`]): `GET /fleet/containers`,
//! `GET /fleet/nodes`, `GET /fleet/decisions` and the page `/fleet` ([`page`]). There is no
//! store and no leader: any node's fleet view is as good as another's, and a node's own
//! answer stays the truth about that node.
//!
//! - Peers are asked every `--fleet-interval` (2 s), all at once, each within
//!   `--peer-timeout` (3 s), with the ETag of their last answer, the token when one is set,
//!   and a 16 MiB limit. This node is included from memory, without a network hop.
//! - A node that does not answer is listed as unreachable with its last answer's time and
//!   figures (its containers are left out of the list, which names it in `unreachable`),
//!   never silently dropped; one that discovery stops listing is kept that way for
//!   [`FORGET_AFTER`], then forgotten.
//! - Drift: a node whose policy digest (sha256 of the policy file bytes in force) differs
//!   from the majority's ([`merge::drift`]).
//! - Everything is merged and rendered (JSON, gzip) by the background task, off the request
//!   path: an unfiltered request is served bytes, like `GET /containers`.
//!
//! Every node also serves `GET /node` (its own summary: name, sync, mode, policy generation
//! and digest, counts), which is what its peers ask first.

pub mod discovery;
pub mod merge;
pub mod page;
pub mod poll;

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use warp::http::HeaderMap;
use warp::reply::Response;

use crate::errors::ApiError;
use crate::handlers::wants_html;
use crate::query::{self, ListFilter, Pattern};
use crate::reply::{self, Rendered, Wants};
use crate::status::format_seconds;
use crate::views::{JSON, Snapshot, to_json};
use crate::{AppState, html};
use discovery::{Peers, Resolved};
use merge::{Containers, Decisions, Merged, NodeInput, NodeView};
use poll::Peer;

/// A node that discovery no longer lists is shown as unreachable for this long, then
/// forgotten (a node removed from the cluster for good must leave the view).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Fleet settings (`--peers`, `--node-name`, `--peer-timeout`, `--fleet-interval`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub peers: Option<Peers>,
    /// `--node-name`; else the engine's name (`GET /info`), else the host name.
    pub node_name: Option<String>,
    pub peer_timeout: Duration,
    pub interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            peers: None,
            node_name: None,
            peer_timeout: Duration::from_secs(3),
            interval: Duration::from_secs(2),
        }
    }
}

/// `GET /node`: one node's summary, as its peers read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeInfo {
    /// The node's name (Swarm node host name, Kubernetes `spec.nodeName`, the engine's name).
    pub node: String,
    /// Random per process: a status-api that meets its own token among its peers knows the
    /// address is itself.
    pub instance: String,
    pub version: String,
    /// Synced with its Docker Engine.
    pub synced: bool,
    /// `enforce` or `audit`; null without an allowlist.
    pub mode: Option<String>,
    pub action: Option<String>,
    pub policy_generation: Option<u64>,
    /// sha256 of the policy file bytes in force (the last good policy while a refused file
    /// is on disk).
    pub policy_sha256: Option<String>,
    /// The policy file on disk is refused (an older policy is in force).
    pub policy_refused: bool,
    pub containers: usize,
    pub running: usize,
    /// Denied by the allowlist and still live (running, paused or restarting).
    pub denied_running: usize,
    /// Its controller's decisions: `reachable`, `unreachable` or `not configured`.
    pub controller: String,
    /// Its `--peers`, if any.
    pub peers: Option<String>,
    /// As of (RFC 3339, seconds).
    pub time: String,
}

impl NodeInfo {
    /// Equal but for the time.
    pub fn same_as(&self, other: &NodeInfo) -> bool {
        NodeInfo {
            time: String::new(),
            ..self.clone()
        } == NodeInfo {
            time: String::new(),
            ..other.clone()
        }
    }
}

/// The merged view at one moment, rendered.
#[derive(Debug)]
pub struct FleetSnapshot {
    pub merged: Merged,
    pub built: Timestamp,
    /// This node's name.
    pub me: String,
    /// `--peers` as given.
    pub peers: String,
    /// Why discovery failed last time (the previous addresses are used meanwhile).
    pub discovery_error: Option<String>,
    /// Some node runs with an allowlist (the `allowed` filter makes sense).
    pub any_policy: bool,
    pub containers_json: Arc<Rendered>,
    pub nodes_json: Arc<Rendered>,
    pub decisions_json: Arc<Rendered>,
    html: OnceLock<Arc<Rendered>>,
    prev_html: Option<Arc<Rendered>>,
}

impl FleetSnapshot {
    /// The unfiltered page.
    pub fn html(&self) -> Arc<Rendered> {
        self.html
            .get_or_init(|| {
                let r = Rendered::new(page::fleet_page(self, None).into(), html::CONTENT_TYPE);
                match &self.prev_html {
                    Some(prev) if prev.hash == r.hash => prev.clone(),
                    _ => Arc::new(r),
                }
            })
            .clone()
    }

    pub fn unreachable(&self) -> Vec<String> {
        self.merged
            .nodes
            .iter()
            .filter(|n| !n.reachable && !n.local)
            .map(|n| n.node.clone())
            .collect()
    }

    /// Every reachable node's list is synced with its engine.
    pub fn synced(&self) -> bool {
        self.merged
            .nodes
            .iter()
            .filter(|n| n.reachable || n.local)
            .all(|n| n.synced == Some(true))
    }

    /// The tail of a containers list: `,"nodes":N,"unreachable":[...],"synced":b`.
    fn containers_tail(&self) -> Vec<u8> {
        format!(
            ",\"nodes\":{},\"unreachable\":{},\"synced\":{}",
            self.merged.nodes.len(),
            serde_json::to_string(&self.unreachable()).unwrap_or_else(|_| "[]".into()),
            self.synced()
        )
        .into_bytes()
    }
}

/// The fleet's shared state; clone freely.
#[derive(Clone)]
pub struct Fleet(Arc<Inner>);

struct Inner {
    settings: Settings,
    instance: String,
    /// This node's name as known now.
    node: RwLock<String>,
    /// `Authorization` sent to peers (the same token as ours).
    auth: Option<HeaderValue>,
    current: RwLock<Option<Arc<FleetSnapshot>>>,
    /// This node's containers JSON, read once per change (keyed by the body's hash).
    local: Mutex<Option<(u64, Arc<Containers>)>>,
}

impl Fleet {
    pub fn new(settings: Settings, token: Option<&str>) -> Fleet {
        let seed = RandomState::new().hash_one((std::process::id(), Timestamp::now().as_nanosecond()));
        let node = settings
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(host_name);
        Fleet(Arc::new(Inner {
            auth: token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()),
            instance: format!("{seed:016x}"),
            node: RwLock::new(node),
            settings,
            current: RwLock::new(None),
            local: Mutex::new(None),
        }))
    }

    pub fn configured(&self) -> bool {
        self.0.settings.peers.is_some()
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn node_name(&self) -> String {
        self.0.node.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn current(&self) -> Option<Arc<FleetSnapshot>> {
        self.0.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Learns the node's name from the engine (`GET /info`) unless `--node-name` gave it;
    /// retries until the engine answers.
    pub async fn learn_node_name(self, engine: common::engine::HttpEngine) {
        if self
            .0
            .settings
            .node_name
            .as_deref()
            .is_some_and(|n| !n.is_empty())
        {
            return;
        }
        let mut delay = Duration::from_millis(500);
        loop {
            match engine.node_name().await {
                Ok(name) => {
                    tracing::info!(node = %name, "node name from the engine (GET /info); --node-name overrides it");
                    *self.0.node.write().unwrap_or_else(|e| e.into_inner()) = name;
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "node name not known yet"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// This node's containers as the fleet reads them, from the current view snapshot.
    fn local_containers(&self, snap: &Snapshot) -> Arc<Containers> {
        let mut cache = self.0.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((hash, list)) = cache.as_ref()
            && *hash == snap.json.hash
        {
            return list.clone();
        }
        let list = Arc::new(merge::containers(&snap.json.body).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read this node's own containers JSON");
            Containers::default()
        }));
        *cache = Some((snap.json.hash, list.clone()));
        list
    }

    /// `GET /node` of this node, from the current view snapshot.
    pub fn local_info(&self, state: &AppState, snap: &Snapshot) -> NodeInfo {
        let list = self.local_containers(snap);
        let (mode, action, generation, digest) = match &state.policy {
            Some(handle) => {
                let (loaded, digest) = handle.current_with_digest();
                (
                    Some(loaded.policy.mode.as_str().to_string()),
                    Some(loaded.policy.action.as_str().to_string()),
                    Some(loaded.generation),
                    digest,
                )
            }
            None => (None, None, None, None),
        };
        let d = &snap.decisions;
        NodeInfo {
            node: self.node_name(),
            instance: self.0.instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            synced: snap.synced,
            mode,
            action,
            policy_generation: generation,
            policy_sha256: digest,
            policy_refused: snap.policy_refused.is_some(),
            containers: list.items.len(),
            running: list
                .items
                .iter()
                .filter(|i| i.f.state() == common::engine::container::State::Running)
                .count(),
            denied_running: list.items.iter().filter(|i| i.f.denied_live()).count(),
            controller: if !d.configured() {
                "not configured"
            } else if d.reachable() {
                "reachable"
            } else {
                "unreachable"
            }
            .to_string(),
            peers: self.0.settings.peers.as_ref().map(Peers::describe),
            time: format_seconds(snap.now),
        }
    }

    /// Asks the peers and merges, every `--fleet-interval`, forever. Without `--peers`,
    /// returns at once.
    pub async fn run(self, state: AppState) {
        let Some(peers) = self.0.settings.peers.clone() else {
            return;
        };
        let settings = self.0.settings.clone();
        let mut known: HashMap<SocketAddr, Peer> = HashMap::new();
        let mut resolved = Resolved::default();
        let mut next_resolve = Instant::now();
        let mut local_decisions: Option<(Bytes, Arc<Decisions>)> = None;
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(peers = %peers.describe(), interval_s = settings.interval.as_secs_f64(),
            timeout_s = settings.peer_timeout.as_secs_f64(), "fleet view on: asking the peers in the background");
        loop {
            tick.tick().await;
            let now = Instant::now();
            if now >= next_resolve {
                let was = resolved.error.clone();
                resolved = peers.resolve(&resolved).await;
                if resolved.error != was {
                    match &resolved.error {
                        Some(e) => tracing::warn!(error = %e, "fleet discovery"),
                        None => {
                            tracing::info!(peers = %peers.describe(), addresses = resolved.addresses().len(), "fleet discovery resolved")
                        }
                    }
                }
                next_resolve = now + discovery::RESOLVE_EVERY;
                let addrs: BTreeSet<SocketAddr> = resolved.addresses();
                for a in &addrs {
                    let p = known
                        .entry(*a)
                        .or_insert_with(|| Peer::new(*a, settings.peer_timeout));
                    if p.unlisted_since.take().is_some() {
                        p.version += 1;
                    }
                }
                for (a, p) in known.iter_mut().filter(|(a, _)| !addrs.contains(a)) {
                    p.unlist(
                        now,
                        format!("{a} is no longer among the addresses of {}", peers.describe()),
                    );
                }
                known.retain(|_, p| match p.unlisted_since {
                    Some(t) => !p.is_self && now.duration_since(t) < FORGET_AFTER,
                    None => true,
                });
            }
            let me = self.0.instance.clone();
            let auth = self.0.auth.clone();
            let polls = known
                .values_mut()
                .filter(|p| !p.is_self && p.unlisted_since.is_none())
                .map(|p| p.poll(&me, auth.as_ref(), settings.peer_timeout));
            futures_util::future::join_all(polls).await;

            // This node, from memory.
            let snap = state.views.snapshot(&state);
            let info = self.local_info(&state, &snap);
            let containers = self.local_containers(&snap);
            let decisions = match &snap.decisions.body {
                Some(body) => {
                    match &local_decisions {
                        Some((b, _)) if b == body => {}
                        _ => match merge::decisions(body) {
                            Ok(list) => local_decisions = Some((body.clone(), Arc::new(list))),
                            Err(e) => tracing::warn!(error = %e, "cannot read this node's decisions"),
                        },
                    }
                    local_decisions.as_ref().map(|(_, l)| l.clone())
                }
                None => None,
            };
            let mut inputs = vec![NodeInput {
                view: view_of(&info, "local", true, true, Some(snap.now), None),
                containers: Some(containers),
                decisions,
            }];
            inputs.extend(peer_inputs(&known));
            let job = Job {
                inputs,
                me: info.node.clone(),
                peers: peers.describe(),
                discovery_error: resolved.error.clone(),
                prev: self.current(),
            };
            match tokio::task::spawn_blocking(move || job.build()).await {
                Ok(s) => *self.0.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(s)),
                Err(e) => tracing::error!(error = %e, "building the fleet view failed"),
            }
        }
    }
}

/// The host name (the UTS name), until the engine's is known.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this-node".to_string())
}

/// A node's row, from its last `GET /node` answer.
fn view_of(
    info: &NodeInfo,
    address: &str,
    local: bool,
    reachable: bool,
    last_answer: Option<Timestamp>,
    error: Option<String>,
) -> NodeView {
    NodeView {
        node: info.node.clone(),
        address: address.to_string(),
        local,
        reachable,
        synced: Some(info.synced),
        mode: info.mode.clone(),
        action: info.action.clone(),
        policy_generation: info.policy_generation,
        policy_sha256: info.policy_sha256.clone(),
        policy_refused: Some(info.policy_refused),
        drift: false,
        containers: Some(info.containers),
        running: Some(info.running),
        denied_running: Some(info.denied_running),
        controller: Some(info.controller.clone()),
        last_answer: last_answer.map(format_seconds),
        error,
    }
}

/// The peers' rows: one per node name (a node that moved to a new address is shown once,
/// at the address that answers, or answered last).
fn peer_inputs(known: &HashMap<SocketAddr, Peer>) -> Vec<NodeInput> {
    let mut best: HashMap<String, &Peer> = HashMap::new();
    for p in known.values().filter(|p| !p.is_self) {
        let name = p.name();
        let better = match best.get(&name) {
            None => true,
            Some(q) => (p.reachable, p.last_answer) > (q.reachable, q.last_answer),
        };
        if better {
            best.insert(name, p);
        }
    }
    best.into_values()
        .map(|p| {
            let addr = p.addr.to_string();
            let view = match &p.info {
                Some(info) => view_of(info, &addr, false, p.reachable, p.last_answer, p.error.clone()),
                None => NodeView {
                    node: addr.clone(),
                    address: addr.clone(),
                    error: p.error.clone().or_else(|| Some("not asked yet".into())),
                    ..Default::default()
                },
            };
            NodeInput {
                view,
                containers: p.containers.clone(),
                decisions: p.decisions.clone(),
            }
        })
        .collect()
}

/// One merge, run on a blocking thread.
struct Job {
    inputs: Vec<NodeInput>,
    me: String,
    peers: String,
    discovery_error: Option<String>,
    prev: Option<Arc<FleetSnapshot>>,
}

#[derive(Serialize)]
struct NodesBody<'a> {
    nodes: &'a [NodeView],
    count: usize,
    reachable: usize,
    unreachable: usize,
    drifted: usize,
    /// The policy digest most nodes enforce (null: no majority, or most run without one).
    policy_sha256_majority: Option<&'a str>,
    peers: &'a str,
    discovery_error: Option<&'a str>,
    time: String,
}

#[derive(Serialize)]
struct Unavailable<'a> {
    node: &'a str,
    reason: &'a str,
}

impl Job {
    fn build(self) -> FleetSnapshot {
        let merged = merge::merge(self.inputs);
        let built = Timestamp::now();
        let keep = |new: Rendered, old: Option<&Arc<Rendered>>| match old {
            Some(o) if o.hash == new.hash => o.clone(),
            _ => Arc::new(new),
        };
        let nodes_body = to_json(&NodesBody {
            nodes: &merged.nodes,
            count: merged.nodes.len(),
            reachable: merged.nodes.iter().filter(|n| n.reachable || n.local).count(),
            unreachable: merged.nodes.iter().filter(|n| !n.reachable && !n.local).count(),
            drifted: merged.nodes.iter().filter(|n| n.drift).count(),
            policy_sha256_majority: merged.majority.as_ref().and_then(|m| m.as_deref()),
            peers: &self.peers,
            discovery_error: self.discovery_error.as_deref(),
            time: format_seconds(built),
        });
        let unavailable: Vec<Unavailable> = merged
            .decisions_unavailable
            .iter()
            .map(|(n, r)| Unavailable { node: n, reason: r })
            .collect();
        let decisions_tail = format!(
            ",\"unavailable\":{}",
            serde_json::to_string(&unavailable).unwrap_or_else(|_| "[]".into())
        );
        let decisions_body = merge::list_json(
            "decisions",
            merged.decisions.iter().map(|d| &d.json),
            decisions_tail.as_bytes(),
        );
        let any_policy = merged.nodes.iter().any(|n| n.mode.is_some());
        let mut snap = FleetSnapshot {
            built,
            me: self.me,
            peers: self.peers,
            discovery_error: self.discovery_error,
            any_policy,
            containers_json: Arc::new(Rendered::new(Bytes::new(), JSON)),
            nodes_json: keep(
                Rendered::new(nodes_body, JSON),
                self.prev.as_ref().map(|p| &p.nodes_json),
            ),
            decisions_json: keep(
                Rendered::new(decisions_body, JSON),
                self.prev.as_ref().map(|p| &p.decisions_json),
            ),
            html: OnceLock::new(),
            prev_html: self.prev.as_ref().and_then(|p| p.html.get().cloned()),
            merged,
        };
        let tail = snap.containers_tail();
        let body = merge::list_json(
            "containers",
            snap.merged.containers.iter().map(|i| &i.json),
            &tail,
        );
        snap.containers_json = keep(
            Rendered::new(body, JSON),
            self.prev.as_ref().map(|p| &p.containers_json),
        );
        // Compressed here, off the request path; the page only while browsers ask for it.
        snap.containers_json.gzip();
        snap.nodes_json.gzip();
        snap.decisions_json.gzip();
        if self.prev.as_ref().is_some_and(|p| p.html.get().is_some()) {
            snap.html().gzip();
        }
        snap
    }
}

// --- the routes ------------------------------------------------------------------------------

/// 404 for every fleet route on a node without `--peers`, saying how to turn it on.
fn not_configured(html_wanted: bool) -> Response {
    const HOW: &str = "the fleet view is off: this status-api runs without peers. Start it with \
        --peers NAME:PORT (DOCKWARDEN_PEERS), a name that resolves to every node's status-api \
        (Swarm: tasks.status-api:8080 on the stack's overlay network; Kubernetes: a headless \
        Service, status-api-peers:8080) or a comma-separated list of HOST:PORT. \
        docker-stack.yml and k8s/ set it; see docs/status-api.md";
    if html_wanted {
        let mut resp = Response::new(page::not_configured_page(HOW).into());
        *resp.status_mut() = warp::http::StatusCode::NOT_FOUND;
        resp.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            HeaderValue::from_static(html::CONTENT_TYPE),
        );
        return resp;
    }
    ApiError::not_found(HOW).into_response()
}

/// The current merged view, or the answer saying why there is none.
fn snapshot(state: &AppState, headers: &HeaderMap) -> Result<Arc<FleetSnapshot>, Box<Response>> {
    if !state.fleet.configured() {
        return Err(Box::new(not_configured(wants_html(headers))));
    }
    state.fleet.current().ok_or_else(|| {
        ApiError::unavailable(
            "the fleet view is starting: the first round of asking the peers is under way; try again in a few seconds",
        )
        .into_response()
        .into()
    })
}

/// Takes `node=` (a pattern; empty means any, given at most once) out of a query, and
/// hands back the rest for the per-node parser.
#[allow(clippy::type_complexity)]
fn split_node(params: &[(String, String)]) -> Result<(Option<Pattern>, Vec<(String, String)>), ApiError> {
    let mut node = None;
    let mut rest = Vec::with_capacity(params.len());
    for (k, v) in params {
        if k == "node" {
            if node.is_some() {
                return Err(ApiError::bad_param(k, "given more than once"));
            }
            if !v.is_empty() {
                node = Some(Pattern::parse(k, v)?);
            }
        } else {
            rest.push((k.clone(), v.clone()));
        }
    }
    Ok((node, rest))
}

/// The filters of `GET /fleet/containers`: those of `GET /containers`, plus `node`.
#[derive(Debug, Default)]
pub struct FleetFilter {
    pub list: ListFilter,
    pub node: Option<Pattern>,
}

impl FleetFilter {
    pub fn parse(params: &[(String, String)], any_policy: bool) -> Result<FleetFilter, ApiError> {
        let (node, rest) = split_node(params)?;
        let list = ListFilter::parse(&rest, any_policy).map_err(|mut e| {
            if e.message.contains("known parameters") {
                e.message = e
                    .message
                    .replace("known parameters: ", "known parameters: node, ");
            }
            e
        })?;
        Ok(FleetFilter { list, node })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.node.is_none()
    }

    pub fn matches(&self, item: &merge::Item) -> bool {
        let f = &item.f;
        let l = &self.list;
        self.node.as_ref().is_none_or(|p| p.matches(&item.node))
            && l.states.as_ref().is_none_or(|s| s.contains(&f.state()))
            && l.name.as_ref().is_none_or(|p| p.matches(&f.name))
            && l.image.as_ref().is_none_or(|p| p.matches(&f.image))
            && l.allowed.is_none_or(|want| f.allowed == Some(want))
    }
}

/// `GET /fleet` and `GET /fleet/containers`: every reachable node's containers; browsers
/// get the page.
pub fn containers(
    state: &AppState,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let snap = match snapshot(state, headers) {
        Ok(s) => s,
        Err(r) => return Ok(*r),
    };
    let filter = FleetFilter::parse(params, snap.any_policy)?;
    let wants = Wants::from_headers(headers);
    let html_wanted = wants_html(headers);
    if filter.is_empty() {
        let r = if html_wanted {
            snap.html()
        } else {
            snap.containers_json.clone()
        };
        return Ok(reply::send(&r, wants));
    }
    let r = if html_wanted {
        Rendered::new(page::fleet_page(&snap, Some(&filter)).into(), html::CONTENT_TYPE)
    } else {
        let shown = snap.merged.containers.iter().filter(|i| filter.matches(i));
        let tail = snap.containers_tail();
        Rendered::new(
            merge::list_json("containers", shown.map(|i| &i.json), &tail),
            JSON,
        )
    };
    Ok(reply::send(&r, wants))
}

/// `GET /fleet/nodes`
pub fn nodes(
    state: &AppState,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    query::parse_none(params)?;
    let snap = match snapshot(state, headers) {
        Ok(s) => s,
        Err(r) => return Ok(*r),
    };
    Ok(reply::send(&snap.nodes_json, Wants::from_headers(headers)))
}

/// `GET /fleet/decisions?node=&container=`
pub fn decisions(
    state: &AppState,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (node, rest) = split_node(params)?;
    let container = query::parse_container(&rest)?;
    let snap = match snapshot(state, headers) {
        Ok(s) => s,
        Err(r) => return Ok(*r),
    };
    let wants = Wants::from_headers(headers);
    if node.is_none() && container.is_none() {
        return Ok(reply::send(&snap.decisions_json, wants));
    }
    let shown = snap.merged.decisions.iter().filter(|d| {
        node.as_ref().is_none_or(|p| p.matches(&d.node))
            && container
                .as_deref()
                .is_none_or(|k| d.f.container == k || d.f.id.starts_with(k))
    });
    let body = merge::list_json("decisions", shown.map(|d| &d.json), b"");
    Ok(reply::send(&Rendered::new(body, JSON), wants))
}

/// `GET /node`: this node's summary (what peers ask first).
pub fn node(
    state: &AppState,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    query::parse_none(params)?;
    let snap = state.views.snapshot(state);
    let info = state.fleet.local_info(state, &snap);
    Ok(reply::send(
        &Rendered::new(to_json(&info), JSON),
        Wants::from_headers(headers),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::tests::q;

    fn item(node: &str, body: &'static str) -> merge::Item {
        let list = merge::containers(&Bytes::from(format!("{{\"containers\":[{body}]}}"))).unwrap();
        let r = list.items.into_iter().next().unwrap();
        merge::Item {
            node: Arc::from(node),
            json: r.json,
            f: r.f,
        }
    }

    #[test]
    fn fleet_filters_add_node_to_the_list_filters() {
        let web = item(
            "n1",
            r#"{"name":"web-1","image":"nginx:1","state":"running","allowed":false}"#,
        );
        let db = item(
            "n2",
            r#"{"name":"db","image":"postgres:16","state":"exited","allowed":true}"#,
        );
        let f = FleetFilter::parse(&q(&[("node", "n1")]), true).unwrap();
        assert!(f.matches(&web) && !f.matches(&db));
        let f = FleetFilter::parse(&q(&[("node", "n*"), ("allowed", "false")]), true).unwrap();
        assert!(f.matches(&web) && !f.matches(&db));
        let f = FleetFilter::parse(&q(&[("state", "exited"), ("node", "")]), true).unwrap();
        assert!(!f.matches(&web) && f.matches(&db));
        assert!(FleetFilter::parse(&q(&[("node", "")]), true).unwrap().is_empty());
        let e = FleetFilter::parse(&q(&[("nodes", "x")]), true).unwrap_err();
        assert!(e.message.contains("node, state"), "{}", e.message);
        assert!(FleetFilter::parse(&q(&[("node", "a"), ("node", "b")]), true).is_err());
        assert!(FleetFilter::parse(&q(&[("node", "[")]), true).is_err());
        assert!(FleetFilter::parse(&q(&[("allowed", "true")]), false).is_err());
    }

    #[test]
    fn node_info_compares_without_the_time() {
        let a = NodeInfo {
            node: "n1".into(),
            time: "2026-12-07T10:00:00Z".into(),
            ..Default::default()
        };
        let mut b = a.clone();
        b.time = "2026-12-07T10:00:01Z".into();
        assert!(a.same_as(&b));
        b.containers = 1;
        assert!(!a.same_as(&b));
        // An older or newer peer's /node still reads: missing fields default, unknown ones pass.
        let v: NodeInfo = serde_json::from_str(r#"{"node":"n9","future":1}"#).unwrap();
        assert_eq!((v.node.as_str(), v.containers), ("n9", 0));
    }
}
