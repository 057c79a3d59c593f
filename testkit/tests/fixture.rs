//! The fixture image builds from our own static binary and runs on the real engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use testkit::{Scope, Spec, docker_or_skip, eventually, sleeper_image, state_of};

#[tokio::test]
async fn sleeper_fixture_runs_and_scope_cleans_up() {
    let Some(docker) = docker_or_skip("sleeper_fixture_runs_and_scope_cleans_up").await else {
        return;
    };
    sleeper_image().unwrap();
    let scope = Scope::new("fixture");
    let id = scope.run(&docker, Spec::new("a")).await.unwrap();
    eventually(Duration::from_secs(5), "running", || async {
        (state_of(&docker, &id).await.as_deref() == Some("running")).then_some(())
    })
    .await
    .unwrap();
    scope.cleanup();
    assert_eq!(
        state_of(&docker, &id).await,
        None,
        "cleanup removed the container"
    );
}
