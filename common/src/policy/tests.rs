//! The policy's unit tests: parsing, errors with positions, and judging.

use super::judge::hub_twin;
use super::parse::line_col;
use super::*;
use crate::decision::{Decision, Identity, decide};
use crate::engine::container::Container;
use crate::engine::container::State;
use std::time::Duration;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn container(name: &str, image: &str) -> Container {
    Container {
        id: "c0ffee".into(),
        name: name.into(),
        image: image.into(),
        image_id: format!("sha256:{}", "f".repeat(64)),
        state: State::Running,
        ..Default::default()
    }
}

fn policy(rules: &str) -> Policy {
    Policy::parse(rules, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    match Policy::parse(text, "allowlist.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn allowed(p: &Policy, c: &Container) -> bool {
    evaluate(p, c).allowed()
}

/// The one decision, for a process that is no container's (nothing spared).
fn evaluate(p: &Policy, c: &Container) -> Decision {
    decide(p, c, &Identity::default())
}

#[test]
fn design_example_parses_and_matches() {
    let p = policy(&format!(
        r#"
mode = "enforce"
action = "kill"
stop_timeout_secs = 10

[[allow]]
name = "web-*"
[[allow]]
image = "nginx:*"
[[allow]]
image = "redis@sha256:{HEX}"
[[allow]]
labels = {{ "com.example.team" = "platform" }}
"#
    ));
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.action, Action::Kill);
    assert_eq!(p.stop_timeout, Duration::from_secs(10));
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[0].line, 6);

    let v = evaluate(&p, &container("web-1", "busybox"));
    assert_eq!((v.allowed(), v.rule()), (true, Some(1)));
    assert!(v.to_string().contains("name=\"web-*\""), "{v}");
    // nginx:* matches nginx:1.27, nginx:latest, docker.io/library/nginx:1.27
    for img in [
        "nginx:1.27",
        "nginx:latest",
        "nginx",
        "docker.io/library/nginx:1.27",
        "library/nginx:1",
    ] {
        assert_eq!(evaluate(&p, &container("x", img)).rule(), Some(2), "{img}");
    }
    assert!(!allowed(&p, &container("x", "nginxx:1")));
    assert!(!allowed(&p, &container("x", "ghcr.io/nginx:1")));
    assert!(!allowed(&p, &container("x", "evil/nginx:1")));
    // digest pin matches the given digest and the image's repo digests
    assert!(allowed(&p, &container("x", &format!("redis@sha256:{HEX}"))));
    let mut tagged = container("x", "redis:7");
    assert!(!allowed(&p, &tagged));
    tagged.image_digests = vec![format!("redis@sha256:{HEX}")];
    assert_eq!(evaluate(&p, &tagged).rule(), Some(3));
    let mut wrong = container("x", "redis:7");
    wrong.image_digests = vec![format!("redis@sha256:{}", "e".repeat(64))];
    assert!(!allowed(&p, &wrong));
    // labels
    let mut l = container("x", "busybox");
    l.labels.insert("com.example.team".into(), "platform".into());
    assert_eq!(evaluate(&p, &l).rule(), Some(4));
    l.labels.insert("com.example.team".into(), "platform2".into());
    assert!(!allowed(&p, &l));
    let v = evaluate(&p, &container("db", "postgres:16"));
    assert!(!v.allowed());
    assert_eq!(v.to_string(), "no [[allow]] rule matches");
}

#[test]
fn defaults_are_enforce_kill_ten_seconds() {
    let p = policy("[[allow]]\nname = \"a\"\n");
    assert_eq!(
        (p.mode, p.action, p.stop_timeout),
        (Mode::Enforce, Action::Kill, Duration::from_secs(10))
    );
    let p = policy("mode = \"audit\"\naction = \"remove\"\n[[allow]]\nname = \"a\"\n");
    assert_eq!((p.mode, p.action), (Mode::Audit, Action::Remove));
    assert_eq!(
        policy("action = \"stop\"\n[[allow]]\nname = \"a\"\n").action,
        Action::Stop
    );
}

#[test]
fn every_field_of_a_rule_must_match() {
    let p =
        policy("[[allow]]\nname = \"api-*\"\nimage = \"ghcr.io/org/api:*\"\nlabels = { tier = \"b*\" }\n");
    let mut c = container("api-1", "ghcr.io/org/api:v3");
    assert!(!allowed(&p, &c), "label missing");
    c.labels.insert("tier".into(), "backend".into());
    assert!(allowed(&p, &c));
    c.name = "web-1".into();
    assert!(!allowed(&p, &c), "name differs");
    c.name = "api-1".into();
    c.image = "ghcr.io/org/web:v3".into();
    assert!(!allowed(&p, &c), "image differs");
}

