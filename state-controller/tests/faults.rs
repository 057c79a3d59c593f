//! The event stream cut for real: a private `dockerd` (own socket, data root and containerd
//! namespace) is restarted under a running controller. The controller must never exit,
//! must reconnect, and every denied container (one started right after the engine came
//! back, one revived by its restart policy at the engine's restart) must still die.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Controller, PrivateEngine, TempDir};
use testkit::{SLEEPER_IMAGE, docker_or_skip, sleeper_image};

async fn state(engine: &PrivateEngine, name: &str) -> Option<String> {
    engine.cli(&["inspect", "-f", "{{.State.Status}}", name]).ok()
}

async fn wait_state(engine: &PrivateEngine, name: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let s = state(engine, name).await;
        if s.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {s:?}, wanted {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn run(engine: &PrivateEngine, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
    args.extend_from_slice(extra);
    args.push(SLEEPER_IMAGE);
    engine.cli(&args).unwrap();
}

#[tokio::test]
async fn engine_restart_breaks_the_stream_and_nothing_denied_survives() {
    let Some(_docker) = docker_or_skip("engine_restart_breaks_the_stream_and_nothing_denied_survives").await
    else {
        return;
    };
    sleeper_image().unwrap();
    let mut engine = PrivateEngine::start("fault").await.unwrap();
    engine.load_image(SLEEPER_IMAGE).unwrap();
    let dir = TempDir::new(&format!("dwtest-faultpolicy-{}", std::process::id()));
    let path = dir.path("allow.toml");
    std::fs::write(&path, "[[allow]]\nname = \"ok-*\"\n").unwrap();
    // A private engine: the controller may govern all of it.
    let mut c = Controller::start(&path, &["--docker-host", &engine.host]);
    c.wait_synced().await;

    run(&engine, "ok-1", &["--restart=always"]);
    run(&engine, "bad-always", &["--restart=always"]);
    wait_state(&engine, "bad-always", "exited", Duration::from_secs(10)).await;
    wait_state(&engine, "ok-1", "running", Duration::from_secs(10)).await;

    // Cut: the engine goes away (its event stream ends), then comes back with
    // restart-policy containers starting again and a new denied container started at once.
    engine.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.still_running(),
        "the controller exited while Docker was down:\n{}",
        c.log_text()
    );
    c.wait_log(&["lost the Docker Engine"], Duration::from_secs(5))
        .await
        .unwrap();
    engine.restart().await.unwrap();
    run(&engine, "bad-after-break", &[]);

    wait_state(&engine, "bad-after-break", "exited", Duration::from_secs(40)).await;
    wait_state(&engine, "bad-always", "exited", Duration::from_secs(40)).await;
    c.wait_log(&["state list synced", "initial=false"], Duration::from_secs(40))
        .await
        .unwrap();
    wait_state(&engine, "ok-1", "running", Duration::from_secs(10)).await;
    assert!(c.still_running(), "the controller exited:\n{}", c.log_text());
    // The engine's restart revived bad-always (restart=always); it was killed again.
    let kills = c.count_log(&["decision", "bad-always", "result=ok"]);
    assert!(
        kills >= 2,
        "bad-always killed {kills} times, expected again after the restart:\n{}",
        c.log_text()
    );
    assert!(
        c.log_text().contains("keeps coming back"),
        "a recurring name is reported:\n{}",
        c.log_text()
    );
    eprintln!(
        "{}",
        c.log_text()
            .lines()
            .filter(|l| l.contains("decision") || l.contains("broke") || l.contains("synced"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
