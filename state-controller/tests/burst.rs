//! 50 containers started at once, half of them denied: every denied one dies, no allowed
//! one is touched. The start-to-death latency is read from the engine's own event
//! timestamps and printed (median, worst); it is a figure, not a pass/fail threshold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Controller, EventLog, TempDir, now_nano};
use futures_util::future::join_all;
use testkit::{SCOPE_LABEL, Scope, Spec, docker_or_skip, eventually, sleeper_image, state_of};

const N: usize = 50;

#[tokio::test]
async fn fifty_at_once_half_denied_every_denied_dies_no_allowed_is_touched() {
    let Some(docker) = docker_or_skip("fifty_at_once").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("burst");
    let dir = TempDir::new(&scope.id);
    std::fs::write(
        dir.path("allow.toml"),
        format!("[[allow]]\nname = \"{}-ok-*\"\n", scope.id),
    )
    .unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let t0 = now_nano();
    // Recorded live: the engine's 256-event replay buffer is shared with every other user
    // of the engine and this burst alone makes ~150 events.
    let log = EventLog::start(&docker, &scope.selector());

    let names: Vec<String> = (0..N)
        .map(|i| {
            if i % 2 == 0 {
                format!("ok-{i}")
            } else {
                format!("bad-{i}")
            }
        })
        .collect();
    let started = join_all(names.iter().map(|n| scope.run(&docker, Spec::new(n)))).await;
    let ids: Vec<(String, String)> = names
        .iter()
        .cloned()
        .zip(started.into_iter().map(|r| r.unwrap()))
        .collect();
    let (denied, allowed): (Vec<_>, Vec<_>) = ids.iter().partition(|(n, _)| n.starts_with("bad"));

    for (name, id) in &denied {
        eventually(Duration::from_secs(20), &format!("{name} to die"), || async {
            (state_of(&docker, id).await.as_deref() == Some("exited")).then_some(())
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, id) in &allowed {
        assert_eq!(
            state_of(&docker, id).await.as_deref(),
            Some("running"),
            "{name} was touched"
        );
    }

    // The engine's record: start and die times per container.
    let start: HashMap<String, i64> = ids
        .iter()
        .filter_map(|(_, id)| Some((id.clone(), log.first(id, "start")?)))
        .collect();
    let die: HashMap<String, i64> = ids
        .iter()
        .filter_map(|(_, id)| Some((id.clone(), log.first(id, "die")?)))
        .collect();
    for (name, id) in &allowed {
        assert!(!die.contains_key(id), "allowed {name} died");
    }
    let mut lat: Vec<f64> = denied
        .iter()
        .map(|(name, id)| {
            let (s, d) = (start.get(id), die.get(id));
            assert!(d.is_some(), "no die event for {name}");
            (d.unwrap() - s.copied().unwrap_or(t0)) as f64 / 1e6
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let median = lat[lat.len() / 2];
    let worst = lat[lat.len() - 1];
    let never_ran = denied.iter().filter(|(_, id)| !start.contains_key(id)).count();
    let report = format!(
        "burst: {N} containers at once ({} denied, {} allowed); start->die (engine timestamps): median {median:.1} ms, worst {worst:.1} ms; denied never running: {never_ran}; allowed touched: 0",
        denied.len(),
        allowed.len()
    );
    let log = c.log_text();
    let acted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("decision") && l.contains("result=ok"))
        .collect();
    let fast = acted
        .iter()
        .filter(|l| l.contains("trigger=\"start event\""))
        .count();
    let mut calls: Vec<f64> = acted
        .iter()
        .filter_map(|l| l.split("call_ms=\"").nth(1)?.split('"').next()?.parse().ok())
        .collect();
    calls.sort_by(f64::total_cmp);
    let report = format!(
        "{report}\ncontroller: {} actions, {fast} on the start event (decided at create), kill call median {:.1} ms, worst {:.1} ms",
        acted.len(),
        calls.get(calls.len() / 2).copied().unwrap_or(0.0),
        calls.last().copied().unwrap_or(0.0)
    );
    eprintln!("{report}");
    let _ = std::fs::write(
        testkit::workspace_root().join("target/burst-report.txt"),
        format!("{report}\n"),
    );
    let _ = SCOPE_LABEL;
}
