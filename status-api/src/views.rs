//! Serve bytes, not work. The picture (containers, resource samples, policy in force,
//! identity, the controller's decisions, the policy file's state) changes rarely; requests
//! come often. A [`Snapshot`] is built at most once per change of the picture and at most
//! once per second (status texts like "Up 5 minutes" are relative to now): it holds one
//! [`Entry`] per container with its verdict, figures, status text and its JSON object
//! already serialised, plus the unfiltered `/containers` JSON as bytes (and the HTML page,
//! rendered on first demand), each with an ETag and a gzip copy made once.
//!
//! Filtered lists and detail views are built from the entries, not from scratch. Across
//! snapshots, an entry's parsed times and decision are kept while its container and the
//! policy generation stay the same: decisions come from [`common::decision::decide`] only.
//!
//! Off the request path ([`Views::refresh`]): while requests come, a background task
//! rebuilds the snapshot at each second and whenever the figures, the decisions or the
//! policy file's state move, on a blocking thread, and compresses it there. A request is
//! then served the snapshot in hand when only those moved (it is at most a second old);
//! it builds one itself only when the facts changed (a container event, a policy reload,
//! the sync state) or after an idle spell. Before, the first request of every second built
//! and gzipped the whole list on a server worker thread, and every request queued behind
//! that worker waited: at 1,000 containers the gzip p99 was 10× nginx's. And when only the
//! second moved and no status text with it ("Up 5 minutes" reads so for a minute), the
//! snapshot is renewed under the new key without serialising, hashing or compressing again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::{BufMut, Bytes, BytesMut};
use common::decision::{Decision, DecisionRecord, decide_with, signatures_to_verify};
use common::engine::container::{Container, State};
use common::policy::Missing;
use common::reload::Loaded;
use jiff::Timestamp;

use crate::models::{ContainerView, ResourcesView, VerdictView};
use crate::reply::Rendered;
use crate::resources::{HealthClass, ResourceClass, Sample};
use crate::status::{Times, status_text};
use crate::{AppState, decisions};

/// One container, ready to serve.
#[derive(Debug)]
pub struct Entry {
    pub c: Arc<Container>,
    pub times: Times,
    /// The one decision about it ([`common::decision::decide`]); `None` without an
    /// allowlist.
    pub verdict: Option<Decision>,
    /// What it asks of the host under the policy's profile, as text (empty: nothing, or no
    /// allowlist); and whether all of it is known.
    pub power: Arc<[String]>,
    pub power_known: bool,
    /// Only for a running container.
    pub sample: Option<Sample>,
    pub status: String,
    pub resource_class: ResourceClass,
    pub health_class: HealthClass,
    /// The controller's latest decision about it.
    pub last_action: Option<DecisionRecord>,
    /// This entry as a JSON object (`GET /containers/{id}` and an element of the list).
    pub json: Bytes,
}

impl Entry {
    /// Not allowed: denied, or not decided yet (shown as not allowed until it is).
    pub fn denied(&self) -> bool {
        self.verdict.as_ref().is_some_and(|v| !v.allowed())
    }

    /// Denied and live, as the controller counts it (`dockwarden_denied_live`).
    pub fn denied_live(&self) -> bool {
        self.verdict.as_ref().is_some_and(Decision::denied_live)
    }
}

/// What decides whether a snapshot is still current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    /// [`Views::touch`] count: the identity, verified signatures, image names.
    picture: u64,
    /// The store's version: it moves when a container changes, not when a re-list finds it
    /// as it was (the informer re-inspects every container every 5 minutes; each inspect
    /// used to count as a change, so requests rebuilt the whole list on their worker thread
    /// and remade every verdict, over and over for as long as the re-list lasted).
    store: u64,
    samples: u64,
    decisions: u64,
    policy_file: u64,
    policy_generation: u64,
    synced: bool,
    second: i64,
}

impl Key {
    /// Whether only the second differs.
    fn only_time_differs(&self, other: &Key) -> bool {
        Key {
            second: other.second,
            ..*self
        } == *other
    }

    /// Whether the facts (containers, verdicts, sync) are the same: then only the time,
    /// the figures, the decisions or the policy file's state differ, which the refresher
    /// catches up with within a second.
    fn same_facts(&self, other: &Key) -> bool {
        self.picture == other.picture
            && self.store == other.store
            && self.policy_generation == other.policy_generation
            && self.synced == other.synced
    }
}

