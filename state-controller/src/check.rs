//! `state-controller check`: validate a policy offline and, when Docker answers, show what
//! the controller would do to every container there now. Never acts.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use common::policy::Policy;

use crate::enforcer::{Decision, decide};

/// Exit code for an invalid or missing policy, shared with the controller's start-up.
pub const EXIT_BAD_POLICY: u8 = 2;

pub async fn run(path: &Path, docker_host: Option<&str>, scope: Option<&str>, offline: bool) -> ExitCode {
    let policy = match Policy::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("invalid policy: {e}");
            return ExitCode::from(EXIT_BAD_POLICY);
        }
    };
    println!(
        "{}: valid. mode={} action={} stop_timeout_secs={} rules={}",
        path.display(),
        policy.mode.as_str(),
        policy.action.as_str(),
        policy.stop_timeout.as_secs(),
        policy.rules.len()
    );
    for r in &policy.rules {
        println!("  {r}  (line {})", r.line);
    }
    if offline {
        return ExitCode::SUCCESS;
    }
    let docker =
        match tokio::time::timeout(Duration::from_secs(5), common::docker::connect(docker_host)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                println!("Docker not reachable ({e}): only the file was checked.");
                return ExitCode::SUCCESS;
            }
            Err(_) => {
                println!("Docker did not answer within 5 s: only the file was checked.");
                return ExitCode::SUCCESS;
            }
        };
    let containers = match common::informer::fetch_all(&docker, scope).await {
        Ok(c) => c,
        Err(e) => {
            println!("cannot list containers ({e}): only the file was checked.");
            return ExitCode::SUCCESS;
        }
    };
    // Run as `check` we are not inside the controller's container: spare by image only if
    // we do run inside one.
    let me = common::docker::identity(&docker).await;
    println!(
        "\n{:<32} {:<40} {:<10} {:<7} WOULD",
        "CONTAINER", "IMAGE", "STATE", "VERDICT"
    );
    let (mut denied, mut allowed) = (0, 0);
    for c in &containers {
        let (verdict, would) = match decide(&policy, c, &me) {
            Decision::NotLive => ("-".to_string(), "nothing (not running)".to_string()),
            Decision::Spare => ("spare".to_string(), "nothing (dockwarden itself)".to_string()),
            Decision::Allow(v) => {
                allowed += 1;
                ("allow".to_string(), format!("nothing: {}", v.reason))
            }
            Decision::Deny { verdict, act, audit } => {
                denied += 1;
                let what = match (act, audit) {
                    (_, true) => format!("log only (audit mode): {}", verdict.reason),
                    (Some(a), false) => format!("{}: {}", a.as_str(), verdict.reason),
                    (None, false) => format!("{} when it starts: {}", policy.action.as_str(), verdict.reason),
                };
                ("deny".to_string(), what)
            }
        };
        println!(
            "{:<32} {:<40} {:<10} {:<7} {}",
            c.name,
            c.image,
            c.state.as_str(),
            verdict,
            would
        );
    }
    println!(
        "\n{} containers: {allowed} allowed, {denied} denied.",
        containers.len()
    );
    ExitCode::SUCCESS
}
