//! List + watch of the Docker Engine's containers, the way Kubernetes informers work:
//! subscribe to the event stream (replaying from the last event time), list every
//! container, inspect each one into the [`Store`], then keep applying events. Any break of
//! the stream (error, end, engine restart) means: mark the picture stale, back off,
//! reconnect, replay `since` the last event and re-list. A slow periodic re-list is the
//! safety net for anything the engine failed to tell us (it keeps only 256 events for
//! replay, none across its own restart, and drops events for slow readers).
//!
//! The stream reader does no I/O of its own: it pushes container IDs into a
//! deduplicating [`WorkQueue`] and workers inspect them. A decision is never made on
//! missing metadata: an incomplete inspect is retried.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::container::{Container, ImageFacts};
use crate::docker;
use crate::queue::{Tracker, WorkQueue};
use crate::store::Store;

/// Container actions that can change what we know about a container.
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
    "health_status", // the engine matches this one by prefix
];
/// Image actions after which cached repo tags/digests may be wrong.
const IMAGE_ACTIONS: &[&str] = &["tag", "untag", "delete", "import", "load", "pull", "push"];

/// How the informer connects and what it watches.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--docker-host`; `None` honours `DOCKER_HOST` or the default socket.
    pub docker_host: Option<String>,
    /// Only containers with this label (`key=value` or `key`) are watched; `None` = all.
    pub label_selector: Option<String>,
    /// Safety-net re-list period.
    pub resync_every: Duration,
    /// Concurrent inspects.
    pub workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            docker_host: None,
            label_selector: None,
            resync_every: Duration::from_secs(300),
            workers: 8,
        }
    }
}

/// Parses a `--scope` value into the label selector the Docker API takes: `key` or
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
    /// An event seen on the stream, before any inspect: for reactions that cannot wait
    /// for one (acting on `start` with a decision already made at `create`).
    Observed {
        id: String,
        action: String,
        time_nano: i64,
        /// The event's attributes: for container events the engine puts the container's
        /// labels here, then overwrites `name` and `image` with the container's name and
        /// image reference (so labels with those two keys are hidden).
        attributes: HashMap<String, String>,
    },
    /// An image was tagged, untagged, deleted, pulled, loaded...: what any image
    /// reference resolves to may have changed.
    ImageChanged,
    /// The container as inspected after an event or a re-list.
    Updated(Arc<Container>),
    /// The container no longer exists.
    Removed(String),
    /// A full re-list has been applied: the picture is complete.
    Synced { containers: usize, initial: bool },
    /// The event stream broke; the picture is stale until the next `Synced`.
    Disconnected { reason: String },
}

/// Counters the binaries export as metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub events: std::sync::atomic::AtomicU64,
    pub reconnects: std::sync::atomic::AtomicU64,
    pub relists: std::sync::atomic::AtomicU64,
    pub inspect_errors: std::sync::atomic::AtomicU64,
}

pub struct Informer {
    config: Config,
    store: Store,
    notices: Option<mpsc::UnboundedSender<Notice>>,
    docker_tx: watch::Sender<Option<Docker>>,
    stats: Arc<Stats>,
}

/// State shared by the stream reader and the workers.
struct Shared {
    store: Store,
    queue: WorkQueue,
    notices: Option<mpsc::UnboundedSender<Notice>>,
    docker: watch::Receiver<Option<Docker>>,
    images: Mutex<HashMap<String, ImageFacts>>,
    stats: Arc<Stats>,
}

impl Shared {
    fn notify(&self, n: Notice) {
        if let Some(tx) = &self.notices {
            let _ = tx.send(n);
        }
    }
}

impl Informer {
    pub fn new(config: Config, store: Store) -> Self {
        Informer {
            config,
            store,
            notices: None,
            docker_tx: watch::Sender::new(None),
            stats: Arc::default(),
        }
    }

    /// Sends [`Notice`]s to `tx` as the picture changes.
    pub fn with_notices(mut self, tx: mpsc::UnboundedSender<Notice>) -> Self {
        self.notices = Some(tx);
        self
    }

