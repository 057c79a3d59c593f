//! List + watch of the engine's containers, the way Kubernetes informers work: subscribe to
//! the event stream (replaying from the last event time), list every container, inspect
//! each one into the [`Store`], then keep applying events. Any break (stream error or end,
//! a failed list, notices the consumer could not take) ends the session: the picture is
//! marked stale, the informer backs off, reconnects, replays `since` the last event and
//! re-lists. A slow periodic re-list is the safety net for what the engine failed to tell
//! (it keeps only 256 events for replay, none across its own restart, and drops events for
//! readers slower than 100 ms).
//!
//! The stream reader does no I/O of its own: it pushes container IDs into a deduplicating
//! [`WorkQueue`] and workers inspect them. A container is never judged on missing metadata:
//! an incomplete or failed inspect is retried a bounded number of times; after that the
//! container is reported with what the list call shows and [`Container::problem`] set, so
//! that it is judged on what is known and denied when that does not settle it.
//!
//! Notices keep the engine's order: an inspect that already shows a container running whose
//! `start` event has not arrived yet (Podman answers inspects that way, its event stream
//! lags by up to 250 ms) waits up to [`EVENT_LAG_GRACE`] for the event, so the consumer's
//! event fast path acts on the engine's own record first.
//!
//! All engine calls go through the [`Engine`] trait; the tests below drive the informer
//! with a scripted fake under `tokio::time::pause()`.

mod queue;
pub mod store;
mod worker;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::backoff::Backoff;
use crate::engine::container::{Container, ImageFacts, State};
use crate::engine::event::{Action, Event, Kind};
use crate::engine::{Engine, EngineError};
use crate::informer::queue::{Tracker, WorkQueue};
use crate::informer::store::Store;

/// Container actions that can change what we know about a container, in the names of every
/// engine dockwarden talks to: the engine keeps only events whose action is listed, so a name
/// missing here is an event silently never seen. Docker's names, then Podman's own:
/// - Podman's compat endpoint renames `died` to `die` on the way out, but Podman 4.3 matches
///   the filter against its own name (`event=die` returns nothing before 4.4), so `died`
///   is asked for too; removal is `remove` on Podman (`destroy` on Docker); a container
///   restored from a checkpoint runs again with only a `restore` event.
/// - `health_status` matches Docker's `health_status: <value>` by prefix and Podman's
///   `health_status` exactly.
///
/// Extra names cost nothing: Docker accepts any value and matches none of Podman's.
const CONTAINER_ACTIONS: &[&str] = &[
    "create",
    "start",
    "restart",
    "die",
    "stop",
    "pause",
    "unpause",
    "rename",
    "update",
    "destroy",
    "oom",
    "health_status",
    // Podman
    "died",
    "remove",
    "restore",
];
/// Image actions after which cached repo tags/digests may be wrong. Podman's image removal
/// is `remove` in the filter (its compat endpoint writes `delete` out), `podman load` is
/// `loadfromarchive`.
const IMAGE_ACTIONS: &[&str] = &[
    "tag",
    "untag",
    "delete",
    "import",
    "load",
    "pull",
    "push",
    // Podman
    "remove",
    "loadfromarchive",
];
/// How long an inspect that shows a container running may wait for the `start` event the
/// stream has not delivered yet (see [`ahead_of_the_events`]). Podman's event stream polls
/// its events file every 250 ms; Docker's lags by far less.
pub const EVENT_LAG_GRACE: Duration = Duration::from_secs(1);
/// Inspect tries before a container is reported unjudgeable (10 ms, ×3 each: ~1.2 s).
pub const INSPECT_TRIES: u32 = 6;

/// How the informer connects and what it watches.
#[derive(Debug, Clone)]
pub struct Config {
    /// Only containers with this label (`key=value` or `key`) are watched; `None` = all.
    pub label_selector: Option<String>,
    /// Safety-net re-list period.
    pub resync_every: Duration,
    /// Concurrent inspects.
    pub workers: usize,
    /// Notices the consumer may leave untaken before the informer re-lists instead.
    pub notice_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            label_selector: None,
            resync_every: Duration::from_secs(300),
            workers: 8,
            notice_capacity: 16_384,
        }
    }
}

