//! The fixture image builds from our own static binary and runs on the real engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use testkit::{Fixture, Spec};

#[tokio::test]
async fn sleeper_fixture_runs_and_scope_cleans_up() {
    let Some(fx) = Fixture::new().await else { return };
    let id = fx.run(Spec::new("a")).await;
    fx.wait_state(&id, Some("running"), Duration::from_secs(5)).await;
    fx.scope.cleanup();
    assert_eq!(fx.state(&id).await, None, "cleanup removed the container");
}
