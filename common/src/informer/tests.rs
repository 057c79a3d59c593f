//! The informer against a scripted fake engine, under a paused clock: connect retries,
//! `since` replay, removals during a break, overflow → re-list, the periodic re-list,
//! unjudgeable containers, lenient decoding. No Docker Engine is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

use crate::engine::fake::{FakeEngine as Fake, inspect_json};

/// The scripted engine, answering any image as tagged `busybox:1`.
fn fake() -> Fake {
    let f = Fake::default();
    f.state().any_image = true;
    f
}

struct Running {
    store: Store,
    rx: mpsc::Receiver<Notice>,
    stats: Arc<Stats>,
    refresher: Refresher,
}

fn start(fake: &Fake, config: Config) -> Running {
    let store = Store::new();
    let mut informer = Informer::new(config, store.clone(), fake.clone());
    let rx = informer.notices();
    let stats = informer.stats();
    let refresher = informer.refresher();
    tokio::spawn(informer.run());
    Running {
        store,
        rx,
        stats,
        refresher,
    }
}

impl Running {
    /// The next notice matching `f`, skipping others; fails after a minute of fake time.
    async fn until<T>(&mut self, what: &str, mut f: impl FnMut(&Notice) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let n = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no notice: {what}"))
                .expect("informer gone");
            if let Some(t) = f(&n) {
                return t;
            }
        }
    }

    async fn synced(&mut self) -> (usize, bool) {
        self.until("synced", |n| match n {
            Notice::Synced { containers, initial } => Some((*containers, *initial)),
            _ => None,
        })
        .await
    }
}