/// Parses a `--scope` value into the label selector the engine takes: `key` or
/// `key=value` with a non-empty key and no surrounding blanks. The empty string (compose
/// passes `DOCKWARDEN_SCOPE=` when the variable is unset) is accepted and means no scope.
pub fn parse_label_selector(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    let key = s.split_once('=').map_or(s, |(k, _)| k);
    if key.trim().is_empty() || key != key.trim() {
        return Err(format!("{s:?} is not KEY or KEY=VALUE"));
    }
    Ok(s.to_string())
}

/// What the informer tells a consumer that reacts to changes (the controller).
#[derive(Debug, Clone)]
pub enum Notice {
    /// A container event, before any inspect: for reactions that cannot wait for one.
    /// `container` is what the event itself shows ([`Event::container`]), when it shows
    /// enough.
    Event {
        id: String,
        action: Action,
        time_nano: i64,
        container: Option<Box<Container>>,
    },
    /// An image was tagged, untagged, deleted, pulled, loaded...
    ImageChanged,
    /// The container with full facts (labels whole): judge on this. The store keeps a
    /// bounded copy.
    Updated(Arc<Container>),
    /// The container no longer exists (or never did: an inspect answered 404).
    Removed(String),
    /// A full re-list has been applied: the picture is complete.
    Synced { containers: usize, initial: bool },
    /// The session with the engine ended; the picture is stale until the next `Synced`.
    Disconnected { reason: String },
}

/// Why a session with the engine ended. Every cause is retried.
#[derive(Debug)]
pub enum SessionEnd {
    /// The engine did not answer its ping.
    Connect(EngineError),
    /// The list of a re-list failed (`initial`: the first one of the session).
    List { initial: bool, source: EngineError },
    /// The event stream failed.
    Watch(EngineError),
    /// The event stream ended (the engine shut down, or closed it).
    WatchEnded,
    /// The consumer did not take notices fast enough; some were dropped.
    Overflow,
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Connect(e) => write!(f, "connect: {e}"),
            SessionEnd::List {
                initial: true,
                source,
            } => write!(f, "initial list failed: {source}"),
            SessionEnd::List {
                initial: false,
                source,
            } => write!(f, "re-list failed: {source}"),
            SessionEnd::Watch(e) => write!(f, "watch failed: {e}"),
            SessionEnd::WatchEnded => f.write_str("watch ended: the engine closed the event stream"),
            SessionEnd::Overflow => f.write_str("notices overflowed: the consumer fell behind"),
        }
    }
}

/// Counters both binaries export (see [`crate::metrics`]).
#[derive(Debug, Default)]
pub struct Stats {
    pub events: AtomicU64,
    pub reconnects: AtomicU64,
    pub relists: AtomicU64,
    pub inspect_errors: AtomicU64,
    /// Containers reported with [`Container::problem`] after bounded tries.
    pub unjudgeable: AtomicU64,
    pub overflows: AtomicU64,
}

/// Asks a running informer to inspect containers again (after a policy change that needs
/// labels a stored copy left out, say).
#[derive(Clone)]
pub struct Refresher {
    tx: mpsc::UnboundedSender<String>,
}

impl Refresher {
    pub fn refresh(&self, id: &str) {
        let _ = self.tx.send(id.to_string());
    }
}

pub struct Informer<E: Engine> {
    config: Config,
    store: Store,
    engine: E,
    notices: Option<mpsc::Sender<Notice>>,
    stats: Arc<Stats>,
    refresh_tx: mpsc::UnboundedSender<String>,
    refresh_rx: mpsc::UnboundedReceiver<String>,
}

/// State shared by the stream reader and the workers.
struct Shared<E> {
    engine: E,
    store: Store,
    queue: WorkQueue,
    notices: Option<mpsc::Sender<Notice>>,
    images: Mutex<HashMap<String, ImageFacts>>,
    stats: Arc<Stats>,
    label_selector: Option<String>,
    /// Set when a notice could not be delivered: the session re-lists.
    overflowed: AtomicBool,
    overflow: Notify,
    /// Containers whose `create` event came and whose start has not been announced yet
    /// (`start`, `restart`, `unpause`, `restore`); `started` wakes whoever waits for one.
    unstarted: Mutex<HashSet<String>>,
    started: Notify,
}

