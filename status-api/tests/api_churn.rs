//! The whole system under load with churn: status-api (the shipped static binary, scoped to
//! this test's label) answers 60 s of concurrent requests from 8 clients while containers
//! are created, killed by the controller (the denied ones) and removed around it. No
//! request may fail or answer anything but 200 (no 5xx), every `/containers` body must be
//! the JSON it promises, and the server's RSS must stay flat (no growth with requests or
//! churn). `DWTEST_API_LOAD_SECS` shortens or lengthens the load phase. Both programs run
//! as their static release builds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::process::rss_kib;
use testkit::start_many;
use testkit::time::median_worst;
use testkit::wait::{scope_states, wait_none_running};
use testkit::{Controller, Fixture, Process, Scope, Spec, free_port, static_binary, write_atomic};

const CLIENTS: usize = 8;

/// Requests the clients send, by weight; `{name}` is a container that stays all along.
const REQUESTS: [(&str, u32); 8] = [
    ("/containers", 10),
    ("/containers?state=running", 3),
    ("/containers?allowed=false", 2),
    ("/containers?name={name}", 2),
    ("/containers/{name}", 3),
    ("/containers/{name}/logs?tail=5", 1),
    ("/healthz", 1),
    ("/metrics", 1),
];

#[derive(Default)]
struct Tally {
    by_status: Mutex<BTreeMap<u16, u64>>,
    failures: Mutex<Vec<String>>,
    bad_json: AtomicU64,
    total: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_under_a_minute_of_load_with_churn_no_error_no_5xx_rss_flat() {
    let Some(fx) = Fixture::new().await else { return };
    let (docker, scope) = (&fx.docker, &fx.scope);
    let api_bin = static_binary("status-api", "status-api").unwrap();
    let ctl_bin = static_binary("state-controller", "state-controller").unwrap();
    let secs: u64 = std::env::var("DWTEST_API_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // The policy (and the controller's log beside it) in a directory of their own: the
    // status-api log written all along does not touch the directory both programs watch.
    let policy_dir = fx.path("policy");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let policy = policy_dir.join("allow.toml");
    write_atomic(&policy, &format!("[[allow]]\nname = \"{}-ok-*\"\n", scope.id));
    let mut ctl = Controller::start(&ctl_bin, &policy, &["--scope", &scope.selector()], &[]);
    ctl.wait_synced().await;

    // 100 containers to begin with: 60 allowed, 40 denied (killed, then listed as exited).
    let specs = (0..100)
        .map(|i| {
            (
                if i % 5 < 3 {
                    format!("ok-{i}")
                } else {
                    format!("bad-{i}")
                },
                vec![],
            )
        })
        .collect();
    let initial = start_many(docker, scope, specs, 16).await.unwrap();
    let stable = scope.name("ok-0");

    let port = free_port();
    let mut cmd = Command::new(&api_bin);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--allowlist")
        .arg(&policy)
        .args(["--scope", &scope.selector(), "--stats-interval", "1", "--logs"])
        .env("RUST_LOG", "info");
    let mut api = Process::spawn("status-api", cmd, &fx.path("status-api.log")).unwrap();
    let pid = api.pid();
    testkit::eventually(Duration::from_secs(30), "status-api ready", || async {
        let r = testkit::http::get_port(port, "/readyz").await.ok()?;
        (r.status == 200).then_some(())
    })
    .await
    .unwrap();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let weighted: Vec<String> = REQUESTS
        .iter()
        .flat_map(|(p, w)| std::iter::repeat_n(p.replace("{name}", &stable), *w as usize))
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (tally, stop, weighted) = (tally.clone(), stop.clone(), weighted.clone());
            tokio::spawn(async move {
                let mut i = c * 7;
                while !stop.load(Relaxed) {
                    let path = &weighted[i % weighted.len()];
                    i += 1;
                    tally.total.fetch_add(1, Relaxed);
                    match testkit::http::get_port(port, path).await {
                        Ok(testkit::http::Resp { status, body, .. }) => {
                            *tally.by_status.lock().unwrap().entry(status).or_default() += 1;
                            if status != 200 {
                                let mut f = tally.failures.lock().unwrap();
                                if f.len() < 20 {
                                    f.push(format!("{path}: {status} {}", body.get(..200).unwrap_or(&body)));
                                }
                            } else if path == "/containers" {
                                let ok = serde_json::from_str::<serde_json::Value>(&body)
                                    .ok()
                                    .is_some_and(|v| v.get("containers").is_some_and(|c| c.is_array()));
                                if !ok {
                                    tally.bad_json.fetch_add(1, Relaxed);
                                }
                            }
                        }
                        Err(e) => {
                            let mut f = tally.failures.lock().unwrap();
                            if f.len() < 20 {
                                f.push(format!("{path}: {e:#}"));
                            }
                            *tally.by_status.lock().unwrap().entry(0).or_default() += 1;
                        }
                    }
                }
            })
        })
        .collect();

