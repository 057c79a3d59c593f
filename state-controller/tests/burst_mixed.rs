//! Reliability under a burst: 200 containers started within seconds, their verdicts mixed
//! (allowed by name, by label, by name and image; denied plainly, by a near-miss label, by a
//! matching name on the wrong image). Zero survivors and zero false kills, with
//! `action = "kill"` (200) and `action = "remove"` (100). The engine's event timeline is
//! recorded live (a burst this size overflows its 256-event replay buffer); the latency
//! figures are printed, never asserted: `bash bench/run.sh` measures them against a floor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::bin;
use testkit::events::EventLog;
use testkit::start_many;
use testkit::time::median_worst;
use testkit::wait::{scope_states, stays_running, wait_none_running};
use testkit::{Fixture, Scope, Spec, eventually};

/// A burst container's kind (its name), its extra label, and whether the policy allows it.
type Kind = (&'static str, Option<(&'static str, &'static str)>, bool);

const KINDS: [Kind; 7] = [
    ("ok", None, true),                             // name rule
    ("bad", None, false),                           // nothing matches
    ("lbl", Some(("dwtest.role", "web")), true),    // label rule
    ("lblx", Some(("dwtest.role", "webx")), false), // label near-miss
    ("img", None, true),                            // name + image rule, image matches
    ("wrongimg", None, false),                      // name matches, image does not
    ("ko", None, false),                            // name near-miss
];

fn policy(scope: &Scope, action: &str) -> String {
    format!(
        r#"action = "{action}"

[[allow]]
name = "{s}-ok-*"

[[allow]]
labels = {{ "dwtest.role" = "web" }}

[[allow]]
name = "{s}-img-*"
image = "dwtest-sleeper:latest"

[[allow]]
name = "{s}-wrongimg-*"
image = "dwtest-other:*"
"#,
        s = scope.id
    )
}

async fn burst(action: &str, n: usize) {
    let Some(fx) = Fixture::new().await else { return };
    let (docker, scope) = (&fx.docker, &fx.scope);
    let mut c = fx.controller(bin(), &policy(scope, action), &[]).await;
    let events = EventLog::start(docker, &scope.selector());
    // The recording is live once it has seen a probe of its own start: from then on the
    // burst cannot overflow the engine's replay buffer before it is read.
    let probe = fx.run(Spec::new("ok-probe")).await;
    eventually(
        Duration::from_secs(10),
        "the event recording to be live",
        || async { events.saw(&probe, "start").then_some(()) },
    )
    .await
    .unwrap();

    let specs: Vec<(String, Vec<(String, String)>)> = (0..n)
        .map(|i| {
            let (kind, label, _) = KINDS[i % KINDS.len()];
            let labels = label
                .map(|(k, v)| vec![(k.to_string(), v.to_string())])
                .unwrap_or_default();
            (format!("{kind}-{i}"), labels)
        })
        .collect();
    let t = Instant::now();
    let started = start_many(docker, scope, specs, 32).await.unwrap();
    let burst_secs = t.elapsed().as_secs_f64();
    let allowed_kind = |name: &str| {
        let kind = name.rsplit_once('-').map_or(name, |(k, _)| k);
        KINDS.iter().any(|(k, _, allowed)| *k == kind && *allowed)
    };
    let (allowed, denied): (Vec<_>, Vec<_>) = started.iter().cloned().partition(|(n, _)| allowed_kind(n));
    let denied_ids: Vec<String> = denied.iter().map(|(_, id)| id.clone()).collect();

    let survivors = wait_none_running(docker, scope, &denied_ids, Duration::from_secs(60)).await;
    assert!(survivors.is_empty(), "denied containers survived: {survivors:?}");
    if action == "remove" {
        eventually(
            Duration::from_secs(30),
            "every denied container removed",
            || async {
                let states = scope_states(docker, scope).await;
                denied_ids.iter().all(|id| !states.contains_key(id)).then_some(())
            },
        )
        .await
        .unwrap();
    }
    // Every allowed one judged by the controller (a wrong action would be in the log by
    // then too), then a window in which nothing may happen to any of them: a wrong verdict
    // at its start event could still follow an allow at its create. Nothing marks "the
    // controller will not change its mind", so this window is a fixed period, checked all
    // along rather than at its end.
    let allowed_ids: Vec<&str> = allowed.iter().map(|(_, id)| id.as_str()).collect();
    c.wait_judged(&allowed_ids, Duration::from_secs(30)).await;
    let untouched = stays_running(docker, scope, &allowed_ids, Duration::from_millis(1500)).await;
    let states = scope_states(docker, scope).await;
    let mut false_kills = Vec::new();
    for (name, id) in &allowed {
        let running = states.get(id).is_some_and(|(_, s)| s == "running");
        let touched = ["kill", "die", "destroy"].iter().any(|a| events.saw(id, a));
        if !running || touched {
            false_kills.push(format!("{name}: {:?} {:?}", states.get(id), events.of(id)));
        }
    }
    assert!(
        false_kills.is_empty(),
        "allowed containers were touched: {false_kills:#?}"
    );
    untouched.unwrap();
    assert!(c.still_running(), "the controller exited:\n{}", c.log_text());
    let errors = c
        .metric(&format!(
            "dockwarden_actions_total{{action=\"{action}\",result=\"error\"}}"
        ))
        .await;
    assert_eq!(errors, 0.0, "failed actions:\n{}", c.log_text());

    let mut latencies = Vec::new();
    let mut never_ran = 0;
    for id in &denied_ids {
        match (
            events.first(id, "start"),
            events.first(id, "die").or(events.first(id, "destroy")),
        ) {
            (None, _) => never_ran += 1,
            (Some(s), Some(d)) => latencies.push((d - s) as f64 / 1e6),
            (Some(_), None) => {}
        }
    }
    let (median, worst) = median_worst(latencies);
    eprintln!(
        "burst action={action}: {n} containers ({} denied, {} allowed) created and started in {burst_secs:.1} s; \
         survivors 0, false kills 0; denied never running {never_ran}; start->die median {median:.1} ms, worst {worst:.1} ms",
        denied.len(),
        allowed.len()
    );
}

#[tokio::test]
async fn two_hundred_at_once_mixed_verdicts_kill_no_survivor_no_false_kill() {
    burst("kill", 200).await;
}

#[tokio::test]
async fn a_hundred_at_once_mixed_verdicts_remove_no_survivor_no_false_kill() {
    burst("remove", 100).await;
}
