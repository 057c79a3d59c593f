//! Containers the old client library could not decode are listed like any other, with
//! their verdict (bollard's strict enums made every inspect of them fail, so status-api did
//! not list them at all).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::Api;
use testkit::{Fixture, SLEEPER_IMAGE, eventually};

#[tokio::test]
async fn a_container_with_an_isolation_value_bollard_rejects_is_listed_and_judged() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let policy = fx.policy(&format!("[[allow]]\nname = \"{}-ok*\"\n", scope.id));
    let api = Api::with_policy(scope, policy).await;
    let name = scope.name("iso");
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--isolation=Default",
            "--network",
            "none",
            "--name",
            &name,
        ])
        .args(["--label", &scope.selector(), SLEEPER_IMAGE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let c = eventually(Duration::from_secs(5), "the container to be listed", || async {
        api.find(&id).await
    })
    .await
    .unwrap();
    assert_eq!(c["name"], name.as_str());
    assert_eq!(c["state"], "running");
    assert_eq!(c["allowed"], false, "{c}");
    assert_eq!(c["reason"], "no [[allow]] rule matches");
    assert!(c.get("problem").is_none(), "decoded whole: {c}");
}
