//! Enforcement against the real engine: allowed containers live, denied ones die; audit
//! touches nothing; stop and remove act as named; restart=always stays dead; containers
//! already running at start-up are enforced; the controller's own container is spared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Controller, TempDir, actions_of, now_nano};
use testkit::{Scope, Spec, docker_or_skip, eventually, sleeper_image, state_of};

const T: Duration = Duration::from_secs(10);

/// A policy allowing only this scope's `ok-*` containers, with `head` (mode, action) on top.
fn policy(scope: &Scope, head: &str) -> String {
    format!("{head}\n[[allow]]\nname = \"{}-ok*\"\n", scope.id)
}

async fn wait_state(docker: &bollard::Docker, id: &str, want: Option<&str>) {
    eventually(T, &format!("{id} to be {want:?}"), || async {
        (state_of(docker, id).await.as_deref() == want).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn allowed_containers_live_and_denied_ones_are_killed() {
    let Some(docker) = docker_or_skip("allowed_containers_live_and_denied_ones_are_killed").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("enforce-kill");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "")).unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let t0 = now_nano();

    let ok = scope.run(&docker, Spec::new("ok-1")).await.unwrap();
    let bad = scope.run(&docker, Spec::new("bad-1")).await.unwrap();
    wait_state(&docker, &bad, Some("exited")).await;
    let line = c
        .wait_log(&["decision", &scope.name("bad-1"), "result=ok"], T)
        .await
        .unwrap();
    assert!(
        line.contains("action=kill") && line.contains("verdict=deny"),
        "{line}"
    );
    assert!(line.contains("latency_ms"), "{line}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state_of(&docker, &ok).await.as_deref(), Some("running"));
    let ok_actions = actions_of(&docker, t0, &ok).await;
    assert!(
        !ok_actions.iter().any(|a| a == "kill" || a == "die"),
        "allowed container touched: {ok_actions:?}"
    );
    let bad_actions = actions_of(&docker, t0, &bad).await;
    assert!(
        bad_actions.contains(&"kill".to_string()) && !bad_actions.contains(&"stop".to_string()),
        "{bad_actions:?}"
    );
    assert_eq!(
        c.metric("dockwarden_actions_total{action=\"kill\",result=\"ok\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn audit_mode_kills_nothing_but_logs_and_counts() {
    let Some(docker) = docker_or_skip("audit_mode_kills_nothing_but_logs_and_counts").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("enforce-audit");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "mode = \"audit\"")).unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;

    let bad = scope.run(&docker, Spec::new("bad-1")).await.unwrap();
    c.wait_log(
        &[
            "decision",
            &scope.name("bad-1"),
            "state=running",
            "not done (audit mode)",
        ],
        T,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(state_of(&docker, &bad).await.as_deref(), Some("running"));
    assert_eq!(
        c.metric("dockwarden_actions_total{action=\"kill\",result=\"audit\"}")
            .await,
        1.0
    );
    assert_eq!(
        c.metric("dockwarden_actions_total{action=\"kill\",result=\"ok\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn stop_action_stops_with_sigterm_first() {
    let Some(docker) = docker_or_skip("stop_action_stops_with_sigterm_first").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("enforce-stop");
    let dir = TempDir::new(&scope.id);
    std::fs::write(
        dir.path("allow.toml"),
        policy(&scope, "action = \"stop\"\nstop_timeout_secs = 1"),
    )
    .unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let t0 = now_nano();

    let bad = scope.run(&docker, Spec::new("bad-1")).await.unwrap();
    wait_state(&docker, &bad, Some("exited")).await;
    c.wait_log(&["decision", &scope.name("bad-1"), "action=stop", "result=ok"], T)
        .await
        .unwrap();
    let actions = actions_of(&docker, t0, &bad).await;
    assert!(
        actions.contains(&"stop".to_string()),
        "a stop, not a bare kill: {actions:?}"
    );
}

#[tokio::test]
async fn remove_action_removes_and_catches_containers_at_create() {
    let Some(docker) = docker_or_skip("remove_action_removes_and_catches_containers_at_create").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("enforce-remove");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "action = \"remove\"")).unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let t0 = now_nano();

    // Created, never started: removed before it can run.
    let created = scope
        .run(&docker, Spec::new("bad-created").created_only())
        .await
        .unwrap();
    wait_state(&docker, &created, None).await;
    let actions = actions_of(&docker, t0, &created).await;
    assert!(
        !actions.contains(&"start".to_string()),
        "it must never have run: {actions:?}"
    );
    assert!(actions.contains(&"destroy".to_string()), "{actions:?}");

    // `docker run`: create and start race the controller; either way it ends removed.
    match scope.run(&docker, Spec::new("bad-run")).await {
        Ok(id) => wait_state(&docker, &id, None).await,
        // The controller won the race: the start found it gone, or being removed.
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                e.contains("No such container") || e.contains("marked for removal"),
                "start failed another way: {e}"
            )
        }
    }
    let ok = scope.run(&docker, Spec::new("ok-1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state_of(&docker, &ok).await.as_deref(), Some("running"));
    assert!(
        c.count_log(&["decision", "action=remove", "result=ok"]) >= 2,
        "{}",
        c.log_text()
    );
}

#[tokio::test]
async fn denied_container_with_restart_always_stays_dead() {
    let Some(docker) = docker_or_skip("denied_container_with_restart_always_stays_dead").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("enforce-restart");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "")).unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let t0 = now_nano();

    let bad = scope
        .run(&docker, Spec::new("bad-always").restart_always())
        .await
        .unwrap();
    wait_state(&docker, &bad, Some("exited")).await;
    // Give the restart manager every chance to bring it back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let actions = actions_of(&docker, t0, &bad).await;
    let state = state_of(&docker, &bad).await;
    let starts = actions.iter().filter(|a| *a == "start").count();
    assert!(
        state.as_deref() == Some("exited") && starts == 1,
        "it must run once and never again: state {state:?}, engine events {actions:?}\ncontroller log:\n{}",
        c.log_text()
    );
}

#[tokio::test]
async fn containers_running_before_start_up_are_enforced() {
    let Some(docker) = docker_or_skip("containers_running_before_start_up_are_enforced").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("enforce-startup");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "")).unwrap();
    let ok = scope.run(&docker, Spec::new("ok-early")).await.unwrap();
    let bad = scope.run(&docker, Spec::new("bad-early")).await.unwrap();
    let created = scope
        .run(&docker, Spec::new("bad-created-early").created_only())
        .await
        .unwrap();
    wait_state(&docker, &bad, Some("running")).await;

    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    wait_state(&docker, &bad, Some("exited")).await;
    c.wait_log(&["state list synced", "initial=true"], T)
        .await
        .unwrap();
    c.wait_log(&["state", &scope.name("ok-early"), "allow"], T)
        .await
        .unwrap();
    assert_eq!(state_of(&docker, &ok).await.as_deref(), Some("running"));
    // Created before start-up, started after: killed at its start.
    docker
        .start_container(&created, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .unwrap();
    wait_state(&docker, &created, Some("exited")).await;
}

