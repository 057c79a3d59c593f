//! The logs route under 400 readers that ask for a big log and never read it: the server's
//! memory stays small (every response is streamed through a bounded queue, none is
//! buffered whole: before, each held up to 8 MiB), the rest of the API keeps answering, and
//! once the stalled readers are cut off a normal logs request works again. Also: the route
//! is off without a token or `--logs`.
//!
//! The big log comes from `testkit/src/bin/dw-chatter.rs` (about 9 MB of lines), built static and
//! put in an image of its own, `dwtest-api-chatter:<pid>`, removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Api, Opts, Stalled};
use testkit::{Scope, Spec, docker_or_skip, image_from_binaries, test_name};

const READERS: usize = 400;

/// This process's RSS, KiB: the server runs in it.
fn rss_kib() -> u64 {
    testkit::process::rss_kib(std::process::id())
}

/// Builds the chatter example static (same flags as scripts/build-static.sh, so the
/// release dependencies are shared) and an image holding it.
fn chatter_image() -> String {
    let bin = testkit::static_binary("dockwarden-testkit", "dw-chatter").unwrap();
    let tag = format!("dwtest-api-chatter:{}", std::process::id());
    image_from_binaries(&tag, &[bin], "dw-chatter").unwrap();
    tag
}

struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_stalled_log_readers_hold_no_big_buffers() {
    let Some(docker) = docker_or_skip().await else {
        return;
    };
    let image = chatter_image();
    let _image = RemoveImage(image.clone());
    let scope = Scope::new(&test_name());
    let id = scope
        .run(&docker, Spec::new("chatty").image(&image))
        .await
        .unwrap();

    // Off by default.
    let off = Api::start(&scope, Opts::default()).await;
    off.get(&format!("/containers/{id}/logs")).await.assert_error(
        403,
        "forbidden",
        "logs without a token or --logs",
    );
    off.stop().await.unwrap();

    let api = Api::start(
        &scope,
        Opts {
            logs: true,
            ..Default::default()
        },
    )
    .await;
    let path = format!("/containers/{id}/logs?tail=10000");
    // The whole log arrives, cut at 8 MiB, for a reader that reads.
    testkit::eventually(
        Duration::from_secs(10),
        "the chatter's log is complete",
        || async {
            let r = api.get(&path).await;
            (r.status == 200 && r.body.contains("output cut at 8 MiB")).then_some(())
        },
    )
    .await
    .unwrap();
    let full = api.get(&path).await;
    assert!(full.body.len() > 8 * 1024 * 1024, "{} bytes", full.body.len());
    assert_eq!(full.header("cache-control"), Some("no-store"));

    let before = rss_kib();
    let t0 = Instant::now();
    // Each reader asks for the whole log, reads the answer's head, then stops reading. They
    // run on a runtime of their own (one thread), so that their 400 connects and handshakes do
    // not queue ahead of the server's tasks on this test's runtime: the time /healthz takes
    // below is the server's. They hold their connections until `release` is sent.
    let (heads_tx, heads_rx) = tokio::sync::oneshot::channel::<Vec<u16>>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let readers = {
        let (addr, path) = (api.addr, path.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..READERS)
                    .map(|_| {
                        let path = path.clone();
                        tokio::spawn(async move { Stalled::start(addr, &path).await })
                    })
                    .collect();
                let mut heads = Vec::with_capacity(READERS);
                for t in tasks {
                    heads.push(t.await.unwrap());
                }
                let _ = heads_tx.send(heads.iter().map(|h| h.status).collect());
                let _ = released.await;
                drop(heads);
            });
        })
    };
    // While they stall (a fixed period: it checks that nothing grows): memory stays small
    // and the API answers.
    let mut peak = before;
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(6) {
        peak = peak.max(rss_kib());
        let t = Instant::now();
        assert_eq!(api.get("/healthz").await.status, 200);
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let heads = heads_rx.await.unwrap();
    peak = peak.max(rss_kib());
    let ok = heads.iter().filter(|&&h| h == 200).count();
    let busy = heads.iter().filter(|&&h| h == 504).count();
    eprintln!(
        "{READERS} stalled readers: {ok} streaming, {busy} told 504 (waited for a slot), RSS {} -> peak {} MiB; /healthz slowest {worst:?}",
        before / 1024,
        peak / 1024
    );
    assert!(peak < 64 * 1024, "RSS peaked at {} MiB", peak / 1024);
    assert!(ok >= 1, "no reader got a stream");
    assert_eq!(ok + busy, READERS, "every reader got an answer: {heads:?}");
    assert!(
        worst < Duration::from_secs(1),
        "/healthz took {worst:?} meanwhile"
    );
    // The stalled streams are cut off (LOG_STALL) and their slots freed: logs work again.
    testkit::eventually(
        Duration::from_secs(30),
        "a normal logs request after the stall",
        || async {
            let r = api.get(&format!("/containers/{id}/logs?tail=5")).await;
            (r.status == 200 && r.body.lines().count() == 5).then_some(())
        },
    )
    .await
    .unwrap();
    let _ = release.send(());
    readers.join().unwrap();
    api.stop().await.unwrap();
}
