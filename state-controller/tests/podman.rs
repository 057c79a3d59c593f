//! The controller against a real Podman (issue 13): each test starts its own rootful
//! `podman system service` with its own storage (testkit::podman) and runs containers with
//! the podman CLI, as Podman users do. Allowed containers live; denied ones are killed,
//! decided from the `create` event alone; containers there before the controller are
//! enforced at start-up; renames, restarts and removals keep the picture true; a new policy
//! applies to what runs and a bad one is refused; `remove` acts at `create`. Image rules
//! use Podman's own names (`localhost/NAME:TAG`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::engine::{Engine, HttpEngine};
use support::bin;
use testkit::podman::{PodmanService, podman_or_skip};
use testkit::wait::stays;
use testkit::{Controller, eventually, write_atomic};

/// Podman is slower than Docker at everything, and its event stream polls a file.
const T: Duration = Duration::from_secs(20);

/// `ok-*` of Podman's local sleeper; `hub-*` of a Docker Hub image of that name (which a
/// local image is not); `pinned-*` of the sleeper's local digest, when given.
fn policy(head: &str, digest: Option<&str>) -> String {
    let mut p = format!(
        "{head}\n\
         [[allow]]\nname = \"ok-*\"\nimage = \"localhost/dwtest-podman-sleeper:*\"\n\
         [[allow]]\nname = \"hub-*\"\nimage = \"dwtest-podman-sleeper:*\"\n"
    );
    if let Some(d) = digest {
        p.push_str(&format!("[[allow]]\nname = \"pinned-*\"\nimage = \"{d}\"\n"));
    }
    p
}

/// A service of the test's own with the sleeper image (`tag` names its directory, which
/// must stay short: the socket's path is limited), and a directory for the policy and logs.
/// `None` when the test is skipped (no podman, none required).
async fn setup(tag: &str) -> Option<(PodmanService, impl AsRef<Path> + use<>)> {
    podman_or_skip()?;
    let svc = PodmanService::start(tag).await.unwrap();
    svc.sleeper_image().unwrap();
    let dir = testkit::temp_dir(&format!("podman-{tag}")).unwrap();
    Some((svc, dir))
}

/// The policy file in `dir`.
fn policy_path(dir: &impl AsRef<Path>) -> PathBuf {
    dir.as_ref().join("allow.toml")
}

fn controller(svc: &PodmanService, dir: &impl AsRef<Path>) -> Controller {
    Controller::start(bin(), &policy_path(dir), &["--docker-host", &svc.host], &[])
}

/// [`setup`], the policy written, and a controller on the service, synced.
async fn started(tag: &str, policy: &str) -> Option<(PodmanService, impl AsRef<Path> + use<>, Controller)> {
    let (svc, dir) = setup(tag).await?;
    write_atomic(&policy_path(&dir), policy);
    let c = controller(&svc, &dir);
    c.wait_synced().await;
    Some((svc, dir, c))
}

async fn wait_state(svc: &PodmanService, name: &str, want: Option<&str>) -> Duration {
    let t0 = Instant::now();
    eventually(T, &format!("{name} to be {want:?}"), || async {
        (svc.state(name).as_deref() == want).then_some(())
    })
    .await
    .unwrap();
    t0.elapsed()
}

/// Decision lines of a container that acted through the inspect fallback alone (no event
/// behind it): what the event path exists to avoid.
fn bare_inspect_acts(c: &Controller, name: &str) -> usize {
    c.count_log(&[&format!("container={name} "), "trigger=inspect ", "result=ok"])
}

