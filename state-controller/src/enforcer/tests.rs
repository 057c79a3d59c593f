//! The enforcer's orderings as plain values: no engine, no clock, no sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::decision::EventKind;

use common::engine::container::{Container, Source, State};
use common::engine::event::Action as Ev;
use common::policy::Policy;

use super::*;

const SCOPE_HEAD: &str = "";

fn loaded(head: &str, generation: u64) -> Loaded {
    Loaded {
        policy: Policy::parse(&format!("{head}\n[[allow]]\nname = \"ok-*\"\n"), "t").unwrap(),
        generation,
        since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
    }
}

fn full(id: &str, name: &str, state: State) -> Arc<Container> {
    Arc::new(Container {
        id: id.into(),
        name: name.into(),
        image: "busybox:1".into(),
        image_id: "sha256:abc".into(),
        state,
        path: "/bin/sleep".into(),
        ..Default::default()
    })
}

fn event(id: &str, action: Ev, name: &str, t: i64) -> Notice {
    let state = action.state_after();
    Notice::Event {
        id: id.into(),
        container: state.map(|state| {
            Box::new(Container {
                id: id.into(),
                name: name.into(),
                image: "busybox:1".into(),
                state,
                source: Source::Event,
                hidden_labels: &["name", "image"],
                ..Default::default()
            })
        }),
        action,
        time_nano: t,
    }
}

fn acts(cmds: &[Command]) -> Vec<(String, Action, String)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Act(a) => Some((a.id.clone(), a.action, a.line.trigger.to_string())),
            _ => None,
        })
        .collect()
}

fn lines(cmds: &[Command]) -> Vec<&Line> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Log(l) => Some(l),
            _ => None,
        })
        .collect()
}

fn the_act(cmds: &[Command]) -> Act {
    cmds.iter()
        .find_map(|c| match c {
            Command::Act(a) => Some(a.clone()),
            _ => None,
        })
        .expect("an action")
}

#[test]
fn create_then_start_acts_on_the_start_event_without_waiting_for_an_inspect() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    let c = e.on_notice(event("x", Ev::Create, "bad", 100), &p, 0);
    assert!(acts(&c).is_empty(), "kill waits for a process");
    assert!(matches!(lines(&c)[0].kind, LineKind::Pending { audit: false }));
    // The inspect after create agrees; no second line.
    let c = e.on_notice(Notice::Updated(full("x", "bad", State::Created)), &p, 0);
    assert!(c.is_empty(), "{c:?}");
    let c = e.on_notice(event("x", Ev::Start, "bad", 200), &p, 0);
    assert_eq!(acts(&c), vec![("x".into(), Action::Kill, "start event".into())]);
    assert_eq!(
        the_act(&c).line.trigger_nano,
        200,
        "latency is measured from the start event"
    );
}

#[test]
fn remove_acts_already_at_create() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded("action = \"remove\"", 1);
    let c = e.on_notice(event("x", Ev::Create, "bad", 100), &p, 0);
    assert_eq!(
        acts(&c),
        vec![("x".into(), Action::Remove, "create event".into())]
    );
}

#[test]
fn a_rename_between_create_and_start_voids_the_decision_made_at_create() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    e.on_notice(event("x", Ev::Create, "bad", 100), &p, 0);
    // Renamed to an allowed name; the start event may come before the rename's inspect.
    let c = e.on_notice(
        event(
            "x",
            Ev::Rename {
                old_name: Some("bad".into()),
            },
            "ok-1",
            150,
        ),
        &p,
        0,
    );
    assert!(c.is_empty());
    let c = e.on_notice(event("x", Ev::Start, "ok-1", 200), &p, 0);
    assert!(acts(&c).is_empty(), "no false kill: {c:?}");
    // Even if the start event still carried the old name, the void decision is not used.
    let mut e = Enforcer::new(Identity::default());
    e.on_notice(event("y", Ev::Create, "bad", 100), &p, 0);
    e.on_notice(event("y", Ev::Rename { old_name: None }, "ok-2", 150), &p, 0);
    let c = e.on_notice(Notice::Updated(full("y", "ok-2", State::Running)), &p, 0);
    assert!(acts(&c).is_empty());
}

