//! Fail closed, against the real engine: each defect of the "fail closed" issue, tried the
//! way an attacker (or an unlucky operator) would, with the test that failed before the fix.
//! - metadata the client library could not decode (`--isolation=Default`);
//! - a stale image resolution denying (and removing) an allowed rebuild;
//! - megabytes of labels per container: memory stays bounded, enforcement goes on;
//! - a failed action (the engine answers 500) is retried;
//! - `docker run <short image ID>` of an allowed image is not killed;
//! - `name:tag@sha256:…` is judged by the digest the engine runs (a real registry);
//! - a label named `oldName` survives a rename; records of vanished containers are freed;
//! - decision lines: greppable logfmt, latency from the trigger, "valid again".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    Controller, FaultProxy, Registry, TempDir, docker_cli, now_nano, rss_kib, wait_state, write_atomic,
};
use testkit::{Scope, Spec, docker_or_skip, sleeper_image, state_of};

const T: Duration = Duration::from_secs(15);

/// A policy allowing this scope's `ok*` containers, plus `extra` rules, under `head`.
fn policy(scope: &Scope, head: &str, extra: &str) -> String {
    format!("{head}\n[[allow]]\nname = \"{}-ok*\"\n{extra}", scope.id)
}

/// `docker run -d` in the scope with extra CLI flags; returns the ID.
fn run_cli(scope: &Scope, name: &str, flags: &[&str], image: &str, args: &[&str]) -> String {
    let name = scope.name(name);
    let sel = scope.selector();
    let mut a = vec!["run", "-d", "--name", &name, "--label", &sel, "--network", "none"];
    a.extend_from_slice(flags);
    a.push(image);
    a.extend_from_slice(args);
    docker_cli(&a).unwrap()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_container_bollard_could_not_decode_is_judged() {
    let Some(_docker) = docker_or_skip("a_container_bollard_could_not_decode_is_judged").await else {
        return;
    };
    let image = sleeper_image().unwrap();
    let scope = Scope::new("fc-isolation");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "", "")).unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    // The engine stores the isolation as typed; bollard's enum knows only lower case, so
    // every inspect of these failed and they were never judged.
    let bad = run_cli(&scope, "bad-iso", &["--isolation=Default"], image, &[]);
    let ok = run_cli(&scope, "ok-iso", &["--isolation=Default"], image, &[]);
    // (The test's own bollard cannot inspect these either: ask the CLI.)
    let cli_state = |id: &str| docker_cli(&["inspect", "-f", "{{.State.Status}}", id]).ok();
    testkit::eventually(T, "the denied one to be killed", || async {
        (cli_state(&bad).as_deref() == Some("exited")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
    let line = c
        .wait_log(&["decision", &scope.name("bad-iso"), "result=ok"], T)
        .await
        .unwrap();
    assert!(
        line.contains("verdict=deny") && line.contains("reason=\"no [[allow]] rule matches\""),
        "{line}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cli_state(&ok).as_deref(), Some("running"), "judged, and allowed");
    assert_eq!(
        c.metric("dockwarden_informer_unjudgeable_total").await,
        0.0,
        "decoded, not unjudgeable"
    );
}

/// Builds `tag` FROM scratch with the sleeper and a `build` label, so two builds differ.
fn build_sleeper(tag: &str, build: u32) -> String {
    let bin = testkit::static_binary("dockwarden-testkit", "dw-sleeper").unwrap();
    let ctx = TempDir::new(&format!("{}-ctx-{build}", tag.replace([':', '/'], "-")));
    std::fs::copy(&bin, ctx.path("dw-sleeper")).unwrap();
    std::fs::write(
        ctx.path("Dockerfile"),
        format!("FROM scratch\nCOPY dw-sleeper /dw-sleeper\nLABEL build=\"{build}\"\nENTRYPOINT [\"/dw-sleeper\"]\n"),
    )
    .unwrap();
    let out = std::process::Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag, "--label", "dwtest=1"])
        .arg(&ctx.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    docker_cli(&["image", "inspect", "-f", "{{.Id}}", tag]).unwrap()
}

/// Removes images by tag when dropped.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = docker_cli(&["rmi", "-f", i]);
        }
    }
}