#[tokio::test(start_paused = true)]
async fn lists_then_follows_events_and_keeps_retrying_an_unreachable_engine() {
    let fake = fake();
    fake.state().ping_failures = 3;
    fake.add("a", "web");
    fake.add("b", "db");
    let mut r = start(&fake, Config::default());
    assert_eq!(r.synced().await, (2, true));
    assert_eq!(r.store.len(), 2);
    assert!(r.store.is_ready());

    fake.add("c", "new");
    fake.event("c", "create", "new", 1_000);
    let (action, from_event) = r
        .until("event", |n| match n {
            Notice::Event {
                id,
                action,
                container,
                ..
            } if id == "c" => Some((action.clone(), container.clone())),
            _ => None,
        })
        .await;
    assert_eq!(action, Action::Create);
    let from_event = from_event.expect("a create event shows name and image");
    assert_eq!(
        (from_event.name.as_str(), from_event.image_resolved()),
        ("new", false)
    );
    let updated = r
        .until("inspect", |n| match n {
            Notice::Updated(c) if c.id == "c" => Some(c.clone()),
            _ => None,
        })
        .await;
    assert!(updated.image_resolved());
    assert_eq!(updated.image_tags, vec!["busybox:1".to_string()]);

    fake.state().containers.remove("a");
    fake.event("a", "destroy", "web", 2_000);
    r.until("removed", |n| {
        matches!(n, Notice::Removed(id) if id == "a").then_some(())
    })
    .await;
    assert!(r.store.get("a").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_break_replays_since_the_last_event_and_relists_what_changed_meanwhile() {
    let fake = fake();
    fake.add("a", "keep");
    fake.add("b", "goes-away");
    let mut r = start(&fake, Config::default());
    r.synced().await;
    let t = 1_700_000_000_123_456_789;
    fake.event("a", "start", "keep", t);
    r.until("event", |n| matches!(n, Notice::Event { .. }).then_some(()))
        .await;

    // The engine restarts; meanwhile "b" is removed and "c" created, with no event seen.
    fake.state().containers.remove("b");
    fake.add("c", "appeared");
    fake.cut();
    let reason = r
        .until("disconnected", |n| match n {
            Notice::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.starts_with("watch ended"), "{reason}");
    assert!(!r.store.is_ready());
    r.until("removed b", |n| {
        matches!(n, Notice::Removed(id) if id == "b").then_some(())
    })
    .await;
    assert_eq!(r.synced().await, (2, false));
    assert!(r.store.get("c").is_some() && r.store.get("b").is_none());
    let subs = fake.state().subscriptions.clone();
    let container_subs: Vec<_> = subs.iter().filter(|(_, f)| f["type"][0] == "container").collect();
    assert_eq!(container_subs.len(), 2);
    assert_eq!(
        container_subs[1].0,
        format_since(t),
        "replays from the last event seen"
    );
    assert_eq!(r.stats.reconnects.load(Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn notices_the_consumer_cannot_take_make_a_relist_not_a_loss() {
    let fake = fake();
    for i in 0..5 {
        fake.add(&format!("id{i}"), &format!("c{i}"));
    }
    // Answers one at a time, as an engine does: an instant fake with eight workers would
    // answer each re-list's five inspects in one burst, past the three places even while
    // the consumer reads, and the same container could be the one left out every time.
    fake.state().inspect_delay = Some(Duration::from_millis(10));
    let mut r = start(
        &fake,
        Config {
            notice_capacity: 3,
            workers: 1,
            ..Default::default()
        },
    );
    // Nobody reads: the 5 Updated notices of the first list overflow the channel.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(r.stats.overflows.load(Relaxed) >= 1);
    // Once the consumer reads again, a re-list delivers every container again.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 5 {
        let n = tokio::time::timeout_at(deadline, r.rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Notice::Updated(c) = n {
            seen.insert(c.id.clone());
        }
    }
    assert!(fake.state().lists >= 2, "the overflow caused a re-list");
    assert_eq!(r.store.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_periodic_relist_finds_what_no_event_announced() {
    let fake = fake();
    let mut r = start(
        &fake,
        Config {
            resync_every: Duration::from_secs(30),
            ..Default::default()
        },
    );
    r.synced().await;
    fake.add("quiet", "no-event");
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(r.synced().await, (1, false));
    assert!(r.store.get("quiet").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_container_whose_inspect_keeps_failing_is_reported_with_its_problem() {
    let fake = fake();
    fake.add("ok", "fine");
    fake.add("bad", "broken");
    fake.state().broken.push("bad".into());
    let mut r = start(&fake, Config::default());
    let c = r
        .until("unjudgeable", |n| match n {
            Notice::Updated(c) if c.id == "bad" => Some(c.clone()),
            _ => None,
        })
        .await;
    let problem = c.problem.clone().expect("a problem");
    assert!(
        problem.contains("inspect failed 6 times") && problem.contains("500"),
        "{problem}"
    );
    assert_eq!((c.name.as_str(), c.image.as_str()), ("broken", "busybox:1"));
    assert_eq!(r.stats.unjudgeable.load(Relaxed), 1);
    assert!(
        r.store.get("bad").is_some_and(|s| s.problem.is_some()),
        "listed with what is known"
    );
}

#[tokio::test(start_paused = true)]
async fn a_container_gone_before_its_first_inspect_is_still_reported_removed() {
    let fake = fake();
    let mut r = start(&fake, Config::default());
    r.synced().await;
    // Created and removed before the worker inspects: only the event was ever seen.
    fake.event("ghost", "create", "ghost", 10);
    r.until("removed", |n| {
        matches!(n, Notice::Removed(id) if id == "ghost").then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn refresh_requests_inspect_again_and_big_labels_are_stored_bounded() {
    let fake = fake();
    let mut big = inspect_json("big", "big");
    big["Config"]["Labels"]["blob"] = json!("x".repeat(1 << 20));
    fake.state().containers.insert("big".into(), big);
    let mut r = start(&fake, Config::default());
    let full = r
        .until("big", |n| match n {
            Notice::Updated(c) if c.id == "big" => Some(c.clone()),
            _ => None,
        })
        .await;
    assert_eq!(full.labels["blob"].len(), 1 << 20, "judged on the whole labels");
    let stored = r.store.get("big").unwrap();
    assert!(stored.labels_cut && !stored.labels.contains_key("blob"));
    r.synced().await;
    r.refresher.refresh("big");
    r.until("again", |n| {
        matches!(n, Notice::Updated(c) if c.id == "big").then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_engine_that_is_down_makes_nothing_unjudgeable() {
    let fake = fake();
    fake.add("ok", "allowed");
    fake.add("restarting", "allowed-too");
    fake.state().unreachable.push("restarting".into());
    let mut r = start(&fake, Config::default());
    r.until("ok", |n| {
        matches!(n, Notice::Updated(c) if c.id == "ok").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        r.stats.unjudgeable.load(Relaxed),
        0,
        "an unreachable engine says nothing about a container"
    );
    assert!(r.store.get("restarting").is_none());
}

/// A container event as Podman 4.3's compat endpoint writes it.
fn podman_event(id: &str, action: &str, labels: Value, t: i64) -> Value {
    let mut attributes =
        json!({"containerExitCode": "0", "image": "localhost/app:latest", "name": id, "podId": ""});
    if let (Some(a), Value::Object(l)) = (attributes.as_object_mut(), labels) {
        a.extend(l);
    }
    json!({"status": action, "id": id, "from": "localhost/app:latest", "Type": "container", "Action": action,
        "Actor": {"ID": id, "Attributes": attributes}, "scope": "local", "time": t / 1_000_000_000, "timeNano": t})
}

#[tokio::test(start_paused = true)]
async fn subscribes_to_every_engines_names_for_what_matters() {
    let fake = fake();
    let mut r = start(&fake, Config::default());
    r.synced().await;
    let subs = fake.state().subscriptions.clone();
    let events_of = |kind: &str| -> Vec<String> {
        let (_, f) = subs.iter().find(|(_, f)| f["type"][0] == kind).unwrap();
        f["event"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let containers = events_of("container");
    // Docker's and Podman's (4.3 matches only its own `died`, and removes with `remove`).
    for a in [
        "create",
        "start",
        "restart",
        "unpause",
        "rename",
        "die",
        "died",
        "destroy",
        "remove",
        "health_status",
    ] {
        assert!(
            containers.iter().any(|c| c == a),
            "{a} missing from {containers:?}"
        );
    }
    let images = events_of("image");
    for a in ["delete", "remove", "tag", "untag", "load", "loadfromarchive"] {
        assert!(images.iter().any(|c| c == a), "{a} missing from {images:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn podman_removal_and_health_events_keep_the_picture_true() {
    let fake = fake();
    fake.add("p1", "web");
    let mut r = start(&fake, Config::default());
    r.synced().await;
    // Health: Podman's own shape; the inspect after it brings the new health.
    fake.state().containers.get_mut("p1").unwrap()["State"]["Health"] = json!({"Status": "unhealthy"});
    let mut v = podman_event("p1", "health_status", json!({}), 1_000);
    v["HealthStatus"] = json!("unhealthy");
    fake.raw(v);
    let action = r
        .until("health event", |n| match n {
            Notice::Event { id, action, .. } if id == "p1" => Some(action.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        action,
        Action::HealthStatus {
            status: Some("unhealthy".into())
        }
    );
    r.until("inspect", |n| {
        matches!(n, Notice::Updated(c) if c.id == "p1" && c.health.as_deref() == Some("unhealthy"))
            .then_some(())
    })
    .await;
    // Removal: `remove`, not `destroy`.
    fake.state().containers.remove("p1");
    fake.raw(podman_event("p1", "remove", json!({}), 2_000));
    r.until("removed", |n| {
        matches!(n, Notice::Removed(id) if id == "p1").then_some(())
    })
    .await;
    assert!(r.store.get("p1").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_bare_key_scope_is_checked_here_not_sent_to_the_engine() {
    let fake = fake();
    let mut r = start(
        &fake,
        Config {
            label_selector: Some("team".into()),
            ..Default::default()
        },
    );
    r.synced().await;
    let subs = fake.state().subscriptions.clone();
    let (_, f) = subs.iter().find(|(_, f)| f["type"][0] == "container").unwrap();
    assert!(
        f.get("label").is_none(),
        "Podman 4.3 matches a bare key to nothing: {f}"
    );
    fake.add("out", "out");
    fake.add("in", "in");
    fake.raw(podman_event("out", "create", json!({"other": "x"}), 1_000));
    fake.raw(podman_event("in", "create", json!({"team": "a"}), 2_000));
    let first = r
        .until("an event", |n| match n {
            Notice::Event { id, .. } => Some(id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        first, "in",
        "the event of a container without the key is not in scope"
    );
    // A key=value scope is the engine's to filter.
    assert_eq!(container_filters(Some("team=a"))["label"], json!(["team=a"]));
}

#[tokio::test(start_paused = true)]
async fn an_inspect_ahead_of_the_start_event_is_published_after_it() {
    let fake = fake();
    let mut r = start(&fake, Config::default());
    r.synced().await;
    // Podman: the inspect after `create` waits for the container's lock while it starts,
    // and answers `running` before the `start` event is read from the events file.
    fake.add("p", "web");
    fake.raw(podman_event("p", "create", json!({}), 1_000));
    r.until("create", |n| {
        matches!(n, Notice::Event { id, action: Action::Create, .. } if id == "p").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(r.store.get("p").is_none(), "held until the start event");
    assert!(r.rx.try_recv().is_err(), "no notice before the start event");

    fake.raw(podman_event("p", "start", json!({}), 2_000));
    let first = r
        .until("start or inspect", |n| match n {
            Notice::Event { id, .. } if id == "p" => Some("start event"),
            Notice::Updated(c) if c.id == "p" => Some("inspect"),
            _ => None,
        })
        .await;
    assert_eq!(first, "start event", "the event comes first");
    r.until("inspect after it", |n| {
        matches!(n, Notice::Updated(c) if c.id == "p").then_some(())
    })
    .await;
    assert!(r.store.get("p").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_start_event_that_never_comes_holds_the_inspect_for_the_grace_only() {
    let fake = fake();
    let mut r = start(&fake, Config::default());
    r.synced().await;
    fake.add("lost", "web");
    let t0 = tokio::time::Instant::now();
    fake.raw(podman_event("lost", "create", json!({}), 1_000));
    r.until("inspect", |n| {
        matches!(n, Notice::Updated(c) if c.id == "lost").then_some(())
    })
    .await;
    let waited = t0.elapsed();
    assert!(
        waited >= EVENT_LAG_GRACE && waited < EVENT_LAG_GRACE * 2,
        "{waited:?}"
    );
    // Containers only created, and those known from the list, are never held.
    let mut created = inspect_json("c", "created-only");
    created["State"]["Status"] = json!("created");
    fake.state().containers.insert("c".into(), created);
    let t0 = tokio::time::Instant::now();
    fake.raw(podman_event("c", "create", json!({}), 2_000));
    r.until("created", |n| {
        matches!(n, Notice::Updated(c) if c.id == "c").then_some(())
    })
    .await;
    assert!(t0.elapsed() < Duration::from_millis(100));
}
