//! What the controller's integration tests share beyond testkit: where this crate's binary
//! is, the usual fixture with a controller, the usual policy.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod authz;
pub mod power;
pub mod signing;

use std::path::Path;
use std::time::Duration;

use testkit::{Controller, Fixture, Scope};

/// The `state-controller` binary cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_state-controller"))
}

/// The running test's fixture and a controller on `policy` governing its scope (synced);
/// `None` when the test is skipped (no engine, none required).
pub async fn controlled(policy: &str, args: &[&str]) -> Option<(Fixture, Controller)> {
    let fx = Fixture::new().await?;
    let c = fx.controller(bin(), policy, args).await;
    Some((fx, c))
}

/// A policy allowing only the scope's `ok-*` containers (by name), with `head` (mode,
/// action, ...) on top.
pub fn allow_ok(scope: &Scope, head: &str) -> String {
    format!("{head}\n[[allow]]\nname = \"{}-ok*\"\n", scope.id)
}

/// The audit-mode decision line the controller logs for container `name` (the kill it would
/// have made), within `timeout`; panics with the controller's log when none comes.
pub async fn audit_decision(c: &Controller, name: &str, timeout: Duration) -> String {
    c.wait_log(
        &[
            "decision",
            &format!("container={name}"),
            "result=\"not done (audit mode)\"",
        ],
        timeout,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()))
}