/// The picture at one moment, rendered.
#[derive(Debug)]
pub struct Snapshot {
    key: Key,
    pub now: Timestamp,
    pub synced: bool,
    /// Sorted by name.
    pub entries: Vec<Arc<Entry>>,
    by_id: Arc<HashMap<String, usize>>,
    pub policy: Option<Arc<Loaded>>,
    /// Why the policy file on disk is refused (the policy in force is an older one).
    pub policy_refused: Option<String>,
    pub decisions: Arc<decisions::Snapshot>,
    /// The unfiltered `GET /containers` JSON.
    pub json: Arc<Rendered>,
    /// The unfiltered page, rendered on first demand.
    html: OnceLock<Arc<Rendered>>,
    /// The previous snapshot's page, reused when the new one renders the same bytes.
    prev_html: Option<Arc<Rendered>>,
}

impl Snapshot {
    /// The same content under a later key (see [`Views::snapshot`]): entries, bytes, ETags
    /// and gzip copies are shared, not made again.
    fn renew(&self, key: Key, now: Timestamp) -> Snapshot {
        let html = OnceLock::new();
        if let Some(h) = self.html.get() {
            let _ = html.set(h.clone());
        }
        Snapshot {
            key,
            now,
            synced: self.synced,
            entries: self.entries.clone(),
            by_id: self.by_id.clone(),
            policy: self.policy.clone(),
            policy_refused: self.policy_refused.clone(),
            decisions: self.decisions.clone(),
            json: self.json.clone(),
            html,
            prev_html: self.prev_html.clone(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id).and_then(|i| self.entries.get(*i))
    }

    /// The page for browsers, rendered by `render` on first demand (see
    /// [`crate::html::list`]) and kept; the previous snapshot's copy (and its ETag) is
    /// reused when the page reads the same.
    pub fn html_with(&self, render: impl FnOnce(&Self) -> Rendered) -> Arc<Rendered> {
        self.html
            .get_or_init(|| {
                let r = render(self);
                match &self.prev_html {
                    Some(prev) if prev.hash == r.hash => prev.clone(),
                    _ => Arc::new(r),
                }
            })
            .clone()
    }
}

/// The cache; one per server.
pub struct Views {
    /// Renders a snapshot's page (see [`crate::html::render_list`]): the refresher renders
    /// it ahead of requests while browsers ask for it. A parameter, so that this cache does
    /// not depend on the page it caches.
    render: fn(&Snapshot) -> Rendered,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Held while building; keeps what survives between snapshots.
    build: Mutex<HashMap<String, Base>>,
    picture: AtomicU64,
    /// True while [`Views::refresh`] runs: requests may then be served a snapshot up to a
    /// second old instead of building one.
    refreshing: AtomicBool,
    /// The second of the last request: the refresher works only while requests come.
    demand: AtomicI64,
    /// Wakes the refresher (a request was served a snapshot behind by a second or less).
    nudge: tokio::sync::Notify,
}

/// The refresher keeps building for this long after the last request.
const DEMAND_SECS: i64 = 30;

/// What an entry keeps across snapshots while its inputs stay the same.
#[derive(Debug, Clone)]
struct Base {
    c: Arc<Container>,
    times: Times,
    verdict: Option<Decision>,
    power: Arc<[String]>,
    power_known: bool,
    /// The decision read the verifier's cache (a `signed_by` rule), as it was at `signatures`.
    signed: bool,
    signatures: u64,
    generation: Option<u64>,
    identity: u64,
}

impl Views {
    pub fn new(render: fn(&Snapshot) -> Rendered) -> Self {
        Views {
            render,
            current: RwLock::default(),
            build: Mutex::default(),
            picture: AtomicU64::default(),
            refreshing: AtomicBool::default(),
            demand: AtomicI64::default(),
            nudge: tokio::sync::Notify::new(),
        }
    }

    /// Something in the picture changed that the store's version does not show (the
    /// identity, a signature verified, an informer notice other than a container's).
    pub fn touch(&self) {
        // The refresher is not woken: a request builds a snapshot whose facts changed itself
        // (as before), so a burst of container events costs builds only as requests come,
        // not one per event (each one would be a whole list and its copies).
        self.picture.fetch_add(1, Relaxed);
    }