#[test]
fn no_tag_means_latest_on_both_sides() {
    let p = policy("[[allow]]\nimage = \"ghcr.io/org/app\"\n");
    assert!(allowed(&p, &container("x", "ghcr.io/org/app")));
    assert!(allowed(&p, &container("x", "ghcr.io/org/app:latest")));
    assert!(!allowed(&p, &container("x", "ghcr.io/org/app:v1")));
    let p = policy("[[allow]]\nimage = \"ghcr.io/org/api:*\"\n");
    assert!(allowed(&p, &container("x", "ghcr.io/org/api")));
}

#[test]
fn registry_ports_and_localhost() {
    let p = policy(
        "[[allow]]\nimage = \"localhost:5000/team/app\"\n[[allow]]\nimage = \"registry.local:5000/*:v?\"\n",
    );
    assert!(allowed(&p, &container("x", "localhost:5000/team/app")));
    assert!(allowed(&p, &container("x", "localhost:5000/team/app:latest")));
    assert!(!allowed(&p, &container("x", "localhost:5001/team/app")));
    assert!(!allowed(&p, &container("x", "team/app")));
    assert!(allowed(&p, &container("x", "registry.local:5000/a/b:v1")));
    assert!(!allowed(&p, &container("x", "registry.local:5000/a/b:v10")));
}

#[test]
fn wildcard_first_component_is_matched_as_written() {
    let p = policy("[[allow]]\nimage = \"*:*\"\n");
    assert!(allowed(&p, &container("x", "anything/at/all:1")));
    assert!(
        !allowed(&p, &container("x", &format!("redis@sha256:{HEX}"))),
        "digest-only refs have no tag"
    );
    let p = policy("[[allow]]\nimage = \"*/library/busybox:*\"\n");
    assert!(allowed(&p, &container("x", "busybox:1")));
}

#[test]
fn image_ids_never_match_as_names_but_their_tags_do() {
    let p = policy("[[allow]]\nimage = \"nginx:*\"\n");
    let mut c = container("x", &format!("sha256:{HEX}"));
    c.image_id = format!("sha256:{HEX}");
    assert!(!allowed(&p, &c));
    c.image_tags = vec!["nginx:1.27".into()];
    assert!(allowed(&p, &c));
    // A short ID (any length, as `docker run 2149f0` takes it) that the engine resolved
    // by ID prefix is judged by the image's tags, never as library/<hex>:latest ...
    let mut short = container("x", "0123456789ab");
    short.image_id = format!("sha256:{HEX}");
    let star = policy("[[allow]]\nimage = \"*\"\n");
    assert!(!allowed(&star, &short));
    for prefix in ["0123", "01234567", "sha256:0123"] {
        short.image = prefix.into();
        short.image_tags = vec!["nginx:1.27".into()];
        assert!(
            allowed(&p, &short),
            "{prefix}: allowed by the tag of the image it names"
        );
        short.image_tags.clear();
        assert!(!allowed(&p, &short), "{prefix}");
    }
    // ... but a hex string that named an image (no ID has that prefix) is a name.
    let mut named = container("x", "cafe");
    named.image_id = format!("sha256:{HEX}");
    assert!(allowed(&policy("[[allow]]\nimage = \"cafe\"\n"), &named));
    // Not resolved yet (from an event): undecidable, never guessed.
    named.source = crate::engine::container::Source::Event;
    assert!(matches!(evaluate(&star, &named), Decision::Undecided(_)));
}

#[test]
fn a_digest_beside_a_tag_is_judged_by_the_digest_the_engine_runs() {
    let p = policy(&format!(
        "[[allow]]\nimage = \"nginx:1.27\"\n[[allow]]\nimage = \"redis@sha256:{HEX}\"\n"
    ));
    let evil = format!("nginx:1.27@sha256:{}", "e".repeat(64));
    let mut c = container("x", &evil);
    c.image_tags = vec![];
    assert!(!allowed(&p, &c), "the tag written beside a digest means nothing");
    c.image_tags = vec!["nginx:1.27".into()];
    assert!(
        allowed(&p, &c),
        "the image the digest names is tagged nginx:1.27 here"
    );
    let c = container("x", &format!("redis:7@sha256:{HEX}"));
    assert_eq!(evaluate(&p, &c).rule(), Some(2));
    let mut unresolved = container("x", &evil);
    unresolved.source = crate::engine::container::Source::Event;
    assert!(matches!(evaluate(&p, &unresolved), Decision::Undecided(_)));
}

