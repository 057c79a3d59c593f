//! The informer's inspect workers: each takes container IDs off the work queue and brings
//! the store's entry up to date (inspect, image facts), retrying a bounded number of times
//! before reporting a container with what the list shows and why the rest is missing.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::*;

/// Inspects queued containers into the store, forever.
pub(super) async fn worker<E: Engine>(shared: Arc<Shared<E>>) {
    loop {
        let item = shared.queue.pop().await;
        refresh(&shared, &item.id).await;
        shared.queue.finish(item);
    }
}

/// What one inspect attempt came to.
enum Attempt {
    Got(Box<Container>),
    Gone,
    Failed(String),
    /// The engine is down or restarting: nothing is learnt about the container; the
    /// session ends and the re-list after the reconnect inspects it again.
    Unreachable(String),
}

/// Brings one container's entry up to date: inspect, or remove when the engine says 404;
/// after [`INSPECT_TRIES`] failures, report it with what the list shows and the problem.
async fn refresh<E: Engine>(shared: &Shared<E>, id: &str) {
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(60)).with_factor(3);
    let mut last = String::new();
    for attempt in 1..=INSPECT_TRIES {
        match inspect_once(shared, id).await {
            Attempt::Got(c) => {
                if c.state == State::Running && ahead_of_the_events(shared, id).await {
                    // Its start event came meanwhile and queued a fresh inspect, which is
                    // published after the event.
                    return;
                }
                return publish(shared, *c);
            }
            Attempt::Gone => return forget(shared, id),
            Attempt::Failed(why) => {
                tracing::debug!(container = %id, attempt, error = %why, "inspect did not give a judgeable container; trying again");
                last = why;
            }
            Attempt::Unreachable(why) => {
                tracing::debug!(container = %id, error = %why, "engine unreachable; the re-list after the reconnect inspects it");
                return;
            }
        }
        if attempt < INSPECT_TRIES {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    // Bounded tries are over: report what the list shows, with the problem, so that it is
    // judged (and denied, unless what is known allows it) instead of skipped.
    let problem = format!("inspect failed {INSPECT_TRIES} times: {last}");
    let c = match shared.engine.summary(id).await {
        Ok(Some(c)) => Container {
            problem: Some(problem),
            ..c
        },
        Ok(None) => return forget(shared, id),
        Err(e) if e.is_unreachable() => return,
        Err(e) => Container {
            id: id.to_string(),
            problem: Some(format!("{problem}; list failed too: {e}")),
            source: crate::engine::container::Source::List,
            ..Default::default()
        },
    };
    shared.stats.unjudgeable.fetch_add(1, Relaxed);
    tracing::error!(container = %id, name = %c.name, problem = c.problem.as_deref().unwrap_or(""),
        "cannot read this container's metadata: it is judged on what is known, and denied unless that allows it");
    publish(shared, c);
}

async fn inspect_once<E: Engine>(shared: &Shared<E>, id: &str) -> Attempt {
    let c = match shared.engine.inspect(id).await {
        Ok(c) => c,
        Err(e) if e.status() == Some(404) => return Attempt::Gone,
        Err(e) if e.is_unreachable() => return Attempt::Unreachable(e.to_string()),
        Err(e) => {
            shared.stats.inspect_errors.fetch_add(1, Relaxed);
            return Attempt::Failed(e.to_string());
        }
    };
    let mut c = match image_facts(shared, &c.image_id).await {
        Ok(f) => c.with_image(&f),
        Err(e) if e.is_unreachable() => return Attempt::Unreachable(e.to_string()),
        Err(e) => return Attempt::Failed(e.to_string()),
    };
    // What it asks of the host, whole: a joined container's, a volume's. Under `baseline`
    // (the image's user, asked under `restricted`, is in an inspect's Config.User already).
    match crate::engine::resolve::resolve(&shared.engine, &mut c.power, crate::power::Profile::Baseline).await
    {
        Ok(()) => Attempt::Got(Box::new(c)),
        Err(e) => Attempt::Unreachable(e.to_string()),
    }
}

/// Whether an inspect that shows `id` running got ahead of the event stream: the container's
/// `create` event came, its `start` event did not yet. That happens on Podman, whose inspect
/// waits for the container's lock while it starts and so answers `running` up to one poll of
/// its events file (250 ms) before the `start` event is read. Publishing that answer first
/// would make consumers act on an inspect what the event (the engine's own record, and the
/// fast path that needs no inspect) announces a moment later: notices are kept in the
/// engine's order instead. Waits up to [`EVENT_LAG_GRACE`] for the event: `true` when it
/// came (it queued another inspect of `id`, so this answer is stale), `false` when there
/// was nothing to wait for or it did not come in time (events can be lost: publish).
async fn ahead_of_the_events<E>(shared: &Shared<E>, id: &str) -> bool {
    if !shared.unstarted().contains(id) {
        return false;
    }
    let deadline = tokio::time::Instant::now() + EVENT_LAG_GRACE;
    loop {
        let started = shared.started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if !shared.unstarted().contains(id) {
            return true;
        }
        if tokio::time::timeout_at(deadline, started).await.is_err() {
            shared.unstarted().remove(id);
            tracing::debug!(container = %id, grace_ms = EVENT_LAG_GRACE.as_millis() as u64,
                "running, and no start event came: publishing the inspect");
            return false;
        }
    }
}

fn publish<E>(shared: &Shared<E>, c: Container) {
    let stored = if c.is_bounded() { c.clone() } else { c.bounded() };
    shared.store.upsert(Arc::new(stored));
    shared.notify(Notice::Updated(Arc::new(c)));
}

fn forget<E>(shared: &Shared<E>, id: &str) {
    shared.store.remove(id);
    shared.unstarted().remove(id);
    // Always: a consumer may have records of a container it saw only in events.
    shared.notify(Notice::Removed(id.to_string()));
}

/// Repo tags and digests of an image, cached by image ID for the session (cleared on image
/// events and on reconnect). An image the engine no longer has (deleted while a container
/// still uses it) has no names: that is the truth, not a failure.
async fn image_facts<E: Engine>(shared: &Shared<E>, image_id: &str) -> Result<ImageFacts, EngineError> {
    if let Some(f) = shared
        .images
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(image_id)
    {
        return Ok(f.clone());
    }
    let facts = match shared.engine.image(image_id).await {
        Ok(f) => f,
        Err(e) if e.status() == Some(404) => ImageFacts {
            id: image_id.to_string(),
            ..Default::default()
        },
        Err(e) => return Err(e),
    };
    shared
        .images
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(image_id.to_string(), facts.clone());
    Ok(facts)
}
