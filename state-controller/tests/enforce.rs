//! Enforcement against the real engine: allowed containers live, denied ones die; audit
//! touches nothing; stop and remove act as named; restart=always stays dead; containers
//! already running at start-up are enforced; the controller's own container is spared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{allow_ok, bin};
use testkit::events::actions_of;
use testkit::time::now_nano;
use testkit::{Controller, Fixture, Spec, eventually};

const T: Duration = Duration::from_secs(10);

/// Kills the controller counted as done.
async fn kills_done(c: &Controller) -> f64 {
    c.metric("dockwarden_actions_total{action=\"kill\",result=\"ok\"}")
        .await
}

/// The test's fixture and a controller under [`allow_ok`] with `head`.
async fn setup(head: &str) -> Option<(Fixture, Controller)> {
    let fx = Fixture::new().await?;
    let c = fx.controller(bin(), &allow_ok(&fx.scope, head), &[]).await;
    Some((fx, c))
}

#[tokio::test]
async fn allowed_containers_live_and_denied_ones_are_killed() {
    let Some((fx, c)) = setup("").await else { return };
    let t0 = now_nano();

    let ok = fx.run(Spec::new("ok-1")).await;
    let bad = fx.run(Spec::new("bad-1")).await;
    fx.wait_state(&bad, Some("exited"), T).await;
    let line = c
        .wait_log(&["decision", &fx.name("bad-1"), "result=ok"], T)
        .await
        .unwrap();
    assert!(
        line.contains("action=kill") && line.contains("verdict=deny"),
        "{line}"
    );
    assert!(line.contains("latency_ms"), "{line}");

    c.wait_log(&["decision", &fx.name("ok-1"), "verdict=allow"], T)
        .await
        .unwrap();
    assert_eq!(fx.state(&ok).await.as_deref(), Some("running"));
    let ok_actions = actions_of(&fx.docker, t0, &ok).await;
    assert!(
        !ok_actions.iter().any(|a| a == "kill" || a == "die"),
        "allowed container touched: {ok_actions:?}"
    );
    let bad_actions = actions_of(&fx.docker, t0, &bad).await;
    assert!(
        bad_actions.contains(&"kill".to_string()) && !bad_actions.contains(&"stop".to_string()),
        "{bad_actions:?}"
    );
    assert_eq!(kills_done(&c).await, 1.0);
    // Counted once (issue 19): the create event, the start fast path and the inspects
    // around the kill are one container under one policy generation. Given a second for
    // any late inspect to arrive: it must neither kill again nor count a comeback.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let denied = c.metric("dockwarden_decisions_total{verdict=\"deny\"}").await;
    assert_eq!(denied, 1.0, "{}", c.log_text());
    assert_eq!(kills_done(&c).await, 1.0, "{}", c.log_text());
    let comebacks = c.metric("dockwarden_recurring_total").await;
    assert_eq!(comebacks, 0.0, "{}", c.log_text());
}

