//! Signatures at the authorization plugin (issue 18), on a private engine that reaches a
//! registry of the test's own: a create is refused before the container exists unless a
//! listed key signed its image's registry digest (by tag, by digest, by either key), each
//! refusal with its reason; when the registry goes away an image verified before still
//! runs and a new one is refused; audit mode lets each through and logs the refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::authz::{Guarded, T};
use support::signing::{Signed, cases, keys, rule};
use testkit::SLEEPER_IMAGE;
use testkit::engines::Registry;

/// A guarded engine that reaches the registry, with the images pushed and signed, under a
/// `signed_by` rule for the scope's names.
async fn set_up(tag: &str, head: &str) -> Option<(Guarded, Signed, testkit::engines::Reach)> {
    let g = Guarded::start(tag, "[[allow]]\nname = \"dwtest-nothing-yet\"\n").await?;
    let p = g.fx.scope.id.clone();
    let keys = keys(g.fx.dir.path());
    let registry = Registry::start(&format!("{p}-reg")).await.unwrap();
    let port: u16 = registry.addr.rsplit(':').next().unwrap().parse().unwrap();
    let reach = g.engine.reach(port).unwrap();
    let signed = Signed::set_up(registry, &p, SLEEPER_IMAGE, &keys, &|a| g.engine.cli(a));
    g.fx.policy(&format!("{head}\n{}", rule(&format!("{p}-*"))));
    g.controller
        .wait_log(&["policy reloaded", "generation=2"], T)
        .await
        .unwrap();
    Some((g, signed, reach))
}

#[tokio::test]
async fn unsigned_images_never_exist_and_signed_ones_run() {
    let Some((g, mut signed, _reach)) = set_up("sig-authz", "").await else {
        return;
    };
    let p = g.fx.scope.id.clone();
    for (suffix, image, denial) in cases(&signed.images) {
        let name = format!("{p}-{suffix}");
        match denial {
            None => {
                g.run(&["--name", &name, &image])
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(g.state(&name), "running");
            }
            Some(reason) => {
                let err = g.run(&["--name", &name, &image]).unwrap_err();
                assert!(
                    err.contains("authorization denied") && err.contains(reason),
                    "{name}: {err}"
                );
                assert!(!g.exists(&name), "{name} exists");
            }
        }
    }
    signed.stop_registry();
    let again = format!("{p}-first-again");
    g.run(&["--name", &again, &signed.images.first]).unwrap();
    let late = format!("{p}-late");
    let err = g.run(&["--name", &late, &signed.images.late]).unwrap_err();
    assert!(err.contains("unreachable"), "{err}");
    assert!(!g.exists(&late));
}

#[tokio::test]
async fn audit_mode_lets_unsigned_images_through_and_logs_the_refusal() {
    let Some((g, signed, _reach)) = set_up("sig-audit", "mode = \"audit\"").await else {
        return;
    };
    let p = g.fx.scope.id.clone();
    for (suffix, image, denial) in cases(&signed.images) {
        let name = format!("{p}-{suffix}");
        g.run(&["--name", &name, &image])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(reason) = denial {
            let line = g
                .controller
                .wait_log(
                    &[
                        "decision",
                        &format!("container={name}"),
                        "result=\"would refuse (audit mode)\"",
                    ],
                    T,
                )
                .await
                .unwrap();
            assert!(line.contains(reason), "{name}: {line}");
        }
    }
}