#[tokio::test]
async fn the_controllers_own_container_is_spared() {
    let Some(docker) = docker_or_skip("the_controllers_own_container_is_spared").await else {
        return;
    };
    sleeper_image().unwrap();
    let image = testkit::dockwarden_image().unwrap();
    let scope = Scope::new("enforce-self");
    let dir = TempDir::new(&scope.id);
    // Nothing of dockwarden's is allowed: only the sparing rule keeps it alive.
    std::fs::write(dir.path("allow.toml"), policy(&scope, "")).unwrap();
    let policy_dir = dir.0.display().to_string();
    let sel = scope.selector();
    let cmd = [
        "--allowlist",
        "/policy/allow.toml",
        "--scope",
        sel.as_str(),
        "--metrics-listen",
        "127.0.0.1:9090",
    ];
    let mut spec = Spec::new("controller").image(image).cmd(&cmd);
    spec.start = false;
    let id = scope.run(&docker, spec).await.unwrap();
    // Bind-mount the socket and the policy directory: recreate with mounts via the CLI,
    // which is simpler than bollard's HostConfig for a one-off.
    docker
        .remove_container(&id, None::<bollard::query_parameters::RemoveContainerOptions>)
        .await
        .unwrap();
    let name = scope.name("controller");
    let out = std::process::Command::new("docker")
        .args(["run", "-d", "--name", &name, "--label", &sel, "--network", "none"])
        .args([
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &format!("{policy_dir}:/policy:ro"),
        ])
        .arg(image)
        .args(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ctrl = String::from_utf8_lossy(&out.stdout).trim().to_string();

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
    let bad = scope.run(&docker, Spec::new("bad-1")).await.unwrap();
    wait_state(&docker, &bad, Some("exited")).await;
    // A sibling of the same image (as status-api would be) is spared too.
    let sib = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &scope.name("sibling"),
            "--label",
            &sel,
            "--network",
            "none",
        ])
        .args([
            "-v",
            &format!("{policy_dir}:/policy:ro"),
            image,
            "--allowlist",
            "/policy/allow.toml",
        ])
        .args([
            "--scope",
            "dwtest.scope=nobody",
            "--metrics-listen",
            "127.0.0.1:9091",
            "--docker-host",
            "unix:///nonexistent.sock",
        ])
        .output()
        .unwrap();
    assert!(sib.status.success(), "{}", String::from_utf8_lossy(&sib.stderr));
    let sib = String::from_utf8_lossy(&sib.stdout).trim().to_string();
    eventually(T, "the sibling to be judged", || async {
        (logs().matches("verdict=spare").count() >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        state_of(&docker, &ctrl).await.as_deref(),
        Some("running"),
        "{}",
        logs()
    );
    assert_eq!(
        state_of(&docker, &sib).await.as_deref(),
        Some("running"),
        "{}",
        logs()
    );
    assert!(logs().contains("never acted on"), "{}", logs());

    // Anything else in our image is judged like any container: another program mounted in
    // (a shell would do the same), and a program mounted over one of ours.
    let sleeper = testkit::static_binary("dockwarden-testkit", "dw-sleeper").unwrap();
    let run_in_image = |suffix: &str, mount: &str, entrypoint: &str| {
        let out = std::process::Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                &scope.name(suffix),
                "--label",
                &sel,
                "--network",
                "none",
            ])
            .args([
                "-v",
                &format!("{}:{mount}:ro", sleeper.display()),
                "--entrypoint",
                entrypoint,
            ])
            .arg(image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let shell = run_in_image("shell", "/bb/dw-sleeper", "/bb/dw-sleeper");
    let shadow = run_in_image("shadow", "/status-api", "/status-api");
    wait_state(&docker, &shell, Some("exited")).await;
    wait_state(&docker, &shadow, Some("exited")).await;
    assert_eq!(state_of(&docker, &ctrl).await.as_deref(), Some("running"));
    assert_eq!(state_of(&docker, &sib).await.as_deref(), Some("running"));
}
