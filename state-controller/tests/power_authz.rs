//! Host power at the authorization plugin (issue 17), on a private engine started with
//! `--authorization-plugin`: every power of the shared cases is refused before a container
//! exists when the matching rule does not grant it, and runs with exactly the grant;
//! `--privileged` and `exec --privileged` (which cannot start on this machine) are proven by
//! the refusal; requests built to slip past (every spelling the engine accepts) are all
//! refused; audit mode lets each through and logs the refusal it would make.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::authz::{Guarded, JSON};
use support::power::{CASES, catch_all_rule, policy, remove_volumes, rule_of, run_args, setup};
use testkit::SLEEPER_IMAGE;

/// The case's CLI arguments, run on the guarded engine.
fn run(g: &Guarded, args: &[String]) -> Result<String, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    g.engine.cli(&a).map_err(|e| e.to_string())
}

fn prefix(g: &Guarded) -> String {
    g.fx.scope.id.clone()
}

/// What a guarded engine starts with: the scope's id is only known once the fixture exists,
/// so the cases' policy is written right after ([`apply`]).
const NOTHING: &str = "[[allow]]\nname = \"dwtest-nothing-yet\"\n";

/// Writes `text` as the policy and waits until it is generation `generation`.
async fn apply(g: &Guarded, text: &str, generation: u64) {
    g.fx.policy(text);
    g.controller
        .wait_log(
            &["policy reloaded", &format!("generation={generation}")],
            support::authz::T,
        )
        .await
        .unwrap();
}

/// Sets up the volumes and the volumes-from source on the private engine.
fn set_up(g: &Guarded) {
    let p = prefix(g);
    for a in setup(&p, &g.fx.scope.selector(), SLEEPER_IMAGE) {
        run(g, &a).unwrap();
    }
}