#[tokio::test]
async fn a_rebuilt_allowed_image_is_not_denied_on_the_old_builds_resolution() {
    let Some(docker) =
        docker_or_skip("a_rebuilt_allowed_image_is_not_denied_on_the_old_builds_resolution").await
    else {
        return;
    };
    let scope = Scope::new("fc-rebuild");
    let tag = format!("{}-img:latest", scope.id);
    let _images = Images(vec![tag.clone()]);
    build_sleeper(&tag, 1);
    // An old container of the first build, allowed by name, that the controller inspects.
    let old = run_cli(&scope, "ok-old", &[], &tag, &[]);
    let v2 = build_sleeper(&tag, 2);
    let dir = TempDir::new(&scope.id);
    // The strong form the docs recommend: pin the new build's ID. Remove, to make the
    // false verdict as costly as it was.
    std::fs::write(
        dir.path("allow.toml"),
        policy(
            &scope,
            "action = \"remove\"",
            &format!("[[allow]]\nimage = \"{v2}\"\n"),
        ),
    )
    .unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let t0 = now_nano();
    let new = run_cli(&scope, "new", &[], &tag, &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        state_of(&docker, &new).await.as_deref(),
        Some("running"),
        "{}",
        c.log_text()
    );
    let actions = common::actions_of(&docker, t0, &new).await;
    assert!(
        !actions.iter().any(|a| a == "destroy" || a == "kill"),
        "{actions:?}"
    );
    assert_eq!(state_of(&docker, &old).await.as_deref(), Some("running"));
    c.wait_log(&["decision", &scope.name("new"), "verdict=allow"], T)
        .await
        .unwrap();
}

#[tokio::test]
async fn megabytes_of_labels_keep_memory_bounded_and_enforcement_on() {
    let Some(docker) = docker_or_skip("megabytes_of_labels_keep_memory_bounded_and_enforcement_on").await
    else {
        return;
    };
    let image = sleeper_image().unwrap();
    let scope = Scope::new("fc-labels");
    let dir = TempDir::new(&scope.id);
    // ~1 MB of labels per container: 64 labels of 16 KiB (the CLI reads label files in
    // lines of at most 64 KiB).
    let labels: String = (0..64)
        .map(|i| format!("big{i}={}\n", "x".repeat(16 << 10)))
        .collect();
    std::fs::write(dir.path("labels"), labels).unwrap();
    let label_file = dir.path("labels").display().to_string();
    std::fs::write(dir.path("allow.toml"), policy(&scope, "", "")).unwrap();
    let mut c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let base = rss_kib(c.pid());
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for i in 0..30 {
        ok.push(run_cli(
            &scope,
            &format!("ok-{i}"),
            &["--label-file", &label_file],
            image,
            &[],
        ));
        bad.push(run_cli(
            &scope,
            &format!("bad-{i}"),
            &["--label-file", &label_file],
            image,
            &[],
        ));
    }
    for id in &bad {
        wait_state(&docker, id, Some("exited"), T).await.unwrap();
    }
    // A new policy with a label rule: every stored copy lacks the big labels, so each
    // container is inspected again and judged on its whole labels.
    write_atomic(
        &dir.path("allow.toml"),
        &policy(&scope, "", "[[allow]]\nlabels = { big0 = \"nope\" }\n"),
    );
    c.wait_log(&["new policy applied", "generation=2"], T)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ok {
        assert_eq!(
            state_of(&docker, id).await.as_deref(),
            Some("running"),
            "{}",
            c.log_text()
        );
    }
    let peak = vm_hwm_kib(c.pid());
    eprintln!("controller RSS: {base} KiB at start, peak {peak} KiB with 60 containers of ~1 MB of labels");
    assert!(peak < 48 * 1024, "peak RSS {peak} KiB");
    assert!(c.still_running());
}