#[test]
fn a_rename_while_running_is_judged_by_the_inspect_that_follows() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    let c = e.on_notice(Notice::Updated(full("x", "ok-1", State::Running)), &p, 0);
    assert_eq!(lines(&c)[0].kind, LineKind::Judged);
    assert!(lines(&c)[0].decision.allowed());
    e.on_notice(
        event(
            "x",
            Ev::Rename {
                old_name: Some("ok-1".into()),
            },
            "bad",
            300,
        ),
        &p,
        0,
    );
    let c = e.on_notice(Notice::Updated(full("x", "bad", State::Running)), &p, 0);
    let a = the_act(&c);
    assert_eq!(
        (a.action, a.line.trigger, a.line.trigger_nano),
        (Action::Kill, Trigger::AfterEvent(EventKind::Rename), 300)
    );
}

#[test]
fn audit_mode_is_logged_and_counted_once() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded("mode = \"audit\"", 1);
    let mut all = e.on_notice(event("x", Ev::Create, "bad", 1), &p, 0);
    all.extend(e.on_notice(Notice::Updated(full("x", "bad", State::Created)), &p, 0));
    all.extend(e.on_notice(event("x", Ev::Start, "bad", 2), &p, 0));
    all.extend(e.on_notice(Notice::Updated(full("x", "bad", State::Running)), &p, 0));
    all.extend(e.on_notice(Notice::Updated(full("x", "bad", State::Running)), &p, 0)); // health check
    assert!(acts(&all).is_empty());
    let audit: Vec<_> = lines(&all)
        .into_iter()
        .filter(|l| l.kind == LineKind::Audit)
        .collect();
    assert_eq!(audit.len(), 1, "{all:?}");
    assert_eq!(e.tally.audit.get("kill"), Some(&1));
}

#[test]
fn a_policy_change_while_an_action_is_in_flight_does_not_act_twice() {
    let mut e = Enforcer::new(Identity::default());
    let p1 = loaded(SCOPE_HEAD, 1);
    let c = e.on_notice(Notice::Updated(full("x", "bad", State::Running)), &p1, 0);
    let a = the_act(&c);
    let p2 = loaded("action = \"stop\"", 2);
    let c = e.on_policy(&p2, &[full("x", "bad", State::Running)]);
    assert!(acts(&c).is_empty(), "one action at a time per container");
    let c = e.on_result(&a, Outcome::Done { call_ms: 3.0 }, Instant::now());
    assert!(matches!(lines(&c)[0].kind, LineKind::Done { .. }));
    // A new policy is timed from its own load, not from the container's start.
    let c = e.on_policy(&loaded(SCOPE_HEAD, 3), &[full("x", "bad", State::Running)]);
    let a = the_act(&c);
    assert_eq!(
        (a.line.trigger.clone(), a.line.trigger_nano),
        (Trigger::NewPolicy, 1_000_000_000_000)
    );
}

#[test]
fn a_failed_action_is_retried_with_backoff_while_live_and_denied() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    let t0 = Instant::now();
    let c = e.on_notice(Notice::Updated(full("x", "bad", State::Running)), &p, 0);
    let a1 = the_act(&c);
    assert_eq!(
        e.poll_timeout(),
        None,
        "nothing to wait for while it is in flight"
    );
    let c = e.on_result(&a1, Outcome::Failed("HTTP 500".into()), t0);
    assert!(matches!(lines(&c)[0].kind, LineKind::Failed { .. }));
    let due = e.poll_timeout().expect("a retry deadline");
    let retry = due - t0;
    let store = |id: &str| (id == "x").then(|| full("x", "bad", State::Running));
    assert!(
        e.on_timeout(due - Duration::from_millis(1), store, &p, 5)
            .is_empty(),
        "not yet due"
    );
    let c = e.on_timeout(due, store, &p, 5);
    let a2 = the_act(&c);
    assert_eq!((a2.attempt, a2.line.trigger.clone()), (2, Trigger::Retry));
    assert_eq!(e.poll_timeout(), None, "the deadline was consumed");
    let c = e.on_result(&a2, Outcome::Failed("timeout".into()), due);
    assert!(matches!(lines(&c)[0].kind, LineKind::Failed { .. }));
    let due2 = e.poll_timeout().unwrap();
    assert!(
        due2 - due > retry,
        "backoff grows: {retry:?} then {:?}",
        due2 - due
    );
    // Gone meanwhile, or no longer denied: no more tries.
    assert!(e.on_timeout(due2, |_| None, &p, 6).is_empty());
    e.on_result(&a2, Outcome::Failed("timeout".into()), due2);
    let due3 = e.poll_timeout().unwrap();
    let c = e.on_timeout(due3, |_| Some(full("x", "ok-now", State::Running)), &p, 7);
    assert!(acts(&c).is_empty());
    assert_eq!(e.tally.retries, 2);
}

