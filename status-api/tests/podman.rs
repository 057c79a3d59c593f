//! status-api against a real Podman (issue 13): a rootful `podman system service` of the
//! test's own (testkit::podman), containers made with the podman CLI. Every container is
//! listed with its state, verdict and resource figures; start, stop, rename, health and
//! removal show within a second (Podman's event stream polls its events file every 250 ms); a policy reload
//! changes the verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Api, Opts};
use testkit::podman::{PODMAN_SLEEPER_IMAGE, PodmanService, podman_or_skip};
use testkit::{eventually, write_atomic};

const WITHIN: Duration = Duration::from_secs(1);

/// The listed container named `name`.
async fn named(api: &Api, name: &str) -> Option<Value> {
    api.list("").await.into_iter().find(|c| c["name"] == name)
}

/// Polls the listing until `check` holds for the container named `name` (or its absence);
/// returns how long that took after the podman CLI returned.
async fn shows(api: &Api, name: &str, what: &str, check: impl Fn(Option<&Value>) -> bool) -> Duration {
    let t0 = Instant::now();
    eventually(WITHIN, what, || async {
        let c = named(api, name).await;
        check(c.as_ref()).then_some(())
    })
    .await
    .unwrap();
    t0.elapsed()
}

#[tokio::test]
async fn every_podman_container_is_listed_with_state_and_verdict_and_changes_show_within_a_second() {
    if podman_or_skip().is_none() {
        return;
    }
    // A short tag: the service's socket path must fit in 108 bytes.
    let test = "api-list";
    let svc = PodmanService::start(test).await.unwrap();
    svc.sleeper_image().unwrap();
    let dir = testkit::temp_dir(&format!("podman-policy-{test}")).unwrap();
    let policy = dir.path().join("allowlist.toml");
    write_atomic(
        &policy,
        "mode = \"audit\"\n[[allow]]\nname = \"ok-*\"\nimage = \"localhost/dwtest-podman-sleeper:*\"\n",
    );
    svc.run("ok-1", &["--label", "team=a"]).unwrap();
    svc.run("bad-1", &[]).unwrap();
    svc.create("ok-created", &[]).unwrap();
    let api = Api::start_unsynced(
        None,
        Opts {
            allowlist: Some(policy.clone()),
            docker_host: Some(svc.host.clone()),
            ..Default::default()
        },
    )
    .await;
    api.wait_ready().await;

    assert_eq!(api.names("").await, ["bad-1", "ok-1", "ok-created"]);
    let ok = named(&api, "ok-1").await.unwrap();
    assert_eq!(ok["state"], "running", "{ok}");
    assert_eq!(ok["image"], PODMAN_SLEEPER_IMAGE, "Podman's own name: {ok}");
    assert!(ok["image_id"].as_str().unwrap().starts_with("sha256:"), "{ok}");
    assert_eq!(ok["labels"]["team"], "a", "{ok}");
    assert!(ok["started_at"].is_string() && ok["created"].is_string(), "{ok}");
    assert_eq!(
        (ok["allowed"].clone(), ok["rule"].clone()),
        (true.into(), 1.into()),
        "{ok}"
    );
    let bad = named(&api, "bad-1").await.unwrap();
    assert_eq!(
        (bad["state"].clone(), bad["allowed"].clone()),
        ("running".into(), false.into())
    );
    assert!(
        bad["reason"].as_str().unwrap().contains("no [[allow]] rule"),
        "{bad}"
    );
    let created = named(&api, "ok-created").await.unwrap();
    assert_eq!(created["state"], "created", "{created}");
    assert_eq!(api.names("allowed=false").await, ["bad-1"]);
    assert_eq!(api.names("state=running").await, ["bad-1", "ok-1"]);
    assert_eq!(api.get("/containers/ok-1").await.json()["name"], "ok-1");

    // CPU and memory from Podman's stats (two rounds, 500 ms apart in tests).
    let sampled = eventually(Duration::from_secs(10), "CPU and memory figures", || async {
        named(&api, "ok-1")
            .await
            .filter(|c| c["resources"]["cpu_percent"].is_number())
    })
    .await
    .unwrap();
    assert!(
        sampled["resources"]["memory_bytes"].as_u64().unwrap() > 0,
        "{sampled}"
    );
    assert_eq!(sampled["health_class"], "running", "no healthcheck: {sampled}");
    assert_eq!(sampled["resource_class"], "healthy", "an idle sleeper: {sampled}");

    // Lifecycle changes, each within a second.
    svc.cli(&["start", "ok-created"]).unwrap();
    let t = shows(&api, "ok-created", "start", |c| {
        c.is_some_and(|c| c["state"] == "running")
    })
    .await;
    eprintln!("start shown after {t:?}");
    svc.cli(&["stop", "--time", "0", "ok-created"]).unwrap();
    let t = shows(&api, "ok-created", "stop", |c| {
        c.is_some_and(|c| c["state"] == "exited")
    })
    .await;
    eprintln!("stop shown after {t:?}");
    svc.cli(&["rename", "ok-created", "ok-renamed"]).unwrap();
    let t = shows(&api, "ok-renamed", "rename", |c| c.is_some()).await;
    eprintln!("rename shown after {t:?}");
    assert!(named(&api, "ok-created").await.is_none(), "the old name is gone");
    assert_eq!(api.get("/containers/ok-created").await.status, 404);
    svc.cli(&["rm", "bad-1", "--force", "--time", "0"]).unwrap();
    let t = shows(&api, "bad-1", "removal", |c| c.is_none()).await;
    eprintln!("removal shown after {t:?}");

    // Health: Podman's `health_status` event carries the value in a field of its own. Without
    // systemd nothing schedules the checks: run them by hand.
    svc.run(
        "ok-health",
        &["--health-cmd", r#"["/dw-sleeper", "0"]"#, "--health-retries", "1"],
    )
    .unwrap();
    svc.cli(&["healthcheck", "run", "ok-health"]).unwrap();
    let t = shows(&api, "ok-health", "healthy", |c| {
        c.is_some_and(|c| c["health"] == "healthy")
    })
    .await;
    eprintln!("health shown after {t:?}");
    svc.run(
        "ok-sick",
        &["--health-cmd", r#"["/no-such-program"]"#, "--health-retries", "1"],
    )
    .unwrap();
    assert!(
        svc.cli(&["healthcheck", "run", "ok-sick"]).is_err(),
        "the check fails"
    );
    let t = shows(&api, "ok-sick", "unhealthy", |c| {
        c.is_some_and(|c| c["health"] == "unhealthy")
    })
    .await;
    eprintln!("unhealth shown after {t:?}");

    // A new policy: the verdicts follow.
    write_atomic(
        &policy,
        "mode = \"audit\"\n[[allow]]\nname = \"ok-renamed\"\nimage = \"localhost/dwtest-podman-sleeper:*\"\n",
    );
    eventually(Duration::from_secs(5), "verdicts after the reload", || async {
        let r = named(&api, "ok-renamed").await?;
        let o = named(&api, "ok-1").await?;
        (r["allowed"] == true && o["allowed"] == false).then_some(())
    })
    .await
    .unwrap();
    api.stop().await.unwrap();
}