#[tokio::test]
async fn a_failed_action_is_retried_until_it_holds() {
    let Some(docker) = docker_or_skip("a_failed_action_is_retried_until_it_holds").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("fc-retry");
    let dir = TempDir::new(&scope.id);
    std::fs::write(dir.path("allow.toml"), policy(&scope, "", "")).unwrap();
    let proxy = FaultProxy::start(&dir.path("engine.sock"), "/kill", 2).await;
    let c = Controller::start(
        &dir.path("allow.toml"),
        &["--scope", &scope.selector(), "--docker-host", &proxy.host],
    );
    c.wait_synced().await;
    let bad = scope.run(&docker, Spec::new("bad-1")).await.unwrap();
    wait_state(&docker, &bad, Some("exited"), T).await.unwrap();
    assert_eq!(proxy.injected(), 3, "two failures, then the kill that worked");
    assert_eq!(
        c.count_log(&["decision", &scope.name("bad-1"), "result=error"]),
        2,
        "{}",
        c.log_text()
    );
    c.wait_log(&["decision", &scope.name("bad-1"), "result=ok"], T)
        .await
        .unwrap();
    assert_eq!(
        c.metric("dockwarden_actions_total{action=\"kill\",result=\"error\"}")
            .await,
        2.0
    );
    assert!(c.metric("dockwarden_action_retries_total").await >= 1.0);
}