impl<E> Shared<E> {
    fn unstarted(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unstarted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows which containers were created and not yet started, from the events.
    fn track_start(&self, ev: &Event) {
        let started = match &ev.action {
            Action::Create => {
                self.unstarted().insert(ev.id.clone());
                return;
            }
            Action::Start | Action::Restart | Action::Unpause | Action::Destroy => true,
            Action::Other(a) => a == "restore",
            _ => false,
        };
        if started && self.unstarted().remove(&ev.id) {
            self.started.notify_waiters();
        }
    }

    fn notify(&self, n: Notice) {
        let Some(tx) = &self.notices else { return };
        match tx.try_send(n) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflowed.swap(true, Relaxed) {
                    self.stats.overflows.fetch_add(1, Relaxed);
                    self.overflow.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

impl<E: Engine> Informer<E> {
    pub fn new(config: Config, store: Store, engine: E) -> Self {
        let (refresh_tx, refresh_rx) = mpsc::unbounded_channel();
        Informer {
            config,
            store,
            engine,
            notices: None,
            stats: Arc::default(),
            refresh_tx,
            refresh_rx,
        }
    }

    /// Sends [`Notice`]s as the picture changes; returns their receiver.
    pub fn notices(&mut self) -> mpsc::Receiver<Notice> {
        let (tx, rx) = mpsc::channel(self.config.notice_capacity.max(1));
        self.notices = Some(tx);
        rx
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    pub fn refresher(&self) -> Refresher {
        Refresher {
            tx: self.refresh_tx.clone(),
        }
    }

    /// Runs forever: connect, list, watch, reconnect.
    pub async fn run(mut self) {
        let shared = Arc::new(Shared {
            engine: self.engine.clone(),
            store: self.store.clone(),
            queue: WorkQueue::default(),
            notices: self.notices.clone(),
            images: Mutex::new(HashMap::new()),
            stats: self.stats.clone(),
            label_selector: self.config.label_selector.clone().filter(|s| !s.is_empty()),
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            unstarted: Mutex::new(HashSet::new()),
            started: Notify::new(),
        });
        for _ in 0..self.config.workers.max(1) {
            tokio::spawn(worker::worker(shared.clone()));
        }
        let mut backoff = Backoff::default();
        let mut last_event_nano: Option<i64> = None;
        let mut initial = true;
        let mut attempt = 0u64;
        loop {
            let started = Instant::now();
            let end = match self.engine.ping().await {
                Ok(()) => {
                    if attempt > 0 || initial {
                        tracing::info!(attempt = attempt + 1, "connected to the Docker Engine");
                    }
                    attempt = 0;
                    shared.images.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    self.session(&shared, &mut last_event_nano, &mut initial).await
                }
                Err(e) => {
                    attempt += 1;
                    SessionEnd::Connect(e)
                }
            };
            self.store.set_ready(false);
            if !matches!(end, SessionEnd::Connect(_)) {
                shared.stats.reconnects.fetch_add(1, Relaxed);
            }
            shared.notify(Notice::Disconnected {
                reason: end.to_string(),
            });
            if started.elapsed() > Duration::from_secs(60) {
                backoff.reset();
            }
            let wait = backoff.next_delay();
            match &end {
                SessionEnd::Connect(e) => {
                    tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "Docker Engine unreachable")
                }
                other => {
                    tracing::warn!(reason = %other, retry_in_ms = wait.as_millis() as u64, "lost the Docker Engine; will reconnect, replay events and re-list")
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One connected session: subscribe, re-list, apply events until something breaks.
    async fn session(
        &mut self,
        shared: &Arc<Shared<E>>,
        last_event_nano: &mut Option<i64>,
        initial: &mut bool,
    ) -> SessionEnd {
        // Replay from the last event we saw; on the first connection from a little before
        // now (the list below is taken after this point, events in between are replayed).
        let since = last_event_nano.unwrap_or_else(|| now_nano() - 2_000_000_000);
        let since = format_since(since);
        // Two subscriptions, merged: container events (only the scope's, when scoped) and
        // every image event. One filter cannot do both: the engine ANDs filter keys, and
        // image events carry no container labels.
        let container_filters = container_filters(shared.label_selector.as_deref());
        let image_filters = json!({"type": ["image"], "event": IMAGE_ACTIONS});
        let stream = |filters: &Value| {
            shared
                .engine
                .events(&since, filters)
                .map(Some)
                .chain(futures_util::stream::once(async { None }))
        };
        let events = futures_util::stream::select(stream(&container_filters), stream(&image_filters));
        tokio::pin!(events);

        shared.overflowed.store(false, Relaxed);
        // The order of events and inspects is kept within a session; the re-list below
        // inspects everything anew.
        shared.unstarted().clear();
        let mut relist = Some(Box::pin(relist(shared.clone())));
        let mut relist_is_initial = true;
        let mut resync = tokio::time::interval(self.config.resync_every);
        resync.tick().await; // the first tick is immediate; the initial re-list is above
        loop {
            tokio::select! {
                biased;
                ev = events.next() => match ev.flatten() {
                    Some(Ok(ev)) => {
                        shared.stats.events.fetch_add(1, Relaxed);
                        if ev.time_nano > 0 {
                            *last_event_nano = Some(last_event_nano.map_or(ev.time_nano, |l| l.max(ev.time_nano)));
                        }
                        handle_event(shared, ev);
                    }
                    Some(Err(e)) => return SessionEnd::Watch(e),
                    None => return SessionEnd::WatchEnded,
                },
                _ = shared.overflow.notified() => return SessionEnd::Overflow,
                id = self.refresh_rx.recv() => {
                    if let Some(id) = id {
                        shared.queue.push(&id, None);
                    }
                }
                done = async { match relist.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                    relist = None;
                    match done {
                        Ok(n) => {
                            shared.stats.relists.fetch_add(1, Relaxed);
                            shared.store.set_ready(true);
                            shared.notify(Notice::Synced { containers: n, initial: *initial });
                            *initial = false;
                        }
                        Err(source) => return SessionEnd::List { initial: relist_is_initial, source },
                    }
                },
                _ = resync.tick() => {
                    if relist.is_none() {
                        relist = Some(Box::pin(self::relist(shared.clone())));
                        relist_is_initial = false;
                    }
                }
            }
        }
    }
}

/// The container-event subscription's filters. A `key=value` scope is filtered by the
/// engine; a bare `key` scope is not sent: Podman (4.3) matches a label filter without `=`
/// to nothing, so such a scope is checked here instead ([`in_scope`]).
fn container_filters(label_selector: Option<&str>) -> Value {
    let mut filters = json!({"type": ["container"], "event": CONTAINER_ACTIONS});
    if let Some(sel) = label_selector.filter(|s| s.contains('=')) {
        filters["label"] = json!([sel]);
    }
    filters
}

/// Whether a container event belongs to the scope: always for a `key=value` scope (the
/// engine filtered it); for a bare `key` scope, when the event's attributes have the key.
/// Engines write their own keys (`name`, `image`...) over labels of those names in event
/// attributes, so a bare scope named like one of them admits every container's events; the
/// list (filtered by the engine) still tells which containers are in scope.
fn in_scope(label_selector: Option<&str>, ev: &Event) -> bool {
    match label_selector {
        Some(key) if !key.contains('=') => ev.attributes.contains_key(key),
        _ => true,
    }
}

/// `since`/`until` as the engine takes them: Unix seconds with nanoseconds.
pub fn format_since(nano: i64) -> String {
    format!(
        "{}.{:09}",
        nano.div_euclid(1_000_000_000),
        nano.rem_euclid(1_000_000_000)
    )
}

fn handle_event<E>(shared: &Shared<E>, ev: Event) {
    match ev.kind {
        Kind::Image => {
            tracing::debug!(image = %ev.id, action = ev.action.as_str(), "image event");
            shared.images.lock().unwrap_or_else(|e| e.into_inner()).clear();
            shared.notify(Notice::ImageChanged);
        }
        Kind::Container => {
            if !in_scope(shared.label_selector.as_deref(), &ev) {
                return;
            }
            tracing::debug!(container = %ev.id, action = ev.action.as_str(), "event");
            shared.track_start(&ev);
            let container = ev.container().map(Box::new);
            shared.queue.push(&ev.id, None);
            shared.notify(Notice::Event {
                id: ev.id,
                action: ev.action,
                time_nano: ev.time_nano,
                container,
            });
        }
        Kind::Other => {}
    }
}

/// Lists every container (and forgets those the list no longer has) through the work queue,
/// and waits until each listed ID has been inspected. Returns how many were listed.
async fn relist<E: Engine>(shared: Arc<Shared<E>>) -> Result<usize, EngineError> {
    let ids: HashSet<String> = shared
        .engine
        .list(shared.label_selector.as_deref())
        .await?
        .into_iter()
        .collect();
    let gone: Vec<String> = shared
        .store
        .ids()
        .into_iter()
        .filter(|id| !ids.contains(id))
        .collect();
    let tracker = Tracker::new(ids.len() + gone.len());
    for id in ids.iter().chain(gone.iter()) {
        shared.queue.push(id, Some(tracker.clone()));
    }
    tracker.wait().await;
    Ok(ids.len())
}

pub fn now_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
