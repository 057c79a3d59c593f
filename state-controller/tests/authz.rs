//! Prevention against a real engine: a private dockerd started with
//! `--authorization-plugin` asks the controller before it acts. Denied containers never
//! exist; requests built to slip past a careless plugin are judged as the engine reads them;
//! a narrowed policy refuses a start and the event path kills what already runs; reloads
//! change the answers within a second; audit mode lets a denied run through; and when the
//! plugin is down, the engine refuses everything until the documented recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::authz::{ALLOWED_IMAGE, Guarded, JSON, T};
use support::bin;
use testkit::{Controller, SLEEPER_IMAGE, eventually};

/// A request to try: what it plays on, path, headers, body.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], String);

/// Allowed: names `ok-*`, the image `dwtest-allowed`, label `dwtest.trust=yes`.
fn policy(head: &str) -> String {
    format!(
        "{head}\n[[allow]]\nname = \"ok-*\"\n[[allow]]\nimage = \"dwtest-allowed:*\"\n[[allow]]\nlabels = {{ \"dwtest.trust\" = \"yes\" }}\n"
    )
}

#[tokio::test]
async fn allowed_runs_work_and_denied_ones_never_exist() {
    let Some(g) = Guarded::start("authz-runs", &policy("")).await else {
        return;
    };
    let ok = g.run(&["--name", "ok-1", SLEEPER_IMAGE]).unwrap();
    assert!(!ok.is_empty());
    assert_eq!(g.state("ok-1"), "running");
    let err = g.run(&["--name", "bad-1", SLEEPER_IMAGE]).unwrap_err();
    assert!(
        err.contains(&format!("authorization denied by plugin {}", g.name))
            && err.contains("no [[allow]] rule matches"),
        "{err}"
    );
    assert!(!g.exists("bad-1"));
    // 200 denied runs, straight at the API: none is ever created.
    let t0 = Instant::now();
    let mut refused = 0;
    for i in 0..200 {
        let r = g
            .post(
                &format!("/v1.41/containers/create?name=bad-many-{i}"),
                JSON,
                &format!("{{\"Image\":\"{SLEEPER_IMAGE}\"}}"),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        refused += 1;
    }
    let listed = g.engine.cli(&["ps", "-aq", "--filter", "name=bad-"]).unwrap();
    assert!(listed.is_empty(), "denied containers exist: {listed}");
    let events = g
        .engine
        .cli(&[
            "events",
            "--since",
            "60s",
            "--until",
            "0s",
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .unwrap();
    assert!(
        !events.contains("bad-"),
        "a denied container was created: {events}"
    );
    eprintln!(
        "{refused} denied creates refused in {:?}; none exists",
        t0.elapsed()
    );
    assert!(
        g.controller
            .count_log(&["decision", "result=refused", "trigger=\"authz create\""])
            >= 201
    );
}

#[tokio::test]
async fn requests_built_to_slip_past_are_judged_as_the_engine_reads_them() {
    let Some(g) = Guarded::start("authz-raw", &policy("")).await else {
        return;
    };
    let denied = SLEEPER_IMAGE;
    // Each is well-formed HTTP; what they play on is how the body and the path are read.
    let json = |image: &str| format!("{{\"Image\":\"{image}\"}}");
    let cases: Vec<Case> = vec![
        (
            "lower-case keys",
            "/containers/create?name=raw-lower",
            JSON,
            format!("{{\"image\":\"{denied}\"}}"),
        ),
        (
            "duplicate keys",
            "/containers/create?name=raw-dup",
            JSON,
            format!("{{\"Image\":\"{ALLOWED_IMAGE}\",\"Image\":\"{denied}\"}}"),
        ),
        (
            "case-folded duplicate keys",
            "/containers/create?name=raw-fold",
            JSON,
            format!("{{\"Image\":\"{ALLOWED_IMAGE}\",\"iMAGE\":\"{denied}\"}}"),
        ),
        (
            "labels objects that merge",
            "/containers/create?name=raw-labels",
            JSON,
            format!(
                "{{\"Image\":\"{denied}\",\"Labels\":{{\"dwtest.trust\":\"yes\"}},\"labels\":{{\"dwtest.trust\":\"no\"}}}}"
            ),
        ),
        (
            // The client sends the body in chunks when told so (and no Content-Length).
            "a chunked body",
            "/containers/create?name=raw-chunked",
            &[
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
            json(denied),
        ),
        (
            "a percent-encoded path",
            "/containers/cr%65ate?name=raw-pct",
            JSON,
            json(denied),
        ),
        (
            "a versioned path",
            "/v1.41/containers/create?name=raw-v",
            JSON,
            json(denied),
        ),
        (
            "a content type with parameters",
            "/containers/create?name=raw-ct",
            &[("Content-Type", "application/json; charset=utf-8")],
            json(denied),
        ),
        (
            "a repeated name parameter",
            "/containers/create?name=raw-evil&name=ok-raw",
            JSON,
            json(denied),
        ),
    ];
    for (what, path, headers, body) in &cases {
        let r = g.post(path, headers, body).await;
        assert_ne!(r.status, 201, "{what}: created: {}", r.body);
        eprintln!("{what}: HTTP {}: {}", r.status, r.body.trim());
    }
    let listed = g.engine.cli(&["ps", "-a", "--format", "{{.Names}}"]).unwrap();
    assert!(
        !listed.contains("raw-") && !listed.contains("ok-raw"),
        "created: {listed}"
    );
    // The same requests, honest: an allowed one goes through.
    let r = g
        .post("/containers/create?name=raw-honest", JSON, &json(ALLOWED_IMAGE))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(g.exists("raw-honest"), "the engine has it");
}

#[tokio::test]
async fn a_narrowed_policy_refuses_a_start_and_the_event_path_kills_what_runs() {
    let Some(g) = Guarded::start("authz-narrow", &policy("")).await else {
        return;
    };
    g.engine
        .cli(&["create", "--name", "ok-later", "--network", "none", SLEEPER_IMAGE])
        .unwrap();
    g.run(&["--name", "ok-now", SLEEPER_IMAGE]).unwrap();
    g.fx.policy("[[allow]]\nname = \"nothing-*\"\n");
    g.controller
        .wait_log(&["policy reloaded", "generation=2"], T)
        .await
        .unwrap();
    let err = g.engine.cli(&["start", "ok-later"]).unwrap_err().to_string();
    assert!(
        err.contains("authorization denied") && err.contains("refuses start"),
        "{err}"
    );
    assert_eq!(g.state("ok-later"), "created", "it never ran");
    eventually(T, "ok-now killed by the event path", || async {
        (g.state("ok-now") == "exited").then_some(())
    })
    .await
    .unwrap();
    // Exec into a denied container is refused too (it is not running: the engine would
    // refuse anyway, but the plugin answers first).
    assert!(g.engine.cli(&["exec", "ok-now", "/dw-sleeper", "1"]).is_err());
}

#[tokio::test]
async fn reloads_change_the_answers_within_a_second_and_audit_lets_a_denied_run_through() {
    let Some(g) = Guarded::start("authz-reload", &policy("")).await else {
        return;
    };
    assert!(g.run(&["--name", "new-1", SLEEPER_IMAGE]).is_err());
    g.fx.policy(&format!("{}[[allow]]\nname = \"new-*\"\n", policy("")));
    let t0 = Instant::now();
    let mut n = 1;
    eventually(Duration::from_secs(1), "a new-* run allowed", || {
        n += 1;
        let ok = g.run(&["--name", &format!("new-{n}"), SLEEPER_IMAGE]).is_ok();
        async move { ok.then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: still refused a second after the edit"));
    let took = t0.elapsed();
    eprintln!("the plugin's answer changed {took:?} after the edit");
    g.fx.policy(&policy("mode = \"audit\""));
    g.controller
        .wait_log(&["policy reloaded", "generation=3"], T)
        .await
        .unwrap();
    g.run(&["--name", "audited-1", SLEEPER_IMAGE]).unwrap();
    g.controller
        .wait_log(
            &[
                "decision",
                "container=audited-1",
                "result=\"would refuse (audit mode)\"",
            ],
            T,
        )
        .await
        .unwrap();
    assert_eq!(g.state("audited-1"), "running");
    assert!(
        g.controller
            .metric("dockwarden_authz_requests_total{endpoint=\"create\",result=\"audit\"}")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn with_the_plugin_down_the_engine_refuses_everything_until_the_documented_recovery() {
    let Some(mut g) = Guarded::start("authz-down", &policy("")).await else {
        return;
    };
    g.run(&["--name", "ok-up", SLEEPER_IMAGE]).unwrap();
    // Down: every API request is refused, `docker ps` included.
    g.controller.kill();
    let _ = std::fs::remove_file(&g.socket);
    let err = g.engine.cli(&["ps"]).unwrap_err().to_string();
    assert!(err.contains(&g.name), "the refusal names the plugin: {err}");
    // Recovery 1 (docs/authz.md): start the plugin again; the engine answers again.
    let socket = g.socket.display().to_string();
    let up = Controller::start(
        bin(),
        &g.fx.path("allow.toml"),
        &["--docker-host", &g.engine.host, "--authz-socket", &socket],
        &[],
    );
    let t0 = Instant::now();
    eventually(Duration::from_secs(30), "the engine to answer again", || async {
        g.engine.cli(&["ps"]).ok()
    })
    .await
    .unwrap();
    eprintln!("engine answers {:?} after the plugin came back", t0.elapsed());
    drop(up);
    let _ = std::fs::remove_file(&g.socket);
    // Recovery 2: the plugin cannot come back: restart the engine without it (each request
    // would otherwise wait ~30 s for the plugin and fail, as above).
    g.engine.set_flags(&[]);
    g.engine.restart().await.unwrap();
    g.engine.cli(&["ps"]).unwrap();
    assert!(!g.engine.exited());
}