#[tokio::test]
async fn allowed_containers_live_and_denied_ones_are_killed_from_the_create_event() {
    let Some((svc, _dir, c)) = started("kill", &policy("", None)).await else {
        return;
    };

    svc.run("ok-1", &["--label", "team=a"]).unwrap();
    svc.run("bad-1", &[]).unwrap();
    svc.run("hub-1", &[]).unwrap();
    wait_state(&svc, "bad-1", Some("exited")).await;
    wait_state(&svc, "hub-1", Some("exited")).await;
    assert_eq!(
        svc.cli(&["inspect", "--format", "{{.State.ExitCode}}", "bad-1"])
            .unwrap(),
        "137",
        "SIGKILL"
    );
    // Killing it again: Podman answers 500 ("container state improper"), which the client
    // reads as Docker's 409, so an action that comes second is "already gone", not failed.
    let engine = HttpEngine::new(Some(&svc.host)).unwrap();
    let again = engine.kill("bad-1").await.unwrap_err();
    assert_eq!(again.status(), Some(409), "{again}");

    // Decided from Podman's create event alone (no inspect needed), killed once it ran.
    let pending = c
        .wait_log(&["container=bad-1 ", "trigger=\"create event\""], T)
        .await
        .unwrap();
    assert!(
        pending.contains("verdict=deny")
            && pending.contains("image=localhost/dwtest-podman-sleeper:latest")
            && pending.contains("acts the moment it starts"),
        "{pending}"
    );
    let killed = c.wait_log(&["container=bad-1 ", "result=ok"], T).await.unwrap();
    assert!(
        killed.contains("action=kill") && killed.contains("latency_ms="),
        "{killed}"
    );
    eprintln!("{killed}");
    assert_eq!(bare_inspect_acts(&c, "bad-1"), 0, "{}", c.log_text());

    // A rule for the Docker Hub name does not allow Podman's local image; the reason says
    // what to write.
    let hub = c.wait_log(&["container=hub-1 ", "result=ok"], T).await.unwrap();
    assert!(
        hub.contains("verdict=deny") && hub.contains("localhost/dwtest-podman-sleeper:*"),
        "{hub}"
    );

    // Judged: allowed, and nothing follows an allow.
    let allowed = c
        .wait_log(&["container=ok-1 ", "verdict=allow"], T)
        .await
        .unwrap();
    assert!(allowed.contains("rule=1"), "{allowed}");
    assert_eq!(svc.state("ok-1").as_deref(), Some("running"));
    assert_eq!(
        c.metric("dockwarden_actions_total{action=\"kill\",result=\"ok\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn containers_there_before_the_controller_are_enforced_at_start_up() {
    let Some((svc, dir)) = setup("startup").await else {
        return;
    };
    // Podman keeps a digest of every local image: a digest rule pins it.
    let digest = svc
        .cli(&[
            "image",
            "inspect",
            "--format",
            "{{.Digest}}",
            "dwtest-podman-sleeper",
        ])
        .unwrap();
    let pinned = format!("localhost/dwtest-podman-sleeper@{digest}");
    write_atomic(&policy_path(&dir), &policy("", Some(&pinned)));
    svc.run("ok-pre", &[]).unwrap();
    svc.run("pinned-pre", &[]).unwrap();
    svc.run("bad-pre", &[]).unwrap();
    svc.create("bad-later", &[]).unwrap();

    let c = controller(&svc, &dir);
    c.wait_synced().await;
    wait_state(&svc, "bad-pre", Some("exited")).await;
    c.wait_log(&["container=bad-pre ", "result=ok", "action=kill"], T)
        .await
        .unwrap();
    let pending = c
        .wait_log(&["container=bad-later ", "acts the moment it starts"], T)
        .await
        .unwrap();
    assert!(pending.contains("state=created"), "{pending}");
    let pinned_line = c
        .wait_log(&["container=pinned-pre ", "verdict=allow"], T)
        .await
        .unwrap();
    assert!(pinned_line.contains("rule=3"), "{pinned_line}");

    // Started later: killed on its start event, from the decision made at start-up.
    svc.cli(&["start", "bad-later"]).unwrap();
    wait_state(&svc, "bad-later", Some("exited")).await;
    let killed = c
        .wait_log(&["container=bad-later ", "result=ok"], T)
        .await
        .unwrap();
    assert!(killed.contains("trigger=\"start event\""), "{killed}");

    // Both judged (pinned-pre above): allowed, and nothing follows an allow.
    c.wait_log(&["container=ok-pre ", "verdict=allow"], T)
        .await
        .unwrap();
    assert_eq!(svc.state("ok-pre").as_deref(), Some("running"));
    assert_eq!(svc.state("pinned-pre").as_deref(), Some("running"));
}

#[tokio::test]
async fn renames_restarts_and_removals_keep_the_picture_true() {
    let Some((svc, _dir, c)) = started("picture", &policy("", None)).await else {
        return;
    };
    svc.run("ok-r", &[]).unwrap();
    svc.run("ok-keep", &[]).unwrap();
    c.wait_log(&["container=ok-r ", "verdict=allow"], T)
        .await
        .unwrap();

    // A rename to a denied name: Podman's rename event carries no oldName.
    svc.cli(&["rename", "ok-r", "bad-r"]).unwrap();
    wait_state(&svc, "bad-r", Some("exited")).await;
    let renamed = c.wait_log(&["container=bad-r ", "result=ok"], T).await.unwrap();
    assert!(renamed.contains("rename event"), "{renamed}");

    // Started again: killed again, and reported as coming back.
    svc.cli(&["start", "bad-r"]).unwrap();
    wait_state(&svc, "bad-r", Some("exited")).await;
    c.wait_log(&["keeps coming back", "bad-r"], T).await.unwrap();

    // A restart of an allowed container touches nothing (Podman: restart, die, start).
    // An allow is logged once per policy generation: nothing marks the restart's events
    // as handled, so this checks for a second that nothing happens.
    svc.cli(&["restart", "--time", "0", "ok-keep"]).unwrap();
    stays(Duration::from_secs(1), "ok-keep running, never denied", || {
        let fine = svc.state("ok-keep").as_deref() == Some("running")
            && c.count_log(&["container=ok-keep ", "verdict=deny"]) == 0;
        async move { fine }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
    assert_eq!(svc.state("ok-keep").as_deref(), Some("running"));
    assert_eq!(c.count_log(&["container=ok-keep ", "verdict=deny"]), 0);

    // Removal is Podman's `remove` event (Docker says `destroy`): the picture drops the
    // container within a second.
    let exited = "dockwarden_containers{state=\"exited\"}";
    eventually(T, "bad-r in the picture as exited", || async {
        (c.metric(exited).await == 1.0).then_some(())
    })
    .await
    .unwrap();
    svc.cli(&["rm", "bad-r"]).unwrap();
    let t0 = Instant::now();
    eventually(Duration::from_secs(1), "the removal in the picture", || async {
        (c.metric(exited).await == 0.0).then_some(())
    })
    .await
    .unwrap();
    eprintln!("removal shown after {:?}", t0.elapsed());
    assert_eq!(c.metric("dockwarden_containers{state=\"running\"}").await, 1.0);
}

#[tokio::test]
async fn a_new_policy_applies_to_what_runs_and_a_bad_one_is_refused() {
    let Some((svc, dir)) = setup("reload").await else {
        return;
    };
    let path = policy_path(&dir);
    write_atomic(&path, &policy("", None));
    let c = controller(&svc, &dir);
    c.wait_synced().await;
    svc.run("ok-a", &[]).unwrap();
    svc.run("ok-b", &[]).unwrap();
    // Both running in the controller's picture: the new policy finds them there.
    eventually(T, "two running containers in the picture", || async {
        (c.metric("dockwarden_containers{state=\"running\"}").await == 2.0).then_some(())
    })
    .await
    .unwrap();

    // ok-b is no longer allowed.
    write_atomic(
        &path,
        "[[allow]]\nname = \"ok-a\"\nimage = \"localhost/dwtest-podman-sleeper:*\"\n",
    );
    c.wait_log(&["policy reloaded", "generation=2"], T).await.unwrap();
    wait_state(&svc, "ok-b", Some("exited")).await;
    let line = c.wait_log(&["container=ok-b ", "result=ok"], T).await.unwrap();
    assert!(line.contains("trigger=\"new policy\""), "{line}");

    // A broken file is refused; the last good policy keeps enforcing.
    write_atomic(&path, "[[allow]]\nname = \n");
    c.wait_log(&["policy refused"], T).await.unwrap();
    svc.run("bad-after", &[]).unwrap();
    wait_state(&svc, "bad-after", Some("exited")).await;
    // Its decision logged: the controller is done with everything before it.
    c.wait_log(&["container=bad-after ", "result=ok"], T)
        .await
        .unwrap();
    assert_eq!(svc.state("ok-a").as_deref(), Some("running"));
}

#[tokio::test]
async fn remove_acts_at_the_create_event() {
    let Some((svc, _dir, c)) = started("remove", &policy("action = \"remove\"", None)).await else {
        return;
    };
    svc.create("bad-rm", &[]).unwrap();
    wait_state(&svc, "bad-rm", None).await;
    let line = c.wait_log(&["container=bad-rm ", "result=ok"], T).await.unwrap();
    assert!(
        line.contains("action=remove") && line.contains("trigger=\"create event\""),
        "{line}"
    );
    // The picture forgets it (Podman's `remove` event).
    eventually(T, "an empty picture", || async {
        (c.metric("dockwarden_containers{state=\"created\"}").await == 0.0).then_some(())
    })
    .await
    .unwrap();
}