#[tokio::test]
async fn each_power_is_refused_without_its_grant_and_runs_with_exactly_it() {
    let Some(g) = Guarded::start("power-authz", NOTHING).await else {
        return;
    };
    let p = prefix(&g);
    apply(&g, &policy(&p, ""), 2).await;
    set_up(&g);
    let label = g.fx.scope.selector();
    for c in CASES {
        let deny = format!("{p}-{}-deny", c.key);
        let err = run(&g, &run_args(c, &p, &deny, &label, SLEEPER_IMAGE)).unwrap_err();
        assert!(
            err.contains("authorization denied")
                && err.contains(c.power)
                && err.contains(&format!(
                    "allow[{}] matches it but does not grant",
                    catch_all_rule()
                )),
            "{deny}: {err}"
        );
        assert!(!g.exists(&deny), "{deny} exists");
        if c.grantable && !c.starts {
            // Granted, the engine tries and fails for its own reason, not the plugin's.
            let ok = format!("{p}-{}-ok", c.key);
            if let Err(e) = run(&g, &run_args(c, &p, &ok, &label, SLEEPER_IMAGE)) {
                assert!(
                    !e.contains("authorization denied"),
                    "{ok}: granted, yet refused: {e}"
                );
            }
        } else if c.grantable {
            let ok = format!("{p}-{}-ok", c.key);
            run(&g, &run_args(c, &p, &ok, &label, SLEEPER_IMAGE)).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(g.state(&ok), "running", "{ok}");
        } else {
            let edge = format!("{p}-{}-edge", c.key);
            let err = run(&g, &run_args(c, &p, &edge, &label, SLEEPER_IMAGE)).unwrap_err();
            assert!(
                err.contains(c.power) && err.contains(&format!("allow[{}]", rule_of(c.key))),
                "{edge}: a grant near the power is not it: {err}"
            );
            assert!(!g.exists(&edge));
        }
    }
    // --privileged cannot start on this machine: the plugin's refusal is the proof, and with
    // the grant the engine tries (and fails for its own reason, not the plugin's).
    let with_priv = format!(
        "{}[[allow]]\nname = \"{p}-priv-ok\"\nprivileged = true\n",
        policy(&p, "")
    );
    apply(&g, &with_priv, 3).await;
    let priv_deny = format!("{p}-priv-deny");
    let err = g
        .run(&[
            "--name",
            &priv_deny,
            "--label",
            &label,
            "--privileged",
            SLEEPER_IMAGE,
        ])
        .unwrap_err();
    assert!(
        err.contains("authorization denied") && err.contains("privileged"),
        "{err}"
    );
    assert!(!g.exists(&priv_deny));
    let priv_ok = format!("{p}-priv-ok");
    if let Err(e) = g.run(&[
        "--name",
        &priv_ok,
        "--label",
        &label,
        "--privileged",
        SLEEPER_IMAGE,
    ]) {
        assert!(!e.contains("authorization denied"), "granted, yet refused: {e}");
    }
    // exec --privileged into an allowed container that asks nothing: the rule that allows
    // the container must grant it.
    let plain = format!("{p}-plain");
    g.run(&["--name", &plain, "--label", &label, SLEEPER_IMAGE])
        .unwrap();
    let err = g
        .engine
        .cli(&["exec", "--privileged", &plain, "/dw-sleeper", "0"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("authorization denied") && err.contains("privileged"),
        "{err}"
    );
    assert!(
        g.controller
            .count_log(&["decision", "result=refused", "trigger=\"authz exec\""])
            >= 1
    );
    remove_volumes(&p, |a| g.engine.cli(a));
}

#[tokio::test]
async fn requests_built_to_slip_power_past_are_all_refused() {
    let Some(g) = Guarded::start("power-raw", NOTHING).await else {
        return;
    };
    let p = prefix(&g);
    apply(&g, &policy(&p, ""), 2).await;
    set_up(&g);
    let create = |hc: &str| format!("{{\"Image\":\"{SLEEPER_IMAGE}\",{hc}}}");
    let cases: Vec<(&str, String)> = vec![
        (
            "lower-case nested keys",
            create(r#""hostconfig":{"binds":["/:/h"]}"#),
        ),
        ("upper-case keys", create(r#""HOSTCONFIG":{"PIDMODE":"host"}"#)),
        (
            "Go's long-s folding",
            create("\"Ho\u{017f}tConfig\":{\"Privileged\":true}"),
        ),
        (
            "a repeated HostConfig",
            create(r#""HostConfig":{"PidMode":"host"},"HostConfig":{}"#),
        ),
        (
            "Mounts instead of Binds",
            create(r#""HostConfig":{"Mounts":[{"Type":"bind","Source":"/","Target":"/h"}]}"#),
        ),
        (
            "a dot-dot path",
            create(r#""HostConfig":{"Binds":["/etc/..:/h"]}"#),
        ),
        ("a double slash", create(r#""HostConfig":{"Binds":["//:/h"]}"#)),
        (
            "a trailing slash",
            create(r#""HostConfig":{"Binds":["/etc/:/h"]}"#),
        ),
        (
            "the socket by /run",
            create(r#""HostConfig":{"Binds":["/run/docker.sock:/s"]}"#),
        ),
        (
            "the socket by a detour",
            create(r#""HostConfig":{"Binds":["/var/run/../run/docker.sock:/s"]}"#),
        ),
        (
            "CAP_ prefix",
            create(r#""HostConfig":{"CapAdd":["CAP_SYS_ADMIN"]}"#),
        ),
        (
            "lower-case capability",
            create(r#""HostConfig":{"CapAdd":["sys_admin"]}"#),
        ),
        ("lower-case all", create(r#""HostConfig":{"CapAdd":["all"]}"#)),
        (
            "a capability as a string",
            create(r#""HostConfig":{"CapAdd":"SYS_ADMIN"}"#),
        ),
        (
            "seccomp, old form",
            create(r#""HostConfig":{"SecurityOpt":["seccomp:unconfined"]}"#),
        ),
        (
            "apparmor, old form",
            create(r#""HostConfig":{"SecurityOpt":["apparmor:unconfined"]}"#),
        ),
        (
            "label, old form",
            create(r#""HostConfig":{"SecurityOpt":["label:disable"]}"#),
        ),
        (
            "inline volume options",
            create(&format!(
                r#""HostConfig":{{"Mounts":[{{"Type":"volume","Source":"{p}-raw-vol","Target":"/h","VolumeOptions":{{"DriverConfig":{{"Name":"local","Options":{{"type":"none","o":"bind","device":"/"}}}}}}}}]}}"#
            )),
        ),
        (
            "a named volume that binds the host",
            create(&format!(r#""HostConfig":{{"Binds":["{p}-etcvol:/h"]}}"#)),
        ),
        (
            "volumes from a container made before",
            create(&format!(r#""HostConfig":{{"VolumesFrom":["{p}-src"]}}"#)),
        ),
        ("top-level host config fields", create(r#""Binds":["/:/h"]"#)),
        (
            "host network by another case",
            create(r#""HostConfig":{"NetworkMode":"HOST"}"#),
        ),
        (
            "a device",
            create(
                r#""HostConfig":{"Devices":[{"PathOnHost":"/dev/fuse","PathInContainer":"/dev/fuse","CgroupPermissions":"rwm"}]}"#,
            ),
        ),
        (
            "an unsafe sysctl",
            create(r#""HostConfig":{"Sysctls":{"kernel.msgmax":"65536"}}"#),
        ),
    ];
    for (i, (what, body)) in cases.iter().enumerate() {
        let r = g
            .post(&format!("/v1.41/containers/create?name={p}-raw-{i}"), JSON, body)
            .await;
        assert_eq!(r.status, 403, "{what}: {} {}", r.status, r.body);
        eprintln!("{what}: refused: {}", r.body.trim());
    }
    let listed = g.engine.cli(&["ps", "-a", "--format", "{{.Names}}"]).unwrap();
    assert!(!listed.contains(&format!("{p}-raw-")), "created: {listed}");
    // A start on API 1.23 carries a HostConfig that Engine 20.10 applies: refused too.
    let honest = format!("{p}-legacy");
    g.engine
        .cli(&["create", "--name", &honest, "--network", "none", SLEEPER_IMAGE])
        .unwrap();
    let r = g
        .post(
            &format!("/v1.23/containers/{honest}/start"),
            JSON,
            r#"{"Binds":["/:/h"]}"#,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(g.state(&honest), "created", "it never ran");
    remove_volumes(&p, |a| g.engine.cli(a));
}

#[tokio::test]
async fn audit_mode_lets_each_power_through_and_logs_the_refusal_it_would_make() {
    let Some(g) = Guarded::start("power-audit", NOTHING).await else {
        return;
    };
    let p = prefix(&g);
    apply(&g, &policy(&p, "mode = \"audit\""), 2).await;
    set_up(&g);
    let label = g.fx.scope.selector();
    for c in CASES {
        let deny = format!("{p}-{}-deny", c.key);
        if let Err(e) = run(&g, &run_args(c, &p, &deny, &label, SLEEPER_IMAGE)) {
            // Let through; only a container that cannot start here fails (at its start).
            assert!(!c.starts && !e.contains("authorization denied"), "{deny}: {e}");
        }
        let line = g
            .controller
            .wait_log(
                &[
                    "decision",
                    &format!("container={deny}"),
                    "result=\"would refuse (audit mode)\"",
                ],
                support::authz::T,
            )
            .await
            .unwrap();
        assert!(line.contains(c.power), "{deny}: {line}");
    }
    remove_volumes(&p, |a| g.engine.cli(a));
}