/// The start fast path kills; the inspect the start event queued arrives after the kill,
/// still showing the container running (it was taken before). It is the same run: no
/// second kill, no comeback, and the container is counted once.
#[test]
fn a_stale_inspect_after_the_kill_neither_kills_again_nor_counts_a_comeback() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    let start_ns = 1_800_000_000_000_000_000; // 2027-01-15T08:00:00Z
    e.on_notice(event("x", Ev::Create, "bad", start_ns - 5_000_000), &p, 0);
    let c = e.on_notice(event("x", Ev::Start, "bad", start_ns), &p, 0);
    let a = the_act(&c);
    assert_eq!(a.comebacks, 0);
    e.on_result(&a, Outcome::Done { call_ms: 2.0 }, Instant::now());
    // The inspect taken just after the start: running, started a moment before the event.
    let mut stale = (*full("x", "bad", State::Running)).clone();
    stale.started_at = Some("2027-01-15T07:59:59.999Z".into());
    let c = e.on_notice(Notice::Updated(Arc::new(stale.clone())), &p, 0);
    assert!(acts(&c).is_empty(), "no second kill: {c:?}");
    assert_eq!(e.tally.deny, 1, "counted once");
    // The kill's own die and a re-list change nothing either.
    let mut exited = stale.clone();
    exited.state = State::Exited;
    assert!(acts(&e.on_notice(Notice::Updated(Arc::new(exited)), &p, 0)).is_empty());
    // A new run (restarted by a person, a restart policy) is acted on, and is a comeback.
    let mut again = stale;
    again.started_at = Some("2027-01-15T08:00:07Z".into());
    let c = e.on_notice(Notice::Updated(Arc::new(again)), &p, 0);
    assert_eq!(the_act(&c).comebacks, 1);
    assert_eq!(e.tally.deny, 1, "still one container in one generation");
    assert_eq!(e.denied_live(), 1);
}

/// One denied container counts once per policy generation, whatever prompted the
/// decisions about it (create event, start fast path, inspects), and again under a new
/// policy.
#[test]
fn each_container_counts_once_per_policy_generation() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    e.on_notice(event("x", Ev::Create, "bad", 100), &p, 0);
    e.on_notice(Notice::Updated(full("x", "bad", State::Created)), &p, 0);
    let c = e.on_notice(event("x", Ev::Start, "bad", 200), &p, 0);
    e.on_result(&the_act(&c), Outcome::Done { call_ms: 1.0 }, Instant::now());
    e.on_notice(Notice::Updated(full("x", "bad", State::Exited)), &p, 0);
    e.on_notice(Notice::Updated(full("y", "ok-1", State::Running)), &p, 0);
    e.on_notice(Notice::Updated(full("y", "ok-1", State::Running)), &p, 0);
    assert_eq!((e.tally.deny, e.tally.allow), (1, 1));
    assert_eq!(e.denied_live(), 0, "the denied one is down");
    e.on_policy(
        &loaded(SCOPE_HEAD, 2),
        &[full("x", "bad", State::Exited), full("y", "ok-1", State::Running)],
    );
    assert_eq!((e.tally.deny, e.tally.allow), (2, 2));
}

#[test]
fn a_stale_image_never_decides_an_event_and_digest_rules_wait_for_the_inspect() {
    let mut e = Enforcer::new(Identity::default());
    let hex = "a".repeat(64);
    let p = Loaded {
        policy: Policy::parse(&format!("[[allow]]\nimage = \"sha256:{hex}\"\n"), "t").unwrap(),
        generation: 1,
        since: SystemTime::UNIX_EPOCH,
    };
    // An old container of an earlier build of the same tag was seen and denied...
    let mut old = (*full("old", "old", State::Running)).clone();
    old.image_id = format!("sha256:{}", "b".repeat(64));
    assert_eq!(acts(&e.on_notice(Notice::Updated(Arc::new(old)), &p, 0)).len(), 1);
    e.on_notice(Notice::ImageChanged, &p, 0);
    // ...a new container of the rebuilt, allowed image: its create event cannot be judged
    // (the image is not resolved), so it is not denied on the old build's resolution.
    let c = e.on_notice(event("new", Ev::Create, "new", 10), &loaded_remove(&hex), 0);
    assert!(acts(&c).is_empty(), "{c:?}");
    let mut new = (*full("new", "new", State::Created)).clone();
    new.image_id = format!("sha256:{hex}");
    let c = e.on_notice(Notice::Updated(Arc::new(new)), &loaded_remove(&hex), 0);
    assert!(acts(&c).is_empty());
    assert_eq!(lines(&c)[0].kind, LineKind::Judged);
    assert!(lines(&c)[0].decision.allowed());
}

