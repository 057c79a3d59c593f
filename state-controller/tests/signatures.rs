//! Signatures on the event path (issue 18), on the shared engine with a registry of the
//! test's own: a `signed_by` rule lets containers run whose image a listed key signed (by
//! tag, by digest, by either key) and kills the others, each with its reason (unsigned,
//! signed by an unlisted key, never pushed, a signature replayed from another image); when
//! the registry goes away an image verified before still runs and a new one is killed;
//! audit mode lets each run and logs the kill it would make.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::bin;
use support::signing::{Signed, cases, keys, rule};
use testkit::engines::{Registry, docker_cli};
use testkit::{Controller, Fixture};

const T: Duration = Duration::from_secs(30);

fn state(name: &str) -> String {
    docker_cli(&["inspect", "-f", "{{.State.Status}}", name]).unwrap_or_default()
}

/// Removes the images the test tagged, pass or fail.
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = docker_cli(&["rmi", "-f", t]);
        }
    }
}

fn run(fx: &Fixture, suffix: &str, image: &str) -> String {
    let name = fx.name(suffix);
    docker_cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &fx.scope.selector(),
        "--network",
        "none",
        image,
    ])
    .unwrap();
    name
}

/// The tags come first, so that a test's bindings drop them last: after the fixture has
/// removed its containers, the imported `replayed` image is in use no more and goes with
/// its tag (removed before, it was left behind untagged).
async fn set_up(head: &str) -> Option<(Tags, Fixture, Signed, Controller)> {
    let fx = Fixture::new().await?;
    let keys = keys(fx.dir.path());
    let registry = Registry::start(&format!("{}-reg", fx.scope.id)).await.unwrap();
    let signed = Signed::set_up(registry, &fx.scope.id, testkit::SLEEPER_IMAGE, &keys, &|a| {
        docker_cli(a)
    });
    let tags = Tags(signed.tags.clone());
    let policy = format!("{head}\n{}", rule(&format!("{}-*", fx.scope.id)));
    let c = fx.controller(bin(), &policy, &[]).await;
    Some((tags, fx, signed, c))
}

#[tokio::test]
async fn signed_images_run_and_the_others_are_killed_with_their_reason() {
    let Some((_tags, fx, mut signed, c)) = set_up("").await else {
        return;
    };
    for (suffix, image, denial) in cases(&signed.images) {
        let name = run(&fx, suffix, &image);
        match denial {
            None => {
                let line = c
                    .wait_log(&["decision", &format!("container={name}"), "verdict=allow"], T)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
                assert!(line.contains("signed by keys/ci"), "{line}");
                assert_eq!(state(&name), "running", "{name}");
            }
            Some(reason) => {
                let line = c
                    .wait_log(&["decision", &format!("container={name}"), "result=ok"], T)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
                assert!(line.contains(reason), "{name}: {line}");
                assert_eq!(state(&name), "exited", "{name}");
            }
        }
    }
    // The second key verified the second image.
    assert!(c.count_log(&["decision", "verdict=allow", "signed by keys/ci-2026.pub"]) >= 1);
    // The registry goes away: what verified before still runs, a new image is killed.
    signed.stop_registry();
    let again = run(&fx, "first-again", &signed.images.first);
    c.wait_log(&["decision", &format!("container={again}"), "verdict=allow"], T)
        .await
        .unwrap();
    let late = run(&fx, "late", &signed.images.late);
    let line = c
        .wait_log(&["decision", &format!("container={late}"), "result=ok"], T)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
    assert!(line.contains("unreachable"), "{line}");
    assert_eq!(state(&again), "running");
    assert!(
        c.metric("dockwarden_signature_cache_hits_total").await >= 1.0,
        "{}",
        c.metrics().await
    );
}

#[tokio::test]
async fn audit_mode_lets_each_unsigned_image_run_and_logs_the_kill_it_would_make() {
    let Some((_tags, fx, signed, c)) = set_up("mode = \"audit\"").await else {
        return;
    };
    for (suffix, image, denial) in cases(&signed.images) {
        let name = run(&fx, suffix, &image);
        if let Some(reason) = denial {
            let line = support::audit_decision(&c, &name, T).await;
            assert!(line.contains(reason), "{name}: {line}");
        }
        assert_eq!(state(&name), "running", "{name}");
    }
}
