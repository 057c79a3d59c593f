//! Bad input from whoever starts containers: a container renamed between its create and its
//! start, or after it started. The verdict must follow the container as it is when it
//! runs: denied at create but allowed (by name) when it starts, it lives; allowed at create
//! but denied when it starts, or renamed to a denied name while running, it dies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{RenameContainerOptionsBuilder, StartContainerOptions};
use common::{Controller, EventLog, TempDir, scope_states, wait_none_running};
use testkit::{Scope, Spec, docker_or_skip, sleeper_image};

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
    let Some(docker) =
        docker_or_skip("a_rename_between_create_and_start_or_while_running_decides_the_verdict").await
    else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("evasion");
    let dir = TempDir::new(&scope.id);
    let path = dir.path("allow.toml");
    std::fs::write(&path, format!("[[allow]]\nname = \"{}-ok-*\"\n", scope.id)).unwrap();
    let c = Controller::start(&path, &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let events = EventLog::start(&docker, &scope.selector());
    // One container first, so the controller knows the image and judges later ones from
    // their create events alone (its fast path).
    let warm = scope.run(&docker, Spec::new("ok-warm")).await.unwrap();

    // Each round runs in parallel with the others: the engine is busy, its answers to the
    // controller's inspects come late, and the start event may overtake the rename's.
    let rounds = futures_util::future::join_all((0..ROUNDS).map(|i| {
        let (docker, scope) = (&docker, &scope);
        async move {
            // Denied at create; allowed by name when it starts.
            let a = scope
                .run(docker, Spec::new(&format!("bad-a{i}")).created_only())
                .await
                .unwrap();
            // Allowed at create; denied by name when it starts.
            let b = scope
                .run(docker, Spec::new(&format!("ok-b{i}")).created_only())
                .await
                .unwrap();
            // Give the controller time to judge both at create (half the rounds), or none.
            if i % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
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
    let cid = scope.run(&docker, Spec::new("ok-c")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rename(&docker, &cid, &scope.name("bad-c")).await;
    must_die.push(("bad-c".into(), cid));

    let ids: Vec<String> = must_die.iter().map(|(_, id)| id.clone()).collect();
    let left = wait_none_running(&docker, &scope, &ids, Duration::from_secs(20)).await;
    assert!(
        left.is_empty(),
        "renamed to a denied name, still running: {left:?}\n{}",
        c.log_text()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let states = scope_states(&docker, &scope).await;
    let mut killed = Vec::new();
    for (name, id) in must_live.iter().chain([("ok-warm".to_string(), warm)].iter()) {
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
}