    /// Rebuilds the snapshot in the background while requests come (see the module
    /// documentation): at each second, and when nudged. Runs until aborted.
    pub async fn refresh(state: AppState) {
        state.views.refreshing.store(true, Relaxed);
        struct Off(AppState);
        impl Drop for Off {
            fn drop(&mut self) {
                self.0.views.refreshing.store(false, Relaxed);
            }
        }
        let _off = Off(state.clone());
        loop {
            // Just past the next second boundary, when status texts move.
            let nanos = u64::from(Timestamp::now().subsec_nanosecond().unsigned_abs());
            let to_next = std::time::Duration::from_nanos(1_000_000_000u64.saturating_sub(nanos) + 2_000_000);
            tokio::select! {
                _ = state.views.nudge.notified() => {}
                _ = tokio::time::sleep(to_next) => {}
            }
            let idle = Timestamp::now().as_second() - state.views.demand.load(Relaxed) > DEMAND_SECS;
            if idle {
                continue;
            }
            // On a blocking thread, not this task's worker: a full build (every sampling
            // round) on a worker held up the requests queued on it; bench/api-load.sh measured
            // gzip p99 139 ms that way against 30 ms here (nginx 29 ms, same run). The price:
            // this thread's allocator arena keeps about another snapshot's memory (peak RSS
            // at 1,000 containers 21.6 MiB against 18.5 MiB; docs/status-api-performance.md).
            let s = state.clone();
            // A panic in a build is the build's (logged by the runtime); the loop goes on.
            let _ = tokio::task::spawn_blocking(move || {
                s.views.get(&s, true, false);
            })
            .await;
        }
    }

    pub fn picture_version(&self) -> u64 {
        self.picture.load(Relaxed)
    }

    /// The current snapshot, built if the picture changed or a second went by. While one
    /// request builds it, the others are served the previous snapshot (a few milliseconds
    /// old) instead of queueing behind the build; only the very first build is waited for.
    pub fn snapshot(&self, state: &AppState) -> Arc<Snapshot> {
        self.get(state, false, true)
    }

    /// Like [`Views::snapshot`], but waits for a build in progress: for a request that must
    /// see a container the store already holds.
    pub fn snapshot_fresh(&self, state: &AppState) -> Arc<Snapshot> {
        self.get(state, true, true)
    }

