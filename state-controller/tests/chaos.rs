//! Policy chaos: 1,000 random rewrites of the policy file (valid and broken; in place, by
//! rename, delete-then-write, and slow writers that leave the file empty for a while) while
//! containers keep starting. Ten times, after a burst of rewrites whose last valid file was
//! on disk long enough to be read, enforcement must follow that LAST VALID policy exactly: a
//! container only it allows lives, one only an earlier policy allowed dies, one no policy
//! allows dies, and nothing any valid policy allows (`keep-*`) is ever touched, so no broken
//! file (bad TOML, unknown key, empty, no rule, bad glob, truncated, not UTF-8, deleted...)
//! ever widened or emptied the policy.
//!
//! The seed is printed; `DWTEST_CHAOS_SEED=<n>` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use support::bin;
use testkit::events::EventLog;
use testkit::time::now_nano;
use testkit::wait::{scope_states, wait_none_running};
use testkit::{Controller, Fixture, Scope, Spec, eventually};

const ROUNDS: usize = 10;
const WRITES: usize = 1000;

/// xorshift64*: small, seedable, good enough to pick writes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A valid policy of generation `k`: allows `keep-*` (every generation) and `g<k>-*`,
/// written in one of several shapes.
fn valid(scope: &str, k: u64, rng: &mut Rng) -> String {
    let mut rules = vec![
        format!("[[allow]]\nname = \"{scope}-keep-*\"\n"),
        format!("[[allow]]\nname = \"{scope}-g{k}-*\"\n"),
    ];
    if rng.chance(30) {
        // Narrower than it looks: the name matches nothing started here without the image.
        rules.push(format!(
            "[[allow]]\nname = \"{scope}-zz-*\"\nimage = \"dwtest-other:*\"\n"
        ));
    }
    if rng.chance(30) {
        rules.push(format!("[[allow]]\nlabels = {{ \"dwtest.chaos\" = \"g{k}\" }}\n"));
    }
    if rng.chance(50) {
        rules.swap(0, 1);
    }
    let mut text = String::new();
    if rng.chance(50) {
        text.push_str(&format!("# generation {k}\n"));
    }
    if rng.chance(30) {
        text.push_str("mode = \"enforce\"\naction = \"kill\"\n");
    }
    text.push_str(&rules.join("\n"));
    if rng.chance(20) {
        text = text.replace('\n', "\r\n");
    }
    text
}

/// A file the controller must refuse whole. Most of them would allow everything (`*`) or
/// nothing if they were half-accepted.
fn broken(scope: &str, k: u64, rng: &mut Rng) -> Option<Vec<u8>> {
    let s = match rng.below(14) {
        0 => "[[allow]\nname = \"*\"\n".to_string(),
        1 => "[[allow]]\nname = \"*\"\ncolour = \"red\"\n".to_string(),
        2 => String::new(),
        3 => "# everything is gone\n\n".to_string(),
        4 => "[[allow]]\n\n[[allow]]\nname = \"*\"\n".to_string(),
        5 => format!("[[allow]]\nname = \"{scope}-keep-*\"\n[[allow]]\nname = \"{scope}-[\"\n"),
        6 => "stop_timeout_secs = 9999\n[[allow]]\nname = \"*\"\n".to_string(),
        7 => {
            // A valid file cut inside a string: what a reader sees of a half-written file.
            let v = valid(scope, k, rng);
            let cut = v.find(&format!("-g{k}-")).unwrap() + 2;
            v[..cut].to_string()
        }
        8 => {
            let mut b = vec![0xff, 0xfe];
            b.extend_from_slice(b"[[allow]]\nname = \"*\"\n");
            return Some(b);
        }
        9 => "mode = \"enforcing\"\n[[allow]]\nname = \"*\"\n".to_string(),
        10 => return None, // deleted
        11 => "[[allow]]\nimage = \"Nginx:*\"\n[[allow]]\nname = \"*\"\n".to_string(),
        12 => "[[allow]]\nlabels = {}\n".to_string(),
        _ => format!("action = \"nuke\"\n[[allow]]\nname = \"{scope}-keep-*\"\n"),
    };
    Some(s.into_bytes())
}

