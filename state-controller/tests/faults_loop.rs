//! Reliability under engine restarts: a private `dockerd` is restarted twice while a loop
//! keeps starting containers on it (allowed and denied, some with `--restart=always`, which
//! the engine revives at its restart). The controller must never exit, must reconnect after
//! each restart, nothing denied may be left running, and no allowed container may be acted
//! on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::bin;
use testkit::engines::PrivateEngine;
use testkit::wait::stays;
use testkit::{Controller, Fixture, SLEEPER_IMAGE, eventually};

/// Names of the containers of this engine in `state` (`running`, ...), via the CLI.
fn names(host: &str, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        args.extend_from_slice(&["--filter", f]);
    }
    let out = Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The starting loop: `ok-N` and `bad-N` in turn, every fourth one `--restart=always`, as
/// fast as the engine takes them; a refusal (engine down) is retried with the next name.
/// Returns the names it did start, with the time of each start; `count` follows their number.
fn start_loop(host: String, stop: Arc<AtomicBool>, count: Arc<AtomicUsize>) -> Vec<(String, Instant)> {
    let mut started = Vec::new();
    let mut i = 0;
    while !stop.load(Relaxed) {
        let kind = if i % 2 == 0 { "ok" } else { "bad" };
        let always = i % 4 >= 2;
        let name = format!("{kind}-{i}{}", if always { "-always" } else { "" });
        let mut args = vec!["run", "-d", "--name", &name, "--network", "none"];
        if always {
            args.push("--restart=always");
        }
        args.push(SLEEPER_IMAGE);
        let ok = Command::new("docker")
            .env("DOCKER_HOST", &host)
            .args(&args)
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            started.push((name, Instant::now()));
            count.fetch_add(1, Relaxed);
        } else {
            // Pacing, not a wait: the engine is down, try again a little later.
            std::thread::sleep(Duration::from_millis(200));
        }
        i += 1;
        // Pacing: a steady stream of starts, not a flood.
        std::thread::sleep(Duration::from_millis(50));
    }
    started
}

#[tokio::test]
async fn engine_restarted_twice_under_a_start_loop_nothing_denied_survives() {
    // The shared engine only lends the sleeper image; the fixture's directory holds the
    // policy and the controller's log.
    let Some(fx) = Fixture::new().await else { return };
    // A short shutdown timeout: the sleeper ignores SIGTERM, and the default 15 s per stop
    // would only slow the test down.
    let mut engine = PrivateEngine::start_with("loop", &["--shutdown-timeout", "1"])
        .await
        .unwrap();
    engine.load_image(SLEEPER_IMAGE).unwrap();
    let path = fx.policy("[[allow]]\nname = \"ok-*\"\n");
    // A private engine: the controller may govern all of it.
    let mut c = Controller::start(bin(), &path, &["--docker-host", &engine.host], &[]);
    c.wait_synced().await;

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let looper = {
        let (host, stop, count) = (engine.host.clone(), stop.clone(), count.clone());
        std::thread::spawn(move || start_loop(host, stop, count))
    };
    // The load each restart falls into, and what runs after the last one: the loop has
    // started this many more containers (half of them denied, half with a restart policy).
    let more_started = |n: usize| {
        let (count, base) = (count.clone(), count.load(Relaxed));
        async move {
            eventually(
                Duration::from_secs(60),
                &format!("the loop to start {n} more containers"),
                || {
                    let done = count.load(Relaxed) >= base + n;
                    async move { done.then_some(()) }
                },
            )
            .await
            .unwrap();
        }
    };
    let mut last_restart = Instant::now();
    for round in 1..=2 {
        more_started(8).await;
        engine.stop().await;
        // It must not exit while Docker stays down (the engine is down this long).
        stays(Duration::from_secs(1), "the controller running", || {
            let up = c.still_running();
            async move { up }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: it exited while Docker was down:\n{}", c.log_text()));
        engine.restart().await.unwrap();
        last_restart = Instant::now();
        eprintln!("engine restart {round} done");
    }
    // Allowed containers started after the last restart must then run.
    more_started(8).await;
    stop.store(true, Relaxed);
    let started = looper.join().unwrap();
    let (bad, ok): (Vec<_>, Vec<_>) = started.iter().partition(|(n, _)| n.starts_with("bad-"));
    assert!(bad.len() >= 6, "the loop started too few containers: {started:?}");

    // Nothing denied survives: after the last restart the controller reconnects (with its
    // backoff), re-lists, and kills what is running, including the denied containers
    // revived by their restart policy.
    let denied_running = || names(&engine.host, &["status=running", "name=bad-"]);
    eventually(Duration::from_secs(60), "no denied container running", || {
        let none = denied_running().is_empty();
        async move { none.then_some(()) }
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: denied containers still running: {:?}\n{}",
            denied_running(),
            c.log_text()
        )
    });
    // Stays that way: nothing denied comes back unnoticed.
    stays(Duration::from_secs(2), "no denied container running", || {
        let none = denied_running().is_empty();
        async move { none }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: denied containers running again: {:?}", denied_running()));

    // No allowed container was acted on. Those with a restart policy, and those started
    // after the last restart, run; the others stopped with the engine, not by the controller.
    let running: Vec<String> = names(&engine.host, &["status=running", "name=ok-"]);
    for (name, at) in &ok {
        if name.ends_with("-always") || *at > last_restart {
            assert!(
                running.contains(name),
                "allowed {name} is not running; running: {running:?}"
            );
        }
    }
    let log = c.log_text();
    let acted_on_allowed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("decision") && l.contains("container=ok-") && l.contains("verdict=deny"))
        .collect();
    assert!(
        acted_on_allowed.is_empty(),
        "allowed containers judged denied: {acted_on_allowed:#?}"
    );
    assert!(c.still_running(), "the controller exited:\n{log}");
    let reconnects = c.metric("dockwarden_informer_reconnects_total").await;
    assert!(
        reconnects >= 2.0,
        "{reconnects} reconnects counted, expected one per restart"
    );
    let kills = c.count_log(&["decision", "verdict=deny", "result=ok"]);
    eprintln!(
        "engine restarted twice under a start loop: {} started ({} denied, {} allowed), {kills} kills, {reconnects} reconnects, survivors 0, allowed acted on 0",
        started.len(),
        bad.len(),
        ok.len()
    );
}
