//! Hot reload against the real engine: a rule added lets a new container live, a rule
//! removed kills what it allowed, invalid files are refused while the last good policy keeps
//! enforcing, every way a file gets replaced (one `>` write, rename-over, `sed -i`,
//! Kubernetes `..data` symlink swap) is picked up within a second, and a writer that pauses
//! mid-file never gets its prefix applied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use support::bin;
use testkit::wait::stays;
use testkit::{Controller, Fixture, Scope, Spec, eventually, write_atomic};

const T: Duration = Duration::from_secs(10);

fn allow(scope: &Scope, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("[[allow]]\nname = \"{}-{n}\"\n", scope.id))
        .collect()
}

async fn wait_generation(c: &Controller, generation: u64, within: Duration) -> Duration {
    let t0 = Instant::now();
    c.wait_log(&["policy reloaded", &format!("generation={generation}")], within)
        .await
        .unwrap();
    t0.elapsed()
}

#[tokio::test]
async fn added_rule_lets_a_container_live_and_removed_rule_kills() {
    let Some(fx) = Fixture::new().await else { return };
    let c = fx.controller(bin(), &allow(&fx.scope, &["a*"]), &[]).await;
    let path = fx.path("allow.toml");

    let a = fx.run(Spec::new("a1")).await;
    write_atomic(&path, &allow(&fx.scope, &["a*", "b*"]));
    wait_generation(&c, 2, T).await;
    let b = fx.run(Spec::new("b1")).await;
    c.wait_judged(&[&b], T).await;
    assert_eq!(
        fx.state(&b).await.as_deref(),
        Some("running"),
        "the added rule allows b1"
    );

    write_atomic(&path, &allow(&fx.scope, &["b*"]));
    wait_generation(&c, 3, T).await;
    fx.wait_state(&a, Some("exited"), T).await;
    assert_eq!(fx.state(&b).await.as_deref(), Some("running"));
    c.wait_log(
        &["new policy applied", "generation=3", "allowed=1", "denied=1"],
        T,
    )
    .await
    .unwrap();
    // What the line counts is what the engine shows.
    assert_eq!(fx.state(&a).await.as_deref(), Some("exited"));
    assert_eq!(fx.state(&b).await.as_deref(), Some("running"));
}

#[tokio::test]
async fn invalid_files_are_refused_and_the_last_good_policy_keeps_enforcing() {
    let Some(fx) = Fixture::new().await else { return };
    let c = fx.controller(bin(), &allow(&fx.scope, &["ok*"]), &[]).await;
    let path = fx.path("allow.toml");
    let ok = fx.run(Spec::new("ok-0")).await;

    let bad_files: [(&str, Option<&str>, &str); 5] = [
        ("bad TOML", Some("[[allow]\nname = \"x\""), "policy refused"),
        ("unknown key", Some("[[allow]]\nnmae = \"*\"\n"), "unknown field"),
        ("empty file", Some(""), "the policy is empty"),
        ("bad glob", Some("[[allow]]\nname = \"[\"\n"), "bad glob"),
        ("deleted file", None, "policy file unreadable"),
    ];
    for (i, (what, content, expect)) in bad_files.iter().enumerate() {
        let rejected_before = c
            .metric("dockwarden_policy_reloads_total{result=\"rejected\"}")
            .await;
        match content {
            Some(text) => write_atomic(&path, text),
            None => std::fs::remove_file(&path).unwrap(),
        }
        c.wait_log(&[expect], T)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        eventually(T, "the rejection to be counted", || async {
            (c.metric("dockwarden_policy_reloads_total{result=\"rejected\"}")
                .await
                > rejected_before)
                .then_some(())
        })
        .await
        .unwrap();
        // The last good policy still allows ok-* and denies everything else.
        let denied = fx.run(Spec::new(&format!("bad-{i}"))).await;
        let allowed = fx.run(Spec::new(&format!("ok-{}", i + 1))).await;
        fx.wait_state(&denied, Some("exited"), T).await;
        c.wait_judged(&[&allowed], T).await;
        assert_eq!(
            fx.state(&allowed).await.as_deref(),
            Some("running"),
            "{what}: allowed one killed"
        );
        assert_eq!(
            fx.state(&ok).await.as_deref(),
            Some("running"),
            "{what}: policy widened or emptied"
        );
    }
    assert!(
        c.count_log(&["policy reloaded"]) == 0,
        "no bad file was ever accepted:\n{}",
        c.log_text()
    );
    std::fs::write(&path, allow(&fx.scope, &["ok*", "new*"])).unwrap();
    wait_generation(&c, 2, T).await;
    // The good file is in force: what only it allows lives, and the old rule still holds.
    let new = fx.run(Spec::new("new-1")).await;
    c.wait_judged(&[&new], T).await;
    assert_eq!(fx.state(&new).await.as_deref(), Some("running"));
    assert_eq!(fx.state(&ok).await.as_deref(), Some("running"));
}

/// Sets up a Kubernetes-style ConfigMap directory: `allow.toml -> ..data/allow.toml`,
/// `..data -> ..<ts>`.
fn configmap_dir(dir: &Path, text: &str) {
    let ts = dir.join("..2026_11_24_00_00_00.000000001");
    std::fs::create_dir_all(&ts).unwrap();
    std::fs::write(ts.join("allow.toml"), text).unwrap();
    symlink(ts.file_name().unwrap(), dir.join("..data")).unwrap();
    symlink("..data/allow.toml", dir.join("allow.toml")).unwrap();
}