#[test]
fn partial_facts_decide_only_what_full_facts_could_not_change() {
    let p = policy(
        "[[allow]]\nname = \"web-*\"\n[[allow]]\nlabels = { name = \"x\" }\n[[allow]]\nimage = \"nginx:*\"\n",
    );
    let mut ev = container("web-1", "busybox");
    ev.source = crate::engine::container::Source::Event;
    ev.hidden_labels = &["name", "image"];
    assert_eq!(evaluate(&p, &ev), evaluate(&p, &container("web-1", "b")));
    ev.name = "db".into();
    assert!(
        matches!(evaluate(&p, &ev), Decision::Undecided(_)),
        "rule 2 reads a label the event hides"
    );
    ev.hidden_labels = &[];
    let d = evaluate(&p, &ev);
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    assert_eq!(d.to_string(), NO_RULE);
    ev.labels_cut = true;
    assert!(
        matches!(evaluate(&p, &ev), Decision::Undecided(_)),
        "a label left out of a bounded copy"
    );
    ev.labels.insert("name".into(), "x".into());
    assert_eq!(evaluate(&p, &ev).rule(), Some(2));
}

#[test]
fn image_id_pin() {
    let p = policy(&format!("[[allow]]\nimage = \"sha256:{}\"\n", "f".repeat(64)));
    assert!(allowed(&p, &container("x", "whatever:1")));
    let p = policy(&format!("[[allow]]\nimage = \"sha256:{HEX}\"\n"));
    assert!(!allowed(&p, &container("x", "whatever:1")));
}

#[test]
fn globs_are_whole_string_and_case_sensitive() {
    let p =
        policy("[[allow]]\nname = \"web-?\"\n[[allow]]\nname = \"db-[0-9]\"\n[[allow]]\nname = \"x[!a]\"\n");
    assert!(allowed(&p, &container("web-1", "i")));
    assert!(!allowed(&p, &container("web-12", "i")));
    assert!(!allowed(&p, &container("my-web-1", "i")));
    assert!(!allowed(&p, &container("WEB-1", "i")));
    assert!(allowed(&p, &container("db-7", "i")));
    assert!(!allowed(&p, &container("db-x", "i")));
    assert!(allowed(&p, &container("xb", "i")));
    assert!(!allowed(&p, &container("xa", "i")));
}

#[test]
fn errors_name_file_line_and_column() {
    let e = error("[[allow]]\nname = \"web-*\"\ncolour = \"red\"\n");
    assert!(e.starts_with("allowlist.toml:3:1: "), "{e}");
    assert!(e.contains("colour"), "{e}");

    let e = error("[[allow]]\nname = \"web-[\"\n");
    assert!(
        e.starts_with("allowlist.toml:2:8: allow[1].name: bad glob"),
        "{e}"
    );

    let e = error("mode = \"enforce\"\n[[allow]]\n\n[[allow]]\nname = \"x\"\n");
    assert!(
        e.starts_with("allowlist.toml:2:1: allow[1]: a rule needs at least one"),
        "{e}"
    );

    let e = error("[[allow]]\nlabels = {}\n");
    assert!(e.contains("a rule needs at least one"), "{e}");

    let e = error(&format!("[[allow]]\nimage = \"redis@sha256:{}\"\n", &HEX[..63]));
    assert!(
        e.starts_with("allowlist.toml:2:9: allow[1].image: a digest must be"),
        "{e}"
    );

    let e = error("[[allow]]\nimage = \"Nginx:1\"\n");
    assert!(e.contains("allow[1].image"), "{e}");

    let e = error(
        "[[allow]]\nimage = \"red*@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n",
    );
    assert!(e.contains("no wildcards before '@'"), "{e}");

    let e = error("mode = \"loud\"\n[[allow]]\nname = \"a\"\n");
    assert!(e.starts_with("allowlist.toml:1:8: "), "{e}");
    assert!(e.contains("enforce"), "{e}");

    let e = error("action = \"nuke\"\n[[allow]]\nname = \"a\"\n");
    assert!(e.contains("kill"), "{e}");

    let e = error("stop_timeout_secs = 9999\n[[allow]]\nname = \"a\"\n");
    assert!(
        e.starts_with("allowlist.toml:1:21: stop_timeout_secs must be at most"),
        "{e}"
    );

    let e = error("[[allow]]\nname = \"/web\"\n");
    assert!(e.contains("leading '/'"), "{e}");

    let e = error("[[allow]]\nlabels = { tier = \"[\" }\n");
    assert!(e.contains("allow[1].labels.tier: bad glob"), "{e}");
}

