//! Host power on the event path (issue 17), against the shared engine: every power a
//! container can start with here, asked the way the Docker CLI asks it, is killed when the
//! rule that matches the container does not grant it, and runs untouched with exactly the
//! grant; the edges (a read-only grant, a directory above, the engine's socket, another
//! capability) are killed whatever is near; audit mode lets each run and logs the would-be
//! kill naming the power; the `restricted` profile asks for a non-root user,
//! no-new-privileges and dropped capabilities.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::bin;
use support::power::{CASES, catch_all_rule, policy, remove_volumes, rule_of, run_args, setup};
use testkit::engines::docker_cli;
use testkit::{Fixture, SLEEPER_IMAGE, eventually};

const T: Duration = Duration::from_secs(20);

fn cli(args: &[String]) -> anyhow::Result<String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_cli(&a)
}

fn state(name: &str) -> String {
    docker_cli(&["inspect", "-f", "{{.State.Status}}", name]).unwrap_or_default()
}

/// Removes the scope's volumes when the test ends, pass or fail.
struct Volumes(String);

impl Drop for Volumes {
    fn drop(&mut self) {
        testkit::remove_containers_by_prefix(&self.0, None);
        remove_volumes(&self.0, docker_cli);
    }
}

/// Sets up the volumes and the volumes-from source, then runs every case's `-deny`
/// container (the catch-all rule matches it and grants nothing) and, where a grant is
/// enough, its `-ok` container (exactly the grant), and each edge's `-edge` container.
fn run_all(fx: &Fixture) -> Vec<(String, &'static support::power::Case, bool)> {
    let p = fx.scope.id.clone();
    let label = fx.scope.selector();
    for a in setup(&p, &label, SLEEPER_IMAGE) {
        cli(&a).unwrap();
    }
    let mut ran = Vec::new();
    for c in CASES.iter().filter(|c| c.starts) {
        let deny = format!("{p}-{}-deny", c.key);
        cli(&run_args(c, &p, &deny, &label, SLEEPER_IMAGE)).unwrap();
        ran.push((deny, c, false));
        let (suffix, allowed) = if c.grantable {
            ("ok", true)
        } else {
            ("edge", false)
        };
        let other = format!("{p}-{}-{suffix}", c.key);
        cli(&run_args(c, &p, &other, &label, SLEEPER_IMAGE)).unwrap();
        ran.push((other, c, allowed));
    }
    ran
}

#[tokio::test]
async fn each_power_is_killed_without_its_grant_and_runs_with_exactly_it() {
    let Some(fx) = Fixture::new().await else { return };
    let _v = Volumes(fx.scope.id.clone());
    let p = fx.scope.id.clone();
    let c = fx.controller(bin(), &policy(&p, ""), &[]).await;
    let ran = run_all(&fx);
    for (name, case, allowed) in &ran {
        if *allowed {
            continue;
        }
        eventually(T, &format!("{name} killed"), || async {
            (state(name) == "exited").then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
        let line = c
            .wait_log(&["decision", &format!("container={name}"), "result=ok"], T)
            .await
            .unwrap();
        let rule = if name.ends_with("-edge") {
            rule_of(case.key)
        } else {
            catch_all_rule()
        };
        assert!(
            line.contains(case.power)
                && line.contains(&format!("allow[{rule}] matches it but does not grant")),
            "{name}: the denial names the power and the rule: {line}"
        );
    }
    // Allowed ones were never touched: they run, and no line acted on them.
    for (name, _, allowed) in &ran {
        if *allowed {
            assert_eq!(state(name), "running", "{name}\n{}", c.log_text());
            assert_eq!(
                c.count_log(&["decision", &format!("container={name}"), "verdict=deny"]),
                0,
                "{name} was judged denied:\n{}",
                c.log_text()
            );
        }
    }
    // A volume created to bind the host, used by a container the policy matches: killed.
    assert!(
        c.count_log(&["decision", &format!("container={p}-vol-deny"), "result=ok"]) >= 1,
        "{}",
        c.log_text()
    );
}

#[tokio::test]
async fn audit_mode_lets_each_power_run_and_logs_the_kill_it_would_make() {
    let Some(fx) = Fixture::new().await else { return };
    let _v = Volumes(fx.scope.id.clone());
    let p = fx.scope.id.clone();
    let c = fx.controller(bin(), &policy(&p, "mode = \"audit\""), &[]).await;
    let ran = run_all(&fx);
    for (name, case, allowed) in &ran {
        if *allowed {
            continue;
        }
        let line = support::audit_decision(&c, name, T).await;
        assert!(line.contains(case.power), "{name}: {line}");
    }
    for (name, _, _) in &ran {
        assert_eq!(state(name), "running", "audit mode touched {name}");
    }
}

#[tokio::test]
async fn the_restricted_profile_wants_a_non_root_user_no_new_privileges_and_dropped_capabilities() {
    let Some(fx) = Fixture::new().await else { return };
    let p = fx.scope.id.clone();
    let policy = format!(
        "profile = \"restricted\"\n[[allow]]\nname = \"{p}-root-ok\"\nrun_as_root = true\nallow_privilege_escalation = true\n[[allow]]\nname = \"{p}-*\"\n"
    );
    let c = fx.controller(bin(), &policy, &[]).await;
    let label = fx.scope.selector();
    let run = |name: &str, extra: &[&str]| {
        let mut a = vec![
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &label,
            "--network",
            "none",
        ];
        a.extend_from_slice(extra);
        a.push(SLEEPER_IMAGE);
        docker_cli(&a).unwrap()
    };
    let hardened = [
        "--user",
        "1000:1000",
        "--security-opt",
        "no-new-privileges",
        "--cap-drop",
        "ALL",
    ];
    let cases: [(&str, Vec<&str>, Option<&str>); 5] = [
        (
            "as-root",
            vec!["--security-opt", "no-new-privileges", "--cap-drop", "ALL"],
            Some("runs as root"),
        ),
        (
            "escalates",
            vec!["--user", "1000", "--cap-drop", "ALL"],
            Some("no-new-privileges"),
        ),
        (
            "keeps-caps",
            vec!["--user", "1000", "--security-opt", "no-new-privileges"],
            Some("keeps capability"),
        ),
        ("hardened", hardened.to_vec(), None),
        ("root-ok", vec!["--cap-drop", "ALL"], None),
    ];
    for (suffix, extra, _) in &cases {
        run(&format!("{p}-{suffix}"), extra);
    }
    for (suffix, _, denial) in &cases {
        let name = format!("{p}-{suffix}");
        match denial {
            Some(power) => {
                let line = c
                    .wait_log(&["decision", &format!("container={name}"), "result=ok"], T)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
                assert!(line.contains(power), "{name}: {line}");
                assert_eq!(state(&name), "exited");
            }
            None => {
                c.wait_log(&["decision", &format!("container={name}"), "verdict=allow"], T)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_text()));
                assert_eq!(state(&name), "running", "{name}");
            }
        }
    }
}