/// The kubelet's AtomicWriter update: new timestamped dir, `..data_tmp` symlink renamed
/// over `..data`, old dir removed.
fn configmap_update(dir: &Path, text: &str, n: u32) {
    let old = std::fs::read_link(dir.join("..data")).unwrap();
    let ts = format!("..2026_11_24_00_00_{n:02}.000000001");
    std::fs::create_dir_all(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("allow.toml"), text).unwrap();
    symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join(old)).unwrap();
}

#[tokio::test]
async fn every_way_of_replacing_the_file_is_picked_up_within_a_second() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let within = Duration::from_secs(1);

    // Plain directory: `>` in one write, `sed -i`, then an editor's rename-over.
    let c = fx.controller(bin(), &allow(scope, &["v1"]), &[]).await;
    let path = fx.path("allow.toml");
    std::fs::write(&path, allow(scope, &["v2"])).unwrap(); // truncate + write, same inode
    let in_place = wait_generation(&c, 2, within).await;
    let sed = std::process::Command::new("sed")
        .args(["-i", "s/-v2\"/-v2b\"/"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(sed.success());
    let sed = wait_generation(&c, 3, within).await;
    write_atomic(&path, &allow(scope, &["v3"]));
    let rename = wait_generation(&c, 4, within).await;
    // The policy in force is the last one written: v3 lives, v1 dies.
    let v3 = fx.run(Spec::new("v3")).await;
    let v1 = fx.run(Spec::new("v1")).await;
    fx.wait_state(&v1, Some("exited"), T).await;
    assert_eq!(fx.state(&v3).await.as_deref(), Some("running"));
    drop(c);

    // ConfigMap volume: the file is a symlink through ..data, swapped atomically.
    let cm = fx.path("cm");
    std::fs::create_dir(&cm).unwrap();
    configmap_dir(&cm, &allow(scope, &["v3"]));
    let c = Controller::start(
        bin(),
        &cm.join("allow.toml"),
        &["--scope", &scope.selector()],
        &[],
    );
    c.wait_synced().await;
    configmap_update(&cm, &allow(scope, &["v4"]), 2);
    let data_swap = wait_generation(&c, 2, within).await;
    fx.wait_state(&v3, Some("exited"), T).await;
    configmap_update(&cm, &allow(scope, &["v5"]), 3);
    let data_swap2 = wait_generation(&c, 3, within).await;
    // The last swap is in force: what only it allows lives.
    let v5 = fx.run(Spec::new("v5")).await;
    c.wait_judged(&[&v5], T).await;
    assert_eq!(fx.state(&v5).await.as_deref(), Some("running"));
    eprintln!(
        "reload latency: in-place {in_place:?}, sed -i {sed:?}, rename-over {rename:?}, ..data swap {data_swap:?} then {data_swap2:?}"
    );
}

#[tokio::test]
async fn a_writer_that_pauses_mid_file_never_gets_its_prefix_applied() {
    let Some(fx) = Fixture::new().await else { return };
    let c = fx
        .controller(bin(), &allow(&fx.scope, &["a*", "keep*"]), &[])
        .await;
    let path = fx.path("allow.toml");
    let keep = fx.run(Spec::new("keep-1")).await;

    // The new file adds a rule; its prefix up to the cut holds only rule 1, a valid policy
    // that would kill keep-1. The writer holds the file open across a pause.
    let new = allow(&fx.scope, &["a*", "keep*", "more*"]);
    let cut = new
        .find("[[allow]]\nname = \"")
        .and_then(|first| new[first + 1..].find("[[allow]]").map(|i| first + 1 + i))
        .unwrap();
    std::fs::write(fx.path("new.toml"), &new).unwrap();
    let script = format!(
        "{{ head -c {cut} new.toml; sleep 1.5; tail -c +{} new.toml; }} > allow.toml",
        cut + 1
    );
    let mut writer = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(fx.dir.path())
        .spawn()
        .unwrap();
    // Through the writer's pause nothing may happen to keep-1 (it would die within
    // milliseconds of a prefix applied): checked all along the pause.
    let kept = stays(Duration::from_millis(1300), "keep-1 running", || async {
        fx.state(&keep).await.as_deref() == Some("running")
    })
    .await;
    assert!(kept.is_ok(), "{kept:?}\n{}", c.log_text());
    assert!(writer.wait().unwrap().success());
    wait_generation(&c, 2, Duration::from_secs(2)).await;
    c.wait_log(&["new policy applied", "generation=2"], T)
        .await
        .unwrap();
    // Applied; and after it, no second reload or refusal (of a late read of the file) and
    // nothing done to keep-1: a window with nothing happening, checked all along.
    let kept = stays(Duration::from_millis(500), "keep-1 running", || async {
        fx.state(&keep).await.as_deref() == Some("running")
    })
    .await;
    assert!(kept.is_ok(), "{kept:?}\n{}", c.log_text());
    assert_eq!(
        fx.state(&keep).await.as_deref(),
        Some("running"),
        "{}",
        c.log_text()
    );
    assert_eq!(
        c.count_log(&["policy reloaded"]),
        1,
        "only the whole file: {}",
        c.log_text()
    );
    assert_eq!(c.count_log(&["policy refused"]), 0, "{}", c.log_text());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new);
}