#[test]
fn bad_toml_empty_files_and_no_rules_are_refused() {
    assert!(error("[[allow]\nname = 1").starts_with("allowlist.toml:1:"));
    assert!(error("").contains("empty"));
    assert!(error("  \n# only a comment\n").contains("no [[allow]] rule"));
    assert!(error("mode = \"enforce\"\n").contains("no [[allow]] rule"));
    assert!(error("[[allow]]\nname = 5\n").starts_with("allowlist.toml:2:8:"));
    assert!(error("[allow]\nname = \"a\"\n").starts_with("allowlist.toml:"));
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
    assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
    assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
    assert_eq!(line_col("ab\ncdé\nx", 9), (3, 2));
    assert_eq!(line_col("ab", 99), (1, 3));
}

/// How rules read Podman's names for local images (docs/podman.md): `localhost/` is a
/// registry of its own, not Docker Hub.
#[test]
fn podman_local_images_are_localhost_not_docker_hub() {
    let p = policy(
        r#"
[[allow]]
image = "localhost/app:*"
[[allow]]
name = "hub-*"
image = "tool:*"
[[allow]]
image = "*/sidecar:*"
"#,
    );
    // As Podman names an image it built or imported (`podman build -t app`).
    assert!(allowed(&p, &container("x", "localhost/app:latest")));
    assert!(allowed(&p, &container("x", "localhost/app")));
    // Docker Hub's app is another repository, and so is another local path.
    assert!(!allowed(&p, &container("x", "app:1")));
    assert!(!allowed(&p, &container("x", "docker.io/library/app:1")));
    assert!(!allowed(&p, &container("x", "localhost/team/app:1")));
    // A glob over the registry matches both, by choice.
    assert!(allowed(&p, &container("x", "localhost/sidecar:v1")));
    assert!(allowed(&p, &container("x", "docker.io/library/sidecar:v1")));

    // A rule for the Hub name never allows the local image, and the reason says how to
    // write the rule that would.
    let v = evaluate(&p, &container("hub-1", "localhost/tool:2"));
    assert!(!v.allowed());
    assert!(v.to_string().starts_with(NO_RULE), "{v}");
    assert!(
        v.to_string().contains("allow[2]")
            && v.to_string().contains("docker.io/library/tool:2")
            && v.to_string().contains(r#"write image = "localhost/tool:*""#),
        "{v}"
    );
    // ...only when that rule's other fields hold too.
    let v = evaluate(&p, &container("other", "localhost/tool:2"));
    assert_eq!(v.to_string(), NO_RULE);
    assert_eq!(
        evaluate(&p, &container("hub-1", "ghcr.io/x/tool:2")).to_string(),
        NO_RULE
    );
}

#[test]
fn hub_twins_of_podman_names() {
    assert_eq!(
        hub_twin("localhost/app:1").as_deref(),
        Some("docker.io/library/app:1")
    );
    assert_eq!(
        hub_twin("localhost/app").as_deref(),
        Some("docker.io/library/app:latest")
    );
    assert_eq!(
        hub_twin("localhost/team/app:v").as_deref(),
        Some("docker.io/team/app:v")
    );
    assert_eq!(hub_twin("app:1"), None);
    assert_eq!(hub_twin("localhost:5000/app:1"), None);
    assert_eq!(hub_twin(&format!("localhost/app@sha256:{HEX}")), None);
}

// ---------------------------------------------------------------------------------------
// Host power: profile, grant keys, engine plugins

#[test]
fn the_profile_is_baseline_unless_given() {
    assert_eq!(policy("[[allow]]\nname = \"a\"\n").profile, Profile::Baseline);
    for (text, want) in [
        ("baseline", Profile::Baseline),
        ("restricted", Profile::Restricted),
        ("privileged", Profile::Privileged),
    ] {
        let p = policy(&format!("profile = \"{text}\"\n[[allow]]\nname = \"a\"\n"));
        assert_eq!(p.profile, want);
    }
    let e = error("profile = \"strict\"\n[[allow]]\nname = \"a\"\n");
    assert!(e.starts_with("allowlist.toml:1:11: "), "{e}");
    assert!(e.contains("baseline"), "{e}");
    // Rules without grant keys grant nothing.
    assert!(policy("[[allow]]\nname = \"a\"\n").rules[0].grants.is_empty());
}

#[test]
fn grant_keys_compile_into_grants() {
    let p = policy(
        r#"
[[allow]]
image = "app:*"
privileged = true
host_namespaces = ["pid", "network"]
mounts = ["/proc:ro", "/var/log/**", "/var/run/docker.sock"]
capabilities = ["net_admin", "CAP_SYS_PTRACE"]
devices = ["/dev/fuse", "gpu", "cdi:nvidia.com/gpu=*", "c 10:229 rwm"]
unconfined = ["seccomp", "apparmor"]
sysctls = ["net.core.*"]
[[allow]]
name = "plain"
"#,
    );
    let g = &p.rules[0].grants;
    assert_eq!(
        g.to_string(),
        "privileged = true, host_namespaces = [\"pid\", \"network\"], mounts = [\"/proc:ro\", \"/var/log/**\", \"/var/run/docker.sock\"], capabilities = [\"NET_ADMIN\", \"SYS_PTRACE\"], devices = [\"/dev/fuse\", \"gpu\", \"cdi:nvidia.com/gpu=*\", \"c 10:229 rwm\"], unconfined = [\"seccomp\", \"apparmor\"], sysctls = [\"net.core.*\"]"
    );
    assert!(p.rules[1].grants.is_empty());
    use crate::power::{Ask, Namespace};
    assert!(g.grants(&Ask::HostNamespace(Namespace::Pid)));
    assert!(g.grants(&Ask::Capability("NET_ADMIN".into())));
    assert!(!g.grants(&Ask::Capability("SYS_ADMIN".into())));
    let r = policy(
        "profile = \"restricted\"\n[[allow]]\nname = \"a\"\nrun_as_root = true\nallow_privilege_escalation = true\n",
    );
    assert!(r.rules[0].grants.grants(&Ask::PrivilegeEscalation));
    assert!(r.rules[0].grants.grants(&Ask::RunAsRoot { user: "0".into() }));
}

#[test]
fn bad_grants_are_refused_with_their_position() {
    for (text, want) in [
        (
            "[[allow]]\nname = \"a\"\nmounts = [\"/ok\", \"var/log\"]\n",
            "allowlist.toml:3:18: allow[1].mounts[2]: \"var/log\": a host path must be absolute",
        ),
        (
            "[[allow]]\nname = \"a\"\n[[allow]]\nname = \"b\"\nmounts = [\"/var/log/\"]\n",
            "allowlist.toml:5:11: allow[2].mounts[1]: \"/var/log/\": write the path clean, as \"/var/log\"",
        ),
        (
            "[[allow]]\nname = \"a\"\nmounts = [\"/srv/[x\"]\n",
            "allowlist.toml:3:11: allow[1].mounts[1]: bad glob",
        ),
        (
            "[[allow]]\nname = \"a\"\nhost_namespaces = [\"net\"]\n",
            "allowlist.toml:3:20: allow[1].host_namespaces[1]: unknown namespace \"net\" (one of pid, network, ipc, uts, userns, cgroup)",
        ),
        (
            "[[allow]]\nname = \"a\"\ncapabilities = [\"SYS_ADMN\"]\n",
            "allowlist.toml:3:17: allow[1].capabilities[1]: unknown capability \"SYS_ADMN\"",
        ),
        (
            "[[allow]]\nname = \"a\"\nunconfined = [\"selinux\"]\n",
            "allowlist.toml:3:15: allow[1].unconfined[1]: unknown confinement \"selinux\"",
        ),
        (
            "[[allow]]\nname = \"a\"\ndevices = [\"fuse\"]\n",
            "allowlist.toml:3:12: allow[1].devices[1]: \"fuse\": a device grant is",
        ),
        (
            "[[allow]]\nname = \"a\"\nsysctls = [\"kernel msgmax\"]\n",
            "allowlist.toml:3:12: allow[1].sysctls[1]: \"kernel msgmax\" is not a sysctl name",
        ),
        (
            "[[allow]]\nname = \"a\"\nprivileged = \"yes\"\n",
            "allowlist.toml:3:14: ",
        ),
        (
            "[[allow]]\nname = \"a\"\nmounts = \"/var/log\"\n",
            "allowlist.toml:3:10: ",
        ),
        (
            "[[allow]]\nname = \"a\"\nmount = [\"/var/log\"]\n",
            "allowlist.toml:3:1: ",
        ),
    ] {
        let e = error(text);
        assert!(e.starts_with(want), "{e}\nwanted: {want}");
    }
    // A rule of grants alone would allow every container that asks no more.
    let e = error("[[allow]]\nprivileged = true\n");
    assert!(
        e.contains("a rule needs at least one of name, image, labels"),
        "{e}"
    );
}

#[test]
fn grant_keys_mean_nothing_where_the_profile_does_not_judge_them() {
    let e = error("profile = \"privileged\"\n[[allow]]\nname = \"a\"\nmounts = [\"/\"]\n");
    assert!(
        e.starts_with(
            "allowlist.toml:4:10: allow[1].mounts: grants mean nothing under profile = \"privileged\""
        ),
        "{e}"
    );
    let e = error("profile = \"privileged\"\n[[allow]]\nname = \"a\"\nprivileged = false\n");
    assert!(
        e.starts_with("allowlist.toml:4:14: allow[1].privileged: grants mean nothing"),
        "{e}"
    );
    let e = error("[[allow]]\nname = \"a\"\nrun_as_root = true\n");
    assert!(
        e.starts_with(
            "allowlist.toml:3:15: allow[1].run_as_root: only means something under profile = \"restricted\""
        ),
        "{e}"
    );
    let e = error("profile = \"baseline\"\n[[allow]]\nname = \"a\"\nallow_privilege_escalation = true\n");
    assert!(
        e.contains("allow[1].allow_privilege_escalation: only means something"),
        "{e}"
    );
    assert_eq!(
        policy("profile = \"privileged\"\n[[allow]]\nname = \"a\"\n").profile,
        Profile::Privileged
    );
}

#[test]
fn engine_plugins_are_judged_like_image_references() {
    let p = policy(&format!(
        "engine_plugins = [\"vieux/sshfs:*\", \"ghcr.io/org/vol@sha256:{HEX}\"]\n[[allow]]\nname = \"a\"\n"
    ));
    assert_eq!(
        p.engine_plugins(),
        ["vieux/sshfs:*", &format!("ghcr.io/org/vol@sha256:{HEX}")]
    );
    for allowed in ["vieux/sshfs", "vieux/sshfs:latest", "docker.io/vieux/sshfs:1.2"] {
        assert!(
            matches!(
                p.judge_engine_plugin(allowed),
                PluginJudgement::Allowed { entry: 1, .. }
            ),
            "{allowed}"
        );
    }
    assert!(matches!(
        p.judge_engine_plugin(&format!("ghcr.io/org/vol@sha256:{HEX}")),
        PluginJudgement::Allowed { entry: 2, .. }
    ));
    assert!(matches!(
        p.judge_engine_plugin(&format!("ghcr.io/org/vol:v1@sha256:{HEX}")),
        PluginJudgement::Allowed { entry: 2, .. }
    ));
    for denied in [
        "evil/sshfs:latest".to_string(),
        "ghcr.io/org/vol:v1".to_string(),
        format!("vieux/sshfs:latest@sha256:{}", "e".repeat(64)),
        "not a reference".to_string(),
    ] {
        assert!(
            !matches!(p.judge_engine_plugin(&denied), PluginJudgement::Allowed { .. }),
            "{denied}"
        );
    }
    let none = policy("[[allow]]\nname = \"a\"\n");
    assert_eq!(
        none.judge_engine_plugin("vieux/sshfs"),
        PluginJudgement::NotListed {
            plugin: "docker.io/vieux/sshfs:latest".into(),
            listed: false
        }
    );

    let e = error(&format!(
        "engine_plugins = [\"sha256:{HEX}\"]\n[[allow]]\nname = \"a\"\n"
    ));
    assert!(
        e.starts_with("allowlist.toml:1:19: engine_plugins[1]: an engine plugin is named by reference"),
        "{e}"
    );
    let e = error("engine_plugins = [\"ok/x:*\", \"Bad/x\"]\n[[allow]]\nname = \"a\"\n");
    assert!(e.starts_with("allowlist.toml:1:29: engine_plugins[2]: "), "{e}");
}