    /// `request`: called for a request (it counts as demand, and may be served a snapshot
    /// the refresher is about to replace); else by the refresher, which always builds.
    fn get(&self, state: &AppState, wait: bool, request: bool) -> Arc<Snapshot> {
        let policy = state.policy.as_ref().map(|p| p.current());
        let now = Timestamp::now();
        let key = Key {
            picture: self.picture.load(Relaxed),
            store: state.store.version(),
            samples: state.resources.version(),
            decisions: state.decisions.version(),
            policy_file: state.policy_file.version(),
            policy_generation: policy.as_ref().map_or(0, |p| p.generation),
            synced: state.store.is_ready(),
            second: now.as_second(),
        };
        if request {
            self.demand.store(key.second, Relaxed);
        }
        if let Some(s) = self.current_if(key) {
            return s;
        }
        if request && !wait && self.refreshing.load(Relaxed) {
            let cur = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(cur) = cur.filter(|c| c.key.same_facts(&key) && c.key.second + 1 >= key.second) {
                self.nudge.notify_one();
                return cur;
            }
        }
        let mut bases = match self.build.try_lock() {
            Ok(b) => b,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                let cur = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
                match cur {
                    Some(s) if !wait => return s,
                    _ => self.build.lock().unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        // Another request may have built it while this one waited.
        if let Some(s) = self.current_if(key) {
            return s;
        }
        let prev = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        // Only the second moved and no status text with it ("Up 5 minutes" stays so for a
        // minute): the same bytes under the new key, without serialising or hashing again.
        if let Some(p) = prev.as_ref().filter(|p| p.key.only_time_differs(&key))
            && p.entries
                .iter()
                .all(|e| status_text(&e.c, &e.times, now) == e.status)
        {
            let renewed = Arc::new(p.renew(key, now));
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(renewed.clone());
            return renewed;
        }
        let snap = Arc::new(build(state, key, now, policy, prev.as_deref(), &mut bases));
        // Compress before publishing, so no request waits for it: once per new content
        // (unchanged bytes keep the previous copy), and the page only while browsers ask.
        snap.json.gzip();
        if prev.as_ref().is_some_and(|p| p.html.get().is_some()) {
            snap.html_with(self.render).gzip();
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
        snap
    }

    fn current_if(&self, key: Key) -> Option<Arc<Snapshot>> {
        let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
        cur.as_ref().filter(|s| s.key == key).cloned()
    }
}

fn build(
    state: &AppState,
    key: Key,
    now: Timestamp,
    policy: Option<Arc<Loaded>>,
    prev: Option<&Snapshot>,
    bases: &mut HashMap<String, Base>,
) -> Snapshot {
    let containers = state.store.list();
    let samples = state.resources.snapshot();
    let (me, identity) = state.identity_versioned();
    let decisions = state.decisions.current();
    let generation = policy.as_ref().map(|p| p.generation);
    let signatures = state
        .verifier
        .stats()
        .results()
        .iter()
        .map(|(_, n)| n)
        .sum::<u64>();
    let mut entries = Vec::with_capacity(containers.len());
    let mut by_id = HashMap::with_capacity(containers.len());
    let mut next_bases = HashMap::with_capacity(containers.len());
    for c in containers {
        let base = match bases.remove(&c.id) {
            // A decision that waited for a signature is made again once verifications moved
            // on (the verifier's cache is part of its inputs).
            Some(b)
                if Arc::ptr_eq(&b.c, &c)
                    && b.generation == generation
                    && b.identity == identity
                    && (b.signatures == signatures || !b.signed) =>
            {
                b
            }
            _ => {
                let asks = policy.as_ref().map(|p| c.power.asks(p.policy.profile));
                Base {
                    times: Times::of(&c),
                    verdict: policy.as_ref().map(|p| {
                        let d = decide_with(&p.policy, &c, &me, &state.verifier);
                        if d == Decision::Undecided(Missing::Signature) {
                            state.verify_in_background(
                                &c,
                                signatures_to_verify(&p.policy, &c, &state.verifier)
                                    .into_iter()
                                    .cloned()
                                    .collect(),
                            );
                        }
                        d
                    }),
                    power: asks
                        .as_ref()
                        .map(|a| a.asks.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    power_known: asks.is_none_or(|a| a.is_known()),
                    signed: policy
                        .as_ref()
                        .is_some_and(|p| !p.policy.key_set_ids().is_empty()),
                    signatures,
                    generation,
                    identity,
                    c: c.clone(),
                }
            }
        };
        let sample = samples.get(&c.id).filter(|_| c.state == State::Running).cloned();
        let resource_class = ResourceClass::of(c.state, sample.as_ref());
        let e = Entry {
            status: status_text(&c, &base.times, now),
            health_class: HealthClass::of(c.state, c.health.as_deref(), resource_class),
            resource_class,
            sample,
            times: base.times,
            verdict: base.verdict.clone(),
            power: base.power.clone(),
            power_known: base.power_known,
            last_action: decisions.latest_for(&c.id).cloned(),
            json: Bytes::new(),
            c,
        };
        by_id.insert(e.c.id.clone(), entries.len());
        next_bases.insert(e.c.id.clone(), base);
        entries.push(e);
    }
    *bases = next_bases;
    let synced = key.synced;
    // The list is written once; each entry's JSON is a slice of it (no second copy).
    let (body, ranges) = list_json_of(&entries, synced);
    let json = Rendered::new(body, JSON);
    let json = match prev {
        Some(p) if p.json.hash == json.hash => p.json.clone(),
        _ => Arc::new(json),
    };
    let entries = entries
        .into_iter()
        .zip(ranges)
        .map(|(mut e, r)| {
            e.json = json.body.slice(r);
            Arc::new(e)
        })
        .collect();
    Snapshot {
        key,
        now,
        synced,
        entries,
        by_id: Arc::new(by_id),
        policy,
        policy_refused: state.policy_file.refused(),
        decisions,
        json,
        html: OnceLock::new(),
        prev_html: prev.and_then(|p| p.html.get().cloned()),
    }
}

/// Content type of every JSON answer.
pub const JSON: &str = "application/json";

/// Serialises a value that cannot fail to serialise (plain data, string keys).
pub fn to_json<T: serde::Serialize>(v: &T) -> Bytes {
    match serde_json::to_vec(v) {
        Ok(b) => b.into(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise an answer");
            Bytes::from_static(b"null")
        }
    }
}

/// The whole list's JSON, serialising each entry once, and where each entry's object is.
fn list_json_of(entries: &[Entry], synced: bool) -> (Bytes, Vec<std::ops::Range<usize>>) {
    let mut out = BytesMut::with_capacity(entries.len() * 768 + 64).writer();
    let mut ranges = Vec::with_capacity(entries.len());
    out.get_mut().put_slice(b"{\"containers\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.get_mut().put_u8(b',');
        }
        let start = out.get_ref().len();
        if let Err(err) = serde_json::to_writer(&mut out, &ContainerView::new(e)) {
            tracing::error!(error = %err, "cannot serialise a container");
            out.get_mut().truncate(start);
            out.get_mut().put_slice(b"null");
        }
        ranges.push(start..out.get_ref().len());
    }
    let count = entries.len();
    out.get_mut()
        .put_slice(format!("],\"count\":{count},\"synced\":{synced}}}").as_bytes());
    (out.into_inner().freeze(), ranges)
}

/// `{"containers":[...],"count":N,"synced":bool}` from entries' JSON objects: the same bytes
/// serde would write for the whole list, without serialising anything again.
pub fn list_json<'a>(objects: impl Iterator<Item = &'a Bytes> + Clone, synced: bool) -> Bytes {
    let (count, len) = objects
        .clone()
        .fold((0usize, 0usize), |(n, l), o| (n + 1, l + o.len() + 1));
    let mut out = BytesMut::with_capacity(len + 64);
    out.put_slice(b"{\"containers\":[");
    for (i, o) in objects.enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(o);
    }
    out.put_slice(format!("],\"count\":{count},\"synced\":{synced}}}").as_bytes());
    out.freeze()
}

impl<'a> ContainerView<'a> {
    /// The JSON of one cached entry.
    pub fn new(e: &'a Entry) -> Self {
        let c = &e.c;
        ContainerView {
            id: &c.id,
            name: &c.name,
            image: &c.image,
            image_id: &c.image_id,
            state: c.state,
            status: &e.status,
            created: &c.created,
            started_at: c.started_at.as_deref(),
            finished_at: c.finished_at.as_deref(),
            exit_code: c.exit_code,
            health: c.health.as_deref(),
            health_class: e.health_class,
            resource_class: e.resource_class,
            resources: e.sample.as_ref().map(ResourcesView::from),
            restart_count: c.restart_count,
            ports: &c.ports,
            labels: &c.labels,
            labels_cut: c.labels_cut,
            problem: c.problem.as_deref(),
            power: &e.power,
            power_unknown: !e.power_known,
            verdict: e.verdict.as_ref().map(VerdictView::from),
            last_action: e.last_action.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_is_what_serde_writes() {
        let a = to_json(&serde_json::json!({"id": "a", "n": 1}));
        let b = to_json(&serde_json::json!({"id": "b"}));
        let got = list_json([&a, &b].into_iter(), true);
        let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"containers": [{"id": "a", "n": 1}, {"id": "b"}], "count": 2, "synced": true})
        );
        let entry = |id: &str| Entry {
            c: Arc::new(Container {
                id: id.into(),
                name: format!("n-{id}"),
                state: State::Running,
                ..Default::default()
            }),
            times: Times::default(),
            verdict: None,
            power: Arc::from([]),
            power_known: true,
            sample: None,
            status: "Up 1 second".into(),
            resource_class: ResourceClass::Unknown,
            health_class: HealthClass::Unknown,
            last_action: None,
            json: Bytes::new(),
        };
        let entries = [entry("a1"), entry("b2")];
        let (body, ranges) = list_json_of(&entries, true);
        let objects: Vec<Bytes> = ranges.iter().map(|r| body.slice(r.clone())).collect();
        assert_eq!(
            body,
            list_json(objects.iter(), true),
            "one writer, the same bytes"
        );
        for (o, e) in objects.iter().zip(&entries) {
            assert_eq!(
                o,
                &to_json(&ContainerView::new(e)),
                "each slice is the entry's object"
            );
        }
        let empty = list_json(std::iter::empty(), false);
        assert_eq!(&empty[..], br#"{"containers":[],"count":0,"synced":false}"#);
    }
}
