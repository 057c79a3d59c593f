//! The event stream cut for real: a private `dockerd` (own socket, data root and containerd
//! namespace) is restarted under a running controller. The controller must never exit,
//! must reconnect, and every denied container (one started right after the engine came
//! back, one revived by its restart policy at the engine's restart) must still die.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::bin;
use testkit::engines::PrivateEngine;
use testkit::wait::stays;
use testkit::{Controller, Fixture, SLEEPER_IMAGE, eventually};

fn state(engine: &PrivateEngine, name: &str) -> Option<String> {
    engine.cli(&["inspect", "-f", "{{.State.Status}}", name]).ok()
}

async fn wait_state(engine: &PrivateEngine, name: &str, want: &str, within: Duration) {
    eventually(within, &format!("{name} to be {want}"), || async {
        (state(engine, name).as_deref() == Some(want)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: it is {:?}", state(engine, name)));
}

fn run(engine: &PrivateEngine, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
    args.extend_from_slice(extra);
    args.push(SLEEPER_IMAGE);
    engine.cli(&args).unwrap();
}

#[tokio::test]
async fn engine_restart_breaks_the_stream_and_nothing_denied_survives() {
    // The shared engine only lends the sleeper image; the fixture's directory holds the
    // policy and the controller's log.
    let Some(fx) = Fixture::new().await else { return };
    let mut engine = PrivateEngine::start("fault").await.unwrap();
    engine.load_image(SLEEPER_IMAGE).unwrap();
    let path = fx.policy("[[allow]]\nname = \"ok-*\"\n");
    // A private engine: the controller may govern all of it.
    let mut c = Controller::start(bin(), &path, &["--docker-host", &engine.host], &[]);
    c.wait_synced().await;

    run(&engine, "ok-1", &["--restart=always"]);
    run(&engine, "bad-always", &["--restart=always"]);
    wait_state(&engine, "bad-always", "exited", Duration::from_secs(10)).await;
    wait_state(&engine, "ok-1", "running", Duration::from_secs(10)).await;

    // Cut: the engine goes away (its event stream ends), then comes back with
    // restart-policy containers starting again and a new denied container started at once.
    engine.stop().await;
    c.wait_log(&["lost the Docker Engine"], Duration::from_secs(5))
        .await
        .unwrap();
    // It must not exit while Docker stays down (the engine is down this long).
    stays(Duration::from_secs(2), "the controller running", || {
        let up = c.still_running();
        async move { up }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: it exited while Docker was down:\n{}", c.log_text()));
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
    // And the engine agrees: the denied ones are down, the allowed one runs.
    assert_eq!(state(&engine, "bad-always").as_deref(), Some("exited"));
    assert_eq!(state(&engine, "bad-after-break").as_deref(), Some("exited"));
    assert_eq!(state(&engine, "ok-1").as_deref(), Some("running"));
    eprintln!(
        "{}",
        c.log_text()
            .lines()
            .filter(|l| l.contains("decision") || l.contains("broke") || l.contains("synced"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
