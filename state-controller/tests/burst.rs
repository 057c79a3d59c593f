//! 50 containers started at once, half of them denied: every denied one dies, no allowed
//! one is touched. The start-to-death latency is read from the engine's own event
//! timestamps and printed (median, worst); it is a figure, not a pass/fail threshold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use support::{allow_ok, bin};
use testkit::events::EventLog;
use testkit::time::{median_worst, now_nano};
use testkit::{Fixture, Spec, eventually};

const N: usize = 50;

#[tokio::test]
async fn fifty_at_once_half_denied_every_denied_dies_no_allowed_is_touched() {
    let Some(fx) = Fixture::new().await else { return };
    let c = fx.controller(bin(), &allow_ok(&fx.scope, ""), &[]).await;
    let t0 = now_nano();
    // Recorded live: the engine's 256-event replay buffer is shared with every other user
    // of the engine and this burst alone makes ~150 events.
    let log = EventLog::start(&fx.docker, &fx.scope.selector());

    let names: Vec<String> = (0..N)
        .map(|i| {
            if i % 2 == 0 {
                format!("ok-{i}")
            } else {
                format!("bad-{i}")
            }
        })
        .collect();
    let started = join_all(names.iter().map(|n| fx.run(Spec::new(n)))).await;
    let ids: Vec<(String, String)> = names.iter().cloned().zip(started).collect();
    let (denied, allowed): (Vec<_>, Vec<_>) = ids.iter().partition(|(n, _)| n.starts_with("bad"));

    for (_, id) in &denied {
        fx.wait_state(id, Some("exited"), Duration::from_secs(20)).await;
    }
    // Every allowed one judged (a wrong action on it would be in the log by then too).
    let allowed_ids: Vec<&str> = allowed.iter().map(|(_, id)| id.as_str()).collect();
    c.wait_judged(&allowed_ids, Duration::from_secs(20)).await;
    for (name, id) in &allowed {
        assert_eq!(
            fx.state(id).await.as_deref(),
            Some("running"),
            "{name} was touched"
        );
    }

    // The engine's record: start and die times per container, once the live recording has
    // caught up with the deaths the engine reports (the assertions below name any missing).
    let recorded = eventually(Duration::from_secs(10), "every denied death recorded", || async {
        denied.iter().all(|(_, id)| log.saw(id, "die")).then_some(())
    })
    .await;
    if let Err(e) = recorded {
        eprintln!("{e:#}");
    }
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
    let lat: Vec<f64> = denied
        .iter()
        .map(|(name, id)| {
            let (s, d) = (start.get(id), die.get(id));
            assert!(d.is_some(), "no die event for {name}");
            (d.unwrap() - s.copied().unwrap_or(t0)) as f64 / 1e6
        })
        .collect();
    let (median, worst) = median_worst(lat);
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
    // logfmt quotes a value only when it must: `call_ms=1.2`.
    let calls: Vec<f64> = acted
        .iter()
        .filter_map(|l| {
            let v = l.split(" call_ms=").nth(1)?.split(' ').next()?;
            v.trim_matches('"').parse().ok()
        })
        .collect();
    let (call_median, call_worst) = median_worst(calls);
    let report = format!(
        "{report}\ncontroller: {} actions, {fast} on the start event (decided at create), kill call median {call_median:.1} ms, worst {call_worst:.1} ms",
        acted.len(),
    );
    eprintln!("{report}");
    let _ = std::fs::write(
        testkit::workspace_root().join("target/burst-report.txt"),
        format!("{report}\n"),
    );
}