#[tokio::test]
async fn audit_mode_kills_nothing_but_logs_and_counts() {
    let Some((fx, c)) = setup("mode = \"audit\"").await else {
        return;
    };

    let bad = fx.run(Spec::new("bad-1")).await;
    c.wait_log(
        &[
            "decision",
            &fx.name("bad-1"),
            "state=running",
            "not done (audit mode)",
        ],
        T,
    )
    .await
    .unwrap();
    // The decision is made and counted; nothing follows it.
    eventually(T, "the audit decision counted", || async {
        let n = c
            .metric("dockwarden_actions_total{action=\"kill\",result=\"audit\"}")
            .await;
        (n == 1.0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(fx.state(&bad).await.as_deref(), Some("running"));
    assert_eq!(kills_done(&c).await, 0.0);
}

#[tokio::test]
async fn stop_action_stops_with_sigterm_first() {
    let Some((fx, c)) = setup("action = \"stop\"\nstop_timeout_secs = 1").await else {
        return;
    };
    let t0 = now_nano();

    let bad = fx.run(Spec::new("bad-1")).await;
    fx.wait_state(&bad, Some("exited"), T).await;
    c.wait_log(&["decision", &fx.name("bad-1"), "action=stop", "result=ok"], T)
        .await
        .unwrap();
    let actions = actions_of(&fx.docker, t0, &bad).await;
    assert!(
        actions.contains(&"stop".to_string()),
        "a stop, not a bare kill: {actions:?}"
    );
}

#[tokio::test]
async fn remove_action_removes_and_catches_containers_at_create() {
    let Some((fx, c)) = setup("action = \"remove\"").await else {
        return;
    };
    let t0 = now_nano();

    // Created, never started: removed before it can run.
    let created = fx.run(Spec::new("bad-created").created_only()).await;
    fx.wait_state(&created, None, T).await;
    let actions = actions_of(&fx.docker, t0, &created).await;
    assert!(
        !actions.contains(&"start".to_string()),
        "it must never have run: {actions:?}"
    );
    assert!(actions.contains(&"destroy".to_string()), "{actions:?}");

    // `docker run`: create and start race the controller; either way it ends removed.
    match fx.scope.run(&fx.docker, Spec::new("bad-run")).await {
        Ok(id) => fx.wait_state(&id, None, T).await,
        // The controller won the race: the start found it gone, or being removed.
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                e.contains("No such container") || e.contains("marked for removal"),
                "start failed another way: {e}"
            )
        }
    }
    let ok = fx.run(Spec::new("ok-1")).await;
    c.wait_log(&["decision", &fx.name("ok-1"), "verdict=allow"], T)
        .await
        .unwrap();
    assert_eq!(fx.state(&ok).await.as_deref(), Some("running"));
    assert!(
        c.count_log(&["decision", "action=remove", "result=ok"]) >= 2,
        "{}",
        c.log_text()
    );
}

#[tokio::test]
async fn denied_container_with_restart_always_stays_dead() {
    let Some((fx, c)) = setup("").await else { return };
    let t0 = now_nano();

    let bad = fx.run(Spec::new("bad-always").restart_always()).await;
    fx.wait_state(&bad, Some("exited"), T).await;
    // Give the restart manager every chance to bring it back: a restart would show as a
    // second start within its first back-off (100 ms, doubling) many times over. No event
    // marks "the restart manager gave up", so this one wait is a fixed period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let actions = actions_of(&fx.docker, t0, &bad).await;
    let state = fx.state(&bad).await;
    let starts = actions.iter().filter(|a| *a == "start").count();
    assert!(
        state.as_deref() == Some("exited") && starts == 1,
        "it must run once and never again: state {state:?}, engine events {actions:?}\ncontroller log:\n{}",
        c.log_text()
    );
}

#[tokio::test]
async fn containers_running_before_start_up_are_enforced() {
    let Some(fx) = Fixture::new().await else { return };
    let policy = fx.policy(&allow_ok(&fx.scope, ""));
    let ok = fx.run(Spec::new("ok-early")).await;
    let bad = fx.run(Spec::new("bad-early")).await;
    let created = fx.run(Spec::new("bad-created-early").created_only()).await;
    fx.wait_state(&bad, Some("running"), T).await;

    let c = Controller::start(bin(), &policy, &["--scope", &fx.scope.selector()], &[]);
    fx.wait_state(&bad, Some("exited"), T).await;
    c.wait_log(&["state list synced", "initial=true"], T)
        .await
        .unwrap();
    c.wait_log(&["state", &fx.name("ok-early"), "allow"], T)
        .await
        .unwrap();
    assert_eq!(fx.state(&ok).await.as_deref(), Some("running"));
    // Created before start-up, started after: killed at its start.
    fx.docker
        .start_container(&created, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .unwrap();
    fx.wait_state(&created, Some("exited"), T).await;
}

#[tokio::test]
async fn the_controllers_own_container_is_spared() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let image = testkit::dockwarden_image().unwrap();
    // Nothing of dockwarden's is allowed: only the sparing rule keeps it alive.
    fx.policy(&allow_ok(scope, ""));
    let policy_dir = fx.dir.path().display().to_string();
    let sel = scope.selector();
    let cmd = [
        "--allowlist",
        "/policy/allow.toml",
        "--scope",
        sel.as_str(),
        "--metrics-listen",
        "127.0.0.1:9090",
    ];
    // `docker run -d` in the scope, without a network: the CLI's mounts are simpler than
    // bollard's HostConfig for these one-offs.
    let docker_run = |suffix: &str, args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(["run", "-d", "--name", &scope.name(suffix), "--label", &sel])
            .args(["--network", "none"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let policy_mount = format!("{policy_dir}:/policy:ro");
    let mut args = vec![
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &policy_mount,
        image,
    ];
    args.extend(cmd);
    let ctrl = docker_run("controller", &args);

    let logs = || {
        let o = std::process::Command::new("docker")
            .args(["logs", &ctrl])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    eventually(T, "the controller to sync", || async {
        logs().contains("state list synced").then_some(())
    })
    .await
    .unwrap();
    // It is working: a denied sleeper dies.
    let bad = fx.run(Spec::new("bad-1")).await;
    fx.wait_state(&bad, Some("exited"), T).await;
    // A sibling of the same image (as status-api would be) is spared too.
    let sib = docker_run(
        "sibling",
        &[
            "-v",
            &policy_mount,
            image,
            "--allowlist",
            "/policy/allow.toml",
            "--scope",
            "dwtest.scope=nobody",
            "--metrics-listen",
            "127.0.0.1:9091",
            "--docker-host",
            "unix:///nonexistent.sock",
        ],
    );
    eventually(T, "the sibling to be judged", || async {
        (logs().matches("verdict=spare").count() >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    // Spared: judged, logged, and left alone (a decision line follows the action).
    assert_eq!(fx.state(&ctrl).await.as_deref(), Some("running"), "{}", logs());
    assert_eq!(fx.state(&sib).await.as_deref(), Some("running"), "{}", logs());
    assert!(logs().contains("never acted on"), "{}", logs());

    // Anything else in our image is judged like any container: another program mounted in
    // (a shell would do the same), and a program mounted over one of ours.
    let sleeper = testkit::static_binary("dockwarden-testkit", "dw-sleeper").unwrap();
    let run_in_image = |suffix: &str, mount: &str, entrypoint: &str| {
        let mount = format!("{}:{mount}:ro", sleeper.display());
        docker_run(suffix, &["-v", &mount, "--entrypoint", entrypoint, image])
    };
    let shell = run_in_image("shell", "/bb/dw-sleeper", "/bb/dw-sleeper");
    let shadow = run_in_image("shadow", "/status-api", "/status-api");
    fx.wait_state(&shell, Some("exited"), T).await;
    fx.wait_state(&shadow, Some("exited"), T).await;
    assert_eq!(fx.state(&ctrl).await.as_deref(), Some("running"));
    assert_eq!(fx.state(&sib).await.as_deref(), Some("running"));
}