    /// The current Docker client (None until the first connection), for other components
    /// that must call the engine (kill, stats, logs).
    pub fn docker(&self) -> watch::Receiver<Option<Docker>> {
        self.docker_tx.subscribe()
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Runs forever: connect, list, watch, reconnect. Only returns if the task is dropped.
    pub async fn run(self) {
        use std::sync::atomic::Ordering::Relaxed;
        let shared = Arc::new(Shared {
            store: self.store.clone(),
            queue: WorkQueue::default(),
            notices: self.notices.clone(),
            docker: self.docker_tx.subscribe(),
            images: Mutex::new(HashMap::new()),
            stats: self.stats.clone(),
        });
        for _ in 0..self.config.workers.max(1) {
            tokio::spawn(worker(shared.clone()));
        }
        let mut backoff = Backoff::default();
        let mut last_event_nano: Option<i64> = None;
        let mut initial = true;
        loop {
            let docker = docker::connect_with_retry(self.config.docker_host.as_deref()).await;
            self.docker_tx.send_replace(Some(docker.clone()));
            shared.images.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let connected_at = Instant::now();
            let reason =
                watch_session(&self.config, &shared, &docker, &mut last_event_nano, &mut initial).await;
            self.store.set_ready(false);
            shared.stats.reconnects.fetch_add(1, Relaxed);
            shared.notify(Notice::Disconnected {
                reason: reason.clone(),
            });
            if connected_at.elapsed() > Duration::from_secs(60) {
                backoff.reset();
            }
            let wait = backoff.next_delay();
            tracing::warn!(%reason, retry_in_ms = wait.as_millis() as u64, "Docker event stream broke; will reconnect, replay and re-list");
            tokio::time::sleep(wait).await;
        }
    }
}

/// One connected session: subscribe, re-list, apply events until the stream breaks.
/// Returns why it ended.
async fn watch_session(
    config: &Config,
    shared: &Arc<Shared>,
    docker: &Docker,
    last_event_nano: &mut Option<i64>,
    initial: &mut bool,
) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    // Replay from the last event we saw; on the first connection from a little before now
    // (the list below is taken after this point, events in between are replayed).
    let since = last_event_nano.unwrap_or_else(|| now_nano() - 2_000_000_000);
    let since = format!(
        "{}.{:09}",
        since.div_euclid(1_000_000_000),
        since.rem_euclid(1_000_000_000)
    );
    // Two subscriptions, merged: container events (only the scope's, when scoped) and
    // every image event. One filter cannot do both: the engine ANDs filter keys, and image
    // events carry no container labels. Either ending means the session is over.
    let mut container_filters: HashMap<&str, Vec<&str>> = HashMap::new();
    container_filters.insert("type", vec!["container"]);
    container_filters.insert("event", CONTAINER_ACTIONS.to_vec());
    if let Some(sel) = &config.label_selector {
        container_filters.insert("label", vec![sel.as_str()]);
    }
    let mut image_filters: HashMap<&str, Vec<&str>> = HashMap::new();
    image_filters.insert("type", vec!["image"]);
    image_filters.insert("event", IMAGE_ACTIONS.to_vec());
    let subscribe = |filters: &HashMap<&str, Vec<&str>>| {
        let opts = EventsOptionsBuilder::default()
            .since(&since)
            .filters(filters)
            .build();
        docker
            .events(Some(opts))
            .map(Some)
            .chain(futures_util::stream::once(async { None }))
    };
    let events = futures_util::stream::select(subscribe(&container_filters), subscribe(&image_filters));
    tokio::pin!(events);

    let mut relist = Some(Box::pin(relist(config, shared.clone(), docker.clone())));
    let mut resync = tokio::time::interval(config.resync_every);
    resync.tick().await; // the first tick is immediate; the initial re-list is above
    loop {
        tokio::select! {
            biased;
            ev = events.next() => match ev.flatten() {
                Some(Ok(ev)) => {
                    shared.stats.events.fetch_add(1, Relaxed);
                    if let Some(t) = ev.time_nano {
                        *last_event_nano = Some(last_event_nano.map_or(t, |l| l.max(t)));
                    }
                    handle_event(shared, ev);
                }
                Some(Err(e)) => return format!("event stream error: {e}"),
                None => return "event stream ended".to_string(),
            },
            done = async { match relist.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                relist = None;
                match done {
                    Ok(n) => {
                        shared.stats.relists.fetch_add(1, Relaxed);
                        shared.store.set_ready(true);
                        shared.notify(Notice::Synced { containers: n, initial: *initial });
                        *initial = false;
                    }
                    Err(e) => return format!("re-list failed: {e}"),
                }
            },
            _ = resync.tick() => {
                if relist.is_none() {
                    relist = Some(Box::pin(self::relist(config, shared.clone(), docker.clone())));
                }
            }
        }
    }
}

fn handle_event(shared: &Shared, ev: EventMessage) {
    let Some(id) = ev.actor.as_ref().and_then(|a| a.id.clone()) else {
        return;
    };
    let action = ev.action.unwrap_or_default();
    match ev.typ {
        Some(EventMessageTypeEnum::IMAGE) => {
            tracing::debug!(image = %id, %action, "image event");
            shared.images.lock().unwrap_or_else(|e| e.into_inner()).clear();
            shared.notify(Notice::ImageChanged);
        }
        Some(EventMessageTypeEnum::CONTAINER) => {
            tracing::debug!(container = %id, %action, "event");
            shared.notify(Notice::Observed {
                id: id.clone(),
                action,
                time_nano: ev.time_nano.unwrap_or_default(),
                attributes: ev.actor.and_then(|a| a.attributes).unwrap_or_default(),
            });
            shared.queue.push(&id, None);
        }
        _ => {}
    }
}