    // Churn: a new container every 250 ms (allowed and denied in turn: a rate, not a wait),
    // and the one made 8 steps earlier force-removed.
    let churn = {
        let (docker, stop) = (docker.clone(), stop.clone());
        // The test's own scope cleans up; this copy must not, when the task ends.
        let scope = std::mem::ManuallyDrop::new(Scope::with_id(scope.id.clone()));
        tokio::spawn(async move {
            let mut made: Vec<(String, String)> = Vec::new();
            let mut removed = 0;
            let mut i = 0;
            while !stop.load(Relaxed) {
                let name = if i % 2 == 0 {
                    format!("ok-churn-{i}")
                } else {
                    format!("bad-churn-{i}")
                };
                if let Ok(id) = scope.run(&docker, Spec::new(&name)).await {
                    made.push((name, id));
                }
                if made.len() > 8 {
                    let (_, id) = &made[made.len() - 9];
                    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .build();
                    if docker.remove_container(id, Some(opts)).await.is_ok() {
                        removed += 1;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (made, removed)
        })
    };

    // RSS once a second (a sampling period), for the whole load phase.
    let t0 = Instant::now();
    let mut rss: Vec<(f64, u64)> = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push((t0.elapsed().as_secs_f64(), rss_kib(pid)));
        assert!(
            api.still_running(),
            "status-api exited under load:\n{}",
            api.log_text()
        );
    }
    stop.store(true, Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let load_secs = t0.elapsed().as_secs_f64();
    let (made, removed) = churn.await.unwrap();

    let total = tally.total.load(Relaxed);
    let by_status = tally.by_status.lock().unwrap().clone();
    let failures = tally.failures.lock().unwrap().clone();
    eprintln!(
        "api under load: {total} requests in {load_secs:.0} s ({:.0}/s, {CLIENTS} clients, one connection per request), statuses {by_status:?}; churn: {} created, {removed} removed",
        total as f64 / load_secs,
        made.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert_eq!(
        by_status.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "non-200 answers"
    );
    assert_eq!(
        tally.bad_json.load(Relaxed),
        0,
        "/containers answered something else than its JSON"
    );
    assert!(total > 500, "only {total} requests in {load_secs:.0} s");

    // RSS flat: after a 10 s warm-up, the last third of the run is no higher than the first
    // third beyond allocator noise.
    let warm: Vec<u64> = rss.iter().filter(|(t, _)| *t >= 10.0).map(|(_, r)| *r).collect();
    let third = (warm.len() / 3).max(1);
    let (first, _) = median_worst(warm[..third].iter().map(|&k| k as f64).collect());
    let (last, _) = median_worst(warm[warm.len() - third..].iter().map(|&k| k as f64).collect());
    let (_, peak) = median_worst(rss.iter().map(|(_, k)| *k as f64).collect());
    eprintln!(
        "status-api RSS: median {:.1} MiB in the first third after warm-up, {:.1} MiB in the last third, peak {:.1} MiB",
        first / 1024.0,
        last / 1024.0,
        peak / 1024.0
    );
    assert!(
        last <= first * 1.2 + 2048.0,
        "RSS grew from {first} KiB to {last} KiB under load: {rss:?}"
    );

    // The system kept its promises meanwhile: no denied container runs, no allowed one was
    // touched, both programs are up.
    let denied: Vec<String> = initial
        .iter()
        .chain(made.iter())
        .filter(|(n, _)| n.starts_with("bad-"))
        .map(|(_, id)| id.clone())
        .collect();
    let left = wait_none_running(docker, scope, &denied, Duration::from_secs(20)).await;
    assert!(left.is_empty(), "denied containers still running: {left:?}");
    let states = scope_states(docker, scope).await;
    let not_running: Vec<&String> = states
        .values()
        .filter(|(n, s)| n.starts_with("ok-") && s != "running")
        .map(|(n, _)| n)
        .collect();
    assert!(
        not_running.is_empty(),
        "allowed containers not running: {not_running:?}"
    );
    assert!(ctl.still_running(), "the controller exited:\n{}", ctl.log_text());
    assert!(api.still_running(), "status-api exited");
}