fn loaded_remove(hex: &str) -> Loaded {
    Loaded {
        policy: Policy::parse(
            &format!("action = \"remove\"\n[[allow]]\nimage = \"sha256:{hex}\"\n"),
            "t",
        )
        .unwrap(),
        generation: 1,
        since: SystemTime::UNIX_EPOCH,
    }
}

#[test]
fn removal_evicts_everything_even_for_containers_never_inspected() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    for i in 0..100 {
        let id = format!("c{i}");
        e.on_notice(event(&id, Ev::Create, "bad", i), &p, 0);
        e.on_notice(Notice::Removed(id), &p, 0);
    }
    e.on_notice(Notice::Updated(full("x", "ok-1", State::Running)), &p, 0);
    e.on_notice(Notice::Removed("x".into()), &p, 0);
    assert_eq!(e.tracked(), 0);
}

#[test]
fn a_container_that_keeps_coming_back_is_reported() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    let mut comebacks = Vec::new();
    for round in 0..3 {
        let id = format!("pod-{round}");
        let c = e.on_notice(
            Notice::Updated(full(&id, &format!("bad-{round}"), State::Running)),
            &p,
            0,
        );
        let a = the_act(&c);
        comebacks.push(a.comebacks);
        e.on_result(&a, Outcome::Done { call_ms: 1.0 }, Instant::now());
        e.on_notice(Notice::Removed(id), &p, 0);
    }
    assert_eq!(
        comebacks,
        vec![0, 0, 0],
        "new names, no orchestrator labels: not the same thing"
    );
    // A kubelet's re-creations: new names, the same pod container.
    let mut k8s = Vec::new();
    for attempt in 0..3 {
        let id = format!("k8s-{attempt}");
        let mut c = (*full(&id, &format!("k8s_app_pod-x_ns_uid_{attempt}"), State::Running)).clone();
        for (k, v) in [
            ("io.kubernetes.pod.namespace", "ns"),
            ("io.kubernetes.pod.name", "pod-x"),
            ("io.kubernetes.container.name", "app"),
        ] {
            c.labels.insert(k.into(), v.into());
        }
        let cmds = e.on_notice(Notice::Updated(Arc::new(c)), &p, 0);
        let a = the_act(&cmds);
        k8s.push(a.comebacks);
        e.on_result(&a, Outcome::Done { call_ms: 1.0 }, Instant::now());
    }
    assert_eq!(k8s, vec![0, 1, 2]);
    // The same container restarted by its restart policy counts too.
    let c = e.on_notice(Notice::Updated(full("r", "restarts", State::Running)), &p, 0);
    e.on_result(&the_act(&c), Outcome::Done { call_ms: 1.0 }, Instant::now());
    e.on_notice(Notice::Updated(full("r", "restarts", State::Exited)), &p, 0);
    let c = e.on_notice(event("r", Ev::Start, "restarts", 9), &p, 0);
    assert_eq!(the_act(&c).comebacks, 1);
}

#[test]
fn unjudgeable_containers_are_acted_on_and_counted() {
    let mut e = Enforcer::new(Identity::default());
    let p = loaded(SCOPE_HEAD, 1);
    let c = Container {
        id: "u".into(),
        name: "weird".into(),
        state: State::Running,
        source: Source::List,
        problem: Some("inspect failed 6 times: unknown variant".into()),
        ..Default::default()
    };
    let cmds = e.on_notice(Notice::Updated(Arc::new(c)), &p, 0);
    let a = the_act(&cmds);
    assert!(
        a.line.decision.to_string().starts_with("cannot be judged"),
        "{}",
        a.line.decision
    );
    assert_eq!(e.tally.unjudgeable, 1);
}

#[test]
fn a_bounded_copy_that_cannot_settle_a_new_policy_is_inspected_again() {
    let mut e = Enforcer::new(Identity::default());
    let p = Loaded {
        policy: Policy::parse("[[allow]]\nlabels = { team = \"a\" }\n", "t").unwrap(),
        generation: 2,
        since: SystemTime::UNIX_EPOCH,
    };
    let mut c = (*full("big", "big", State::Running)).clone();
    c.labels_cut = true;
    let cmds = e.on_policy(&p, &[Arc::new(c)]);
    assert_eq!(cmds, vec![Command::Refresh("big".into())]);
}