/// Lists every container (and forgets those the list no longer has) through the work queue,
/// and waits until each listed ID has been inspected. Returns how many were listed.
async fn relist(config: &Config, shared: Arc<Shared>, docker: Docker) -> Result<usize, crate::Error> {
    let ids: HashSet<String> = list_ids(&docker, config.label_selector.as_deref())
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

/// IDs of every container (running or not), only those with the label when a selector is
/// given.
async fn list_ids(docker: &Docker, label_selector: Option<&str>) -> Result<Vec<String>, crate::Error> {
    let mut filters: HashMap<&str, Vec<&str>> = HashMap::new();
    if let Some(sel) = label_selector {
        filters.insert("label", vec![sel]);
    }
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let listed = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| crate::Error::docker("list containers", e))?;
    Ok(listed.into_iter().filter_map(|c| c.id).collect())
}

/// Inspects queued containers into the store, forever.
async fn worker(shared: Arc<Shared>) {
    loop {
        let item = shared.queue.pop().await;
        refresh(&shared, &item.id).await;
        shared.queue.finish(item);
    }
}

/// Brings one container's entry up to date: inspect, or remove when the engine says 404.
async fn refresh(shared: &Shared, id: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut delay = Duration::from_millis(10);
    for attempt in 1..=6 {
        let Some(docker) = shared.docker.borrow().clone() else {
            return;
        };
        match docker.inspect_container(id, None).await {
            Ok(resp) => {
                let facts = match resp.image.as_deref() {
                    Some(image_id) => image_facts(shared, &docker, image_id).await,
                    None => ImageFacts::default(),
                };
                match Container::from_inspect(resp, &facts) {
                    Ok(c) => {
                        let c = Arc::new(c);
                        shared.store.upsert(c.clone());
                        shared.notify(Notice::Updated(c));
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, attempt, "metadata not there yet; inspecting again")
                    }
                }
            }
            Err(e) if docker::status_code(&e) == Some(404) => {
                if shared.store.remove(id).is_some() {
                    shared.notify(Notice::Removed(id.to_string()));
                }
                return;
            }
            Err(e) => {
                shared.stats.inspect_errors.fetch_add(1, Relaxed);
                tracing::warn!(container = %id, error = %e, attempt, "inspect failed");
            }
        }
        tokio::time::sleep(delay).await;
        delay *= 3;
    }
    shared.stats.inspect_errors.fetch_add(1, Relaxed);
    tracing::error!(container = %id, "could not inspect the container; the next re-list tries again");
}

/// Repo tags and digests of an image, cached by image ID for the connection's lifetime
/// (cleared on image events and on reconnect).
async fn image_facts(shared: &Shared, docker: &Docker, image_id: &str) -> ImageFacts {
    if let Some(f) = shared
        .images
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(image_id)
    {
        return f.clone();
    }
    match inspect_image_facts(docker, image_id).await {
        Ok(facts) => {
            shared
                .images
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(image_id.to_string(), facts.clone());
            facts
        }
        Err(e) => {
            // Without digests a digest rule cannot match: the container is judged without
            // them (never allowed by a digest it cannot show), and not cached.
            tracing::warn!(image = %image_id, error = %e, "image inspect failed");
            ImageFacts::default()
        }
    }
}

/// Repo tags and digests of one image.
async fn inspect_image_facts(docker: &Docker, image_id: &str) -> Result<ImageFacts, bollard::errors::Error> {
    let img = docker.inspect_image(image_id).await?;
    Ok(ImageFacts {
        tags: img.repo_tags.unwrap_or_default(),
        digests: img.repo_digests.unwrap_or_default(),
    })
}

/// Lists and inspects every container once, without watching: for one-shot tools
/// (`state-controller check`) and baselines. Containers that vanish or stay incomplete
/// between list and inspect are left out.
pub async fn fetch_all(
    docker: &Docker,
    label_selector: Option<&str>,
) -> Result<Vec<Container>, crate::Error> {
    let listed = list_ids(docker, label_selector).await?;
    let mut images: HashMap<String, ImageFacts> = HashMap::new();
    let mut out = Vec::with_capacity(listed.len());
    for id in listed {
        let resp = match docker.inspect_container(&id, None).await {
            Ok(r) => r,
            Err(e) if docker::status_code(&e) == Some(404) => continue,
            Err(e) => return Err(crate::Error::docker("inspect container", e)),
        };
        let image_id = resp.image.clone().unwrap_or_default();
        if !images.contains_key(&image_id) {
            let facts = inspect_image_facts(docker, &image_id).await.unwrap_or_default();
            images.insert(image_id.clone(), facts);
        }
        let facts = images.get(&image_id).cloned().unwrap_or_default();
        if let Ok(c) = Container::from_inspect(resp, &facts) {
            out.push(c);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn now_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
