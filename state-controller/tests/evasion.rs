//! Bad input from whoever starts containers: a container renamed between its create and its
//! start, or after it started. The verdict must follow the container as it is when it
//! runs: denied at create but allowed (by name) when it starts, it lives; allowed at create
//! but denied when it starts, or renamed to a denied name while running, it dies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{RenameContainerOptionsBuilder, StartContainerOptions};
use support::{allow_ok, bin};
use testkit::events::EventLog;
use testkit::log_id;
use testkit::wait::{scope_states, stays_running, wait_none_running};
use testkit::{Fixture, Spec};

const T: Duration = Duration::from_secs(10);

const ROUNDS: usize = 12;

async fn rename(docker: &Docker, id: &str, name: &str) {
    docker
        .rename_container(id, RenameContainerOptionsBuilder::default().name(name).build())
        .await
        .unwrap();
}

async fn start(docker: &Docker, id: &str) {
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rename_between_create_and_start_or_while_running_decides_the_verdict() {
    let Some(fx) = Fixture::new().await else { return };
    let (docker, scope) = (&fx.docker, &fx.scope);
    let c = fx.controller(bin(), &allow_ok(scope, ""), &[]).await;
    let events = EventLog::start(docker, &scope.selector());
    // One container first, so the controller knows the image and judges later ones from
    // their create events alone (its fast path).
    let warm = fx.run(Spec::new("ok-warm")).await;

    // Each round runs in parallel with the others: the engine is busy, its answers to the
    // controller's inspects come late, and the start event may overtake the rename's.
    let rounds = futures_util::future::join_all((0..ROUNDS).map(|i| {
        let (c, fx) = (&c, &fx);
        async move {
            // Denied at create; allowed by name when it starts.
            let a = fx.run(Spec::new(&format!("bad-a{i}")).created_only()).await;
            // Allowed at create; denied by name when it starts.
            let b = fx.run(Spec::new(&format!("ok-b{i}")).created_only()).await;
            // The controller judges both at create first (half the rounds), or not.
            if i % 2 == 0 {
                c.wait_log(&["decision", &log_id(&a), "verdict=deny"], T)
                    .await
                    .unwrap();
                c.wait_log(&["decision", &log_id(&b), "verdict=allow"], T)
                    .await
                    .unwrap();
            }
            rename(docker, &a, &scope.name(&format!("ok-a{i}"))).await;
            start(docker, &a).await;
            rename(docker, &b, &scope.name(&format!("bad-b{i}"))).await;
            start(docker, &b).await;
            ((format!("ok-a{i}"), a), (format!("bad-b{i}"), b))
        }
    }))
    .await;
    let (must_live, mut must_die): (Vec<_>, Vec<_>) = rounds.into_iter().unzip();
    // Allowed while running, then renamed to a denied name.
    let cid = fx.run(Spec::new("ok-c")).await;
    c.wait_log(&["decision", &log_id(&cid), "verdict=allow"], T)
        .await
        .unwrap();
    rename(docker, &cid, &scope.name("bad-c")).await;
    must_die.push(("bad-c".into(), cid));

    let ids: Vec<String> = must_die.iter().map(|(_, id)| id.clone()).collect();
    let left = wait_none_running(docker, scope, &ids, Duration::from_secs(20)).await;
    assert!(
        left.is_empty(),
        "renamed to a denied name, still running: {left:?}\n{}",
        c.log_text()
    );
    // Every one that must live judged on its name as it runs (a wrong action on it would be
    // in the log by then too), then a window in which nothing may happen to any of them: a
    // late event with an old name must not kill it either. Nothing marks "no more events
    // to come", so this window is a fixed period, checked all along rather than at its end.
    let must_live: Vec<(String, String)> = must_live
        .into_iter()
        .chain([("ok-warm".to_string(), warm)])
        .collect();
    let live_ids: Vec<&str> = must_live.iter().map(|(_, id)| id.as_str()).collect();
    c.wait_judged(&live_ids, Duration::from_secs(20)).await;
    let untouched = stays_running(docker, scope, &live_ids, Duration::from_millis(1500)).await;
    let states = scope_states(docker, scope).await;
    let mut killed = Vec::new();
    for (name, id) in &must_live {
        let s = states.get(id).map(|(_, s)| s.as_str()).unwrap_or("gone");
        if s != "running" || events.saw(id, "kill") {
            killed.push(format!("{name}: {s}, events {:?}", events.of(id)));
        }
    }
    assert!(
        killed.is_empty(),
        "allowed by name when started, yet killed (judged on the name at create?): {killed:#?}\n{}",
        c.log_text()
            .lines()
            .filter(|l| l.contains("decision"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    untouched.unwrap();
}
