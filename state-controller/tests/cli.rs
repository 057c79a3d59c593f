//! The command-line contract: exit code 2 and a clear message for a missing or invalid
//! policy; `check` validates offline and shows what would happen to the containers there;
//! an unreachable Docker is retried, never a reason to exit; `healthcheck` probes /healthz.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use testkit::{Controller, Fixture, Spec, temp_dir};

/// The controller binary as a command.
fn cmd() -> Command {
    Command::new(support::bin())
}

fn output(cmd: &mut Command) -> (i32, String) {
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

#[test]
fn missing_or_invalid_policy_exits_2_with_position() {
    let dir = temp_dir("cli").unwrap();
    let (code, text) = output(cmd().args([
        "--allowlist",
        "/nonexistent/allow.toml",
        "--metrics-listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("/nonexistent/allow.toml") && text.contains("cannot read"),
        "{text}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[allow]]\nname = \"ok\"\nimage = \"nginx@sha256:abc\"\n").unwrap();
    let (code, text) = output(
        cmd()
            .arg("--allowlist")
            .arg(&bad)
            .args(["--metrics-listen", "127.0.0.1:0"]),
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&format!("{}:3:9", bad.display())), "{text}");

    let (code, text) = output(cmd().arg("check").arg("--allowlist").arg(&bad));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("invalid policy") && text.contains(":3:9"), "{text}");

    let (code, text) = output(cmd().args(["--metrics-listen", "127.0.0.1:0"]));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--allowlist"), "{text}");
}

#[test]
fn check_offline_validates_and_lists_rules() {
    let dir = temp_dir("cli-off").unwrap();
    let p = dir.path().join("allow.toml");
    std::fs::write(
        &p,
        "mode = \"audit\"\n[[allow]]\nname = \"web-*\"\n[[allow]]\nimage = \"nginx:*\"\n",
    )
    .unwrap();
    let (code, text) = output(cmd().arg("check").arg("--offline").arg("--allowlist").arg(&p));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid. mode=audit action=kill"), "{text}");
    assert!(text.contains("allow[2] (image=\"nginx:*\")  (line 4)"), "{text}");
}

#[tokio::test]
async fn check_shows_what_would_happen_to_the_containers_there() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let p = fx.policy(&format!("[[allow]]\nname = \"{}-ok\"\n", scope.id));
    fx.run(Spec::new("ok")).await;
    let bad = fx.run(Spec::new("bad")).await;
    fx.run(Spec::new("later").created_only()).await;
    let (code, text) = output(
        cmd()
            .arg("check")
            .arg("--allowlist")
            .arg(&p)
            .args(["--scope", &scope.selector()]),
    );
    assert_eq!(code, 0, "{text}");
    let line = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(&scope.name(n)))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("ok").contains("allow"), "{text}");
    assert!(
        line("bad").contains("deny") && line("bad").contains("kill: no [[allow]] rule matches"),
        "{text}"
    );
    assert!(line("later").contains("kill when it starts"), "{text}");
    assert!(text.contains("3 containers: 1 allowed, 2 denied."), "{text}");
    // check never acts
    assert_eq!(fx.state(&bad).await.as_deref(), Some("running"));
}

#[tokio::test]
async fn unreachable_docker_is_retried_not_fatal_and_healthcheck_reports() {
    let dir = temp_dir("cli-nodocker").unwrap();
    let p = dir.path().join("allow.toml");
    std::fs::write(&p, "[[allow]]\nname = \"x\"\n").unwrap();
    let mut c = Controller::start(
        support::bin(),
        &p,
        &["--docker-host", "unix:///nonexistent/docker.sock"],
        &[("DOCKWARDEN_SCOPE", "")],
    );
    c.wait_log(
        &["Docker Engine unreachable", "attempt=2"],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(c.still_running(), "{}", c.log_text());
    assert!(
        c.log_text().contains("scope=\"every container\""),
        "an empty DOCKWARDEN_SCOPE means unscoped: {}",
        c.log_text()
    );

    let url = format!("http://127.0.0.1:{}/healthz", c.metrics);
    let (code, text) = output(cmd().args(["healthcheck", "--url", &url]));
    assert_eq!(code, 0, "{text}");
    let body = testkit::http::get_port(c.metrics, "/healthz").await.unwrap().body;
    assert!(body.contains("\"synced\":false"), "{body}");
    drop(c);
    let (code, text) = output(cmd().args(["healthcheck", "--url", &url]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("unhealthy"), "{text}");
}