/// Writes `content` (or deletes the file) one of the ways files get replaced.
fn write(path: &Path, content: Option<&[u8]>, rng: &mut Rng) {
    let Some(bytes) = content else {
        let _ = std::fs::remove_file(path);
        return;
    };
    match rng.below(4) {
        // In place: truncate and write, same inode.
        0 => std::fs::write(path, bytes).unwrap(),
        // An editor: a temp file renamed over it.
        1 => {
            let tmp = path.with_extension("tmp~");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        // Deleted, then written again a moment later.
        2 => {
            let _ = std::fs::remove_file(path);
            std::thread::sleep(Duration::from_millis(rng.below(30) as u64));
            std::fs::write(path, bytes).unwrap();
        }
        // A slow writer: truncated, then written up to 250 ms later (the reloader waits
        // 150 ms, so it often reads the empty file).
        _ => {
            let mut f = std::fs::File::create(path).unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(250) as u64));
            f.write_all(bytes).unwrap();
        }
    }
}

// Several threads: the writes sleep (slow writers) while the background starter and the
// event recorder must keep going.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_thousand_rewrites_enforcement_follows_the_last_valid_policy() {
    let Some(fx) = Fixture::new().await else { return };
    let (docker, scope) = (&fx.docker, &fx.scope);
    let seed = std::env::var("DWTEST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_nano() as u64)
        | 1;
    eprintln!("chaos seed {seed} (DWTEST_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut k: u64 = 0;
    let mut c = fx.controller(bin(), &valid(&scope.id, k, &mut rng), &[]).await;
    let path = fx.path("allow.toml");
    let events = EventLog::start(docker, &scope.selector());

    // Containers keep starting through the whole test: always-allowed ones, ones allowed by
    // the generation just written, and ones nothing allows.
    let latest_written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (docker, latest, stop) = (docker.clone(), latest_written.clone(), stop.clone());
        let scope_id = scope.id.clone();
        tokio::spawn(async move {
            // The same scope (names, label); never dropped here: the test's own Scope
            // removes the containers at the end.
            let scope = std::mem::ManuallyDrop::new(Scope::with_id(scope_id));
            let mut started: Vec<(String, String)> = Vec::new();
            let mut i = 0;
            while !stop.load(Relaxed) {
                let name = match i % 3 {
                    0 => format!("keep-bg-{i}"),
                    1 => format!("g{}-bg-{i}", latest.load(Relaxed)),
                    _ => format!("zz-bg-{i}"),
                };
                if let Ok(id) = scope.run(&docker, Spec::new(&name)).await {
                    started.push((name, id));
                }
                i += 1;
                // The pace of the stream of containers, not a wait for anything.
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            started
        })
    };

    let (mut valid_writes, mut broken_writes, mut writes) = (0, 0, 0);
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        let tail = rng.below(4);
        let rapid = WRITES / ROUNDS - 1 - tail;
        for _ in 0..rapid {
            if rng.chance(40) {
                k += 1;
                latest_written.store(k, Relaxed);
                write(&path, Some(valid(&scope.id, k, &mut rng).as_bytes()), &mut rng);
                valid_writes += 1;
            } else {
                write(&path, broken(&scope.id, k + 1, &mut rng).as_deref(), &mut rng);
                broken_writes += 1;
            }
            writes += 1;
            // Mostly faster than the reloader's 150 ms settle (the writes coalesce); one in
            // ten stays long enough to be read on its own.
            let pause = if rng.chance(10) {
                160 + rng.below(100)
            } else {
                rng.below(15)
            };
            tokio::time::sleep(Duration::from_millis(pause as u64)).await;
        }
        // The round's last valid policy, on disk long enough to be read...
        let previous = k;
        k += 1;
        latest_written.store(k, Relaxed);
        write(&path, Some(valid(&scope.id, k, &mut rng).as_bytes()), &mut rng);
        valid_writes += 1;
        writes += 1;
        // "Long enough" is this test's own schedule, not a wait for an observable: the
        // claim checked below is that a file left this long is the one in force.
        tokio::time::sleep(Duration::from_millis(700)).await;
        // ...then only broken files.
        let rejected = rejections(&c).await;
        for _ in 0..tail {
            write(&path, broken(&scope.id, k + 1, &mut rng).as_deref(), &mut rng);
            broken_writes += 1;
            writes += 1;
            // The writer's schedule (faster than the reloader's settle), as above.
            tokio::time::sleep(Duration::from_millis(rng.below(15) as u64)).await;
        }
        settle(&c, (tail > 0).then_some(rejected)).await;

        // Check: generation k is in force, nothing else.
        let only_new = fx.run(Spec::new(&format!("g{k}-probe-{round}"))).await;
        let only_old = fx.run(Spec::new(&format!("g{previous}-probe-{round}"))).await;
        let none = fx.run(Spec::new(&format!("zz-probe-{round}"))).await;
        let left = wait_none_running(docker, scope, &[only_old, none], Duration::from_secs(15)).await;
        assert!(
            left.is_empty(),
            "round {round}: the policy in force is wider than generation {k}: {left:?} still run (seed {seed})"
        );
        // The controller has judged g<k>-probe (allowed, or acted on: the state says which).
        c.wait_judged(&[&only_new], Duration::from_secs(15)).await;
        let states = scope_states(docker, scope).await;
        let state = |id: &str| states.get(id).map(|(_, s)| s.clone()).unwrap_or_default();
        assert_eq!(
            state(&only_new),
            "running",
            "round {round}: g{k}-probe, allowed only by the last valid policy (generation {k}), was killed; events {:?} (seed {seed})",
            events.of(&only_new)
        );
        // Nothing always allowed was ever touched: no broken file emptied the policy.
        for (id, (name, s)) in &states {
            if name.starts_with("keep-") {
                // (`created`: the background starter is between its create and start calls.)
                assert!(
                    (s == "running" || s == "created") && !events.saw(id, "kill"),
                    "round {round}: {name} (allowed by every valid policy) is {s}, events {:?} (seed {seed})",
                    events.of(id)
                );
            }
        }
        // And everything the last valid policy denies is down.
        let denied: Vec<String> = states
            .iter()
            .filter(|(_, (n, _))| !n.starts_with("keep-") && !n.starts_with(&format!("g{k}-")))
            .map(|(id, _)| id.clone())
            .collect();
        let left = wait_none_running(docker, scope, &denied, Duration::from_secs(15)).await;
        assert!(
            left.is_empty(),
            "round {round}: running though generation {k} denies them: {left:?} (seed {seed})"
        );
        assert!(c.still_running(), "the controller exited:\n{}", c.log_text());
        eprintln!(
            "round {round}: {writes} writes so far; generation {k} in force as expected ({:.0} s)",
            t0.elapsed().as_secs_f64()
        );
    }
    stop.store(true, Relaxed);
    let started = background.await.unwrap();
    let accepted = c
        .metric("dockwarden_policy_reloads_total{result=\"accepted\"}")
        .await;
    let rejected = c
        .metric("dockwarden_policy_reloads_total{result=\"rejected\"}")
        .await;
    assert_eq!(writes, WRITES);
    let log = c.log_text();
    let reasons: Vec<String> = [
        "expected",
        "unknown field",
        "the policy is empty",
        "no [[allow]] rule",
        "a rule needs at least one",
        "bad glob",
        "stop_timeout_secs",
        "not UTF-8",
        "unreadable",
        "unknown variant",
        "invalid",
    ]
    .iter()
    .map(|r| {
        format!(
            "{r}: {}",
            log.lines()
                .filter(|l| l.contains("refused") || l.contains("unreadable"))
                .filter(|l| l.contains(r))
                .count()
        )
    })
    .collect();
    eprintln!("refusals seen in the log by reason: {}", reasons.join(", "));
    eprintln!(
        "chaos: {writes} rewrites ({valid_writes} valid, {broken_writes} broken) in {:.0} s; controller accepted {accepted}, \
         refused {rejected} (rapid writes coalesce); {} containers started meanwhile; {ROUNDS} checks passed (seed {seed})",
        t0.elapsed().as_secs_f64(),
        started.len()
    );
}

/// The policy files the controller refused so far.
async fn rejections(c: &Controller) -> f64 {
    c.metric("dockwarden_policy_reloads_total{result=\"rejected\"}")
        .await
}

/// Waits until the reloader has gone quiet. When broken files followed the last valid one
/// (`rejected` is the count before them), first until it has refused one of them: it has
/// read them. Then until its counters stay unchanged for 500 ms: the reloader has no "idle"
/// signal, so quiet is a period with nothing happening.
async fn settle(c: &Controller, rejected: Option<f64>) {
    if let Some(before) = rejected {
        // No panic here: if it never reads them, the check that follows says what is in force.
        let read = eventually(Duration::from_secs(10), "the broken files to be read", || async {
            (rejections(c).await > before).then_some(())
        })
        .await;
        if let Err(e) = read {
            eprintln!("{e:#}");
        }
    }
    let counters = || async {
        (
            c.metric("dockwarden_policy_reloads_total{result=\"accepted\"}")
                .await,
            rejections(c).await,
        )
    };
    let mut last = counters().await;
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while quiet_since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counters().await;
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
}