#[tokio::test]
async fn a_short_image_id_of_an_allowed_image_is_not_killed() {
    let Some(docker) = docker_or_skip("a_short_image_id_of_an_allowed_image_is_not_killed").await else {
        return;
    };
    let image = sleeper_image().unwrap();
    let scope = Scope::new("fc-shortid");
    let dir = TempDir::new(&scope.id);
    std::fs::write(
        dir.path("allow.toml"),
        policy(&scope, "", &format!("[[allow]]\nimage = \"{image}\"\n")),
    )
    .unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let id = docker_cli(&["image", "inspect", "-f", "{{.Id}}", image]).unwrap();
    let hex = id.trim_start_matches("sha256:");
    let mut started = Vec::new();
    for n in [6, 11, 12] {
        started.push(run_cli(&scope, &format!("short-{n}"), &[], &hex[..n], &[]));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &started {
        assert_eq!(
            state_of(&docker, id).await.as_deref(),
            Some("running"),
            "{}",
            c.log_text()
        );
    }
}

#[tokio::test]
async fn a_tag_beside_a_digest_does_not_pass_another_image() {
    let Some(docker) = docker_or_skip("a_tag_beside_a_digest_does_not_pass_another_image").await else {
        return;
    };
    let image = sleeper_image().unwrap();
    let scope = Scope::new("fc-digest");
    let registry = Registry::start(&format!("{}-registry", scope.id)).await.unwrap();
    let repo = format!("{}/{}-app", registry.addr, scope.id);
    let good = format!("{repo}:allowed");
    let other = format!("{repo}:other");
    let other_tag = format!("{}-other:latest", scope.id);
    let _images = Images(vec![good.clone(), other.clone(), other_tag.clone()]);
    docker_cli(&["tag", image, &good]).unwrap();
    docker_cli(&["push", &good]).unwrap();
    build_sleeper(&other_tag, 7);
    docker_cli(&["tag", &other_tag, &other]).unwrap();
    docker_cli(&["push", &other]).unwrap();
    let digest_of = |r: &str| {
        let d = docker_cli(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", r]).unwrap();
        d.split_once('@').map(|(_, d)| d.to_string()).unwrap()
    };
    let (good_digest, other_digest) = (digest_of(&good), digest_of(&other));
    let dir = TempDir::new(&scope.id);
    std::fs::write(
        dir.path("allow.toml"),
        policy(&scope, "", &format!("[[allow]]\nimage = \"{good}\"\n")),
    )
    .unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    // The engine runs the digest and ignores the tag written beside it.
    let evil = run_cli(&scope, "evil", &[], &format!("{good}@{other_digest}"), &[]);
    let fine = run_cli(&scope, "fine", &[], &format!("{good}@{good_digest}"), &[]);
    wait_state(&docker, &evil, Some("exited"), T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        state_of(&docker, &fine).await.as_deref(),
        Some("running"),
        "{}",
        c.log_text()
    );
}

#[tokio::test]
async fn a_label_named_old_name_survives_a_rename_and_vanished_containers_are_forgotten() {
    let Some(docker) =
        docker_or_skip("a_label_named_old_name_survives_a_rename_and_vanished_containers_are_forgotten")
            .await
    else {
        return;
    };
    let image = sleeper_image().unwrap();
    let scope = Scope::new("fc-oldname");
    let dir = TempDir::new(&scope.id);
    std::fs::write(
        dir.path("allow.toml"),
        format!(
            "action = \"remove\"\n[[allow]]\nlabels = {{ oldName = \"keep\", \"dwtest.scope\" = \"{}\" }}\n[[allow]]\nname = \"nothing-else\"\n",
            scope.id
        ),
    )
    .unwrap();
    let c = Controller::start(&dir.path("allow.toml"), &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let running = run_cli(&scope, "a", &["--label", "oldName=keep"], image, &[]);
    // Once the controller has inspected a container of this image, the next one of it can
    // be judged from its events alone: that is where a label named like the engine's own
    // `oldName` attribute must not be lost (with `remove`, a wrong verdict at `create` is
    // final).
    c.wait_log(&["decision", &scope.name("a")], T).await.unwrap();
    docker_cli(&["rename", &scope.name("a"), &scope.name("a2")]).unwrap();
    let plain = run_cli(&scope, "plain", &["--label", "oldName=keep"], image, &[]);
    let sel = scope.selector();
    let (name_b, name_b2) = (scope.name("b"), scope.name("b2"));
    let created = docker_cli(&[
        "create",
        "--name",
        &name_b,
        "--label",
        &sel,
        "--label",
        "oldName=keep",
        "--network",
        "none",
        image,
    ])
    .unwrap();
    docker_cli(&["rename", &name_b, &name_b2]).unwrap();
    docker_cli(&["start", &created]).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [&running, &plain] {
        assert_eq!(
            state_of(&docker, id).await.as_deref(),
            Some("running"),
            "{}",
            c.log_text()
        );
    }
    assert_eq!(
        state_of(&docker, &created).await.as_deref(),
        Some("running"),
        "{}",
        c.log_text()
    );

    // Containers that come and go faster than an inspect leave no record behind.
    let before = c.metric("dockwarden_enforcer_tracked").await;
    for i in 0..20 {
        let n = scope.name(&format!("gone-{i}"));
        let _ = docker_cli(&[
            "create",
            "--name",
            &n,
            "--label",
            &sel,
            "--network",
            "none",
            image,
        ]);
        let _ = docker_cli(&["rm", "-f", &n]);
    }
    testkit::eventually(T, "the records to be freed", || async {
        (c.metric("dockwarden_enforcer_tracked").await <= before).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn decision_lines_say_what_happened_when_and_why() {
    let Some(docker) = docker_or_skip("decision_lines_say_what_happened_when_and_why").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("fc-lines");
    let dir = TempDir::new(&scope.id);
    let path = dir.path("allow.toml");
    std::fs::write(&path, policy(&scope, "mode = \"audit\"", "")).unwrap();
    let c = Controller::start(&path, &["--scope", &scope.selector()]);
    c.wait_synced().await;
    let bad = scope.run(&docker, Spec::new("bad-1")).await.unwrap();
    c.wait_log(
        &[
            "decision",
            &scope.name("bad-1"),
            "result=\"not done (audit mode)\"",
        ],
        T,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Enforce now: the kill is timed from the edit, not from the container's start.
    write_atomic(&path, &policy(&scope, "", ""));
    wait_state(&docker, &bad, Some("exited"), T)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
    let line = c
        .wait_log(&["decision", &scope.name("bad-1"), "result=ok"], T)
        .await
        .unwrap();
    assert!(line.contains("trigger=\"new policy\""), "{line}");
    let latency: f64 = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("latency_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::MAX);
    assert!(
        latency < 1500.0,
        "measured from the edit, not the start (2 s earlier): {line}"
    );
    // The greps the docs suggest find every denial.
    let denials = c
        .log_text()
        .lines()
        .filter(|l| l.contains("decision") && l.contains(&scope.name("bad-1")) && l.contains("deny"))
        .count();
    assert_eq!(c.count_log(&["verdict=deny", &scope.name("bad-1")]), denials);
    assert!(denials >= 2);
    // A refused edit, then the file put back as the policy in force: say it is valid again.
    std::fs::write(&path, "this is = not [toml").unwrap();
    c.wait_log(&["policy refused"], T).await.unwrap();
    write_atomic(&path, &policy(&scope, "", ""));
    let line = c.wait_log(&["policy file is valid again"], T).await.unwrap();
    assert!(line.contains("generation=2"), "{line}");
    assert_eq!(c.metric("dockwarden_policy_file_valid").await, 1.0);
}
