//! What dockwarden did, end to end (needs the controller's `GET /decisions` on its metrics
//! listener, the lead's side of issue 10): a denied container started under a running
//! controller appears in the `/decisions` of both programs within a second, with its
//! action and result; status-api's page and the container's detail page say it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Api, Opts, request};
use testkit::{Fixture, Spec, eventually, static_binary};

fn decisions_about(v: &Value, id: &str) -> Vec<Value> {
    v["decisions"]
        .as_array()
        .map(|d| d.iter().filter(|x| x["id"] == id).cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_container_shows_in_both_decisions_within_a_second() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    // The real controller (static release build), governing this test's scope only; its
    // metrics listener serves `/decisions`.
    let bin = static_binary("state-controller", "state-controller").unwrap();
    let ctl = fx
        .controller(&bin, &format!("[[allow]]\nname = \"{}-ok-*\"\n", scope.id), &[])
        .await;
    let policy = fx.path("allow.toml");
    let ctl_addr = ctl.metrics_addr();
    let ctl_url = format!("http://{ctl_addr}");
    eventually(
        Duration::from_secs(15),
        "the controller answers /decisions",
        || async {
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                testkit::http::request(ctl_addr, "GET", "/decisions", &[]),
            )
            .await
            .ok()?
            .ok()?;
            (r.status == 200).then_some(())
        },
    )
    .await
    .unwrap();
    let api = Api::start(
        scope,
        Opts {
            allowlist: Some(policy.clone()),
            controller_url: Some(ctl_url),
            ..Default::default()
        },
    )
    .await;

    let t0 = Instant::now();
    let id = fx.run(Spec::new("intruder")).await;
    let from_controller = eventually(
        Duration::from_secs(1),
        "the controller's /decisions has it",
        || async {
            let r = request(
                ctl_addr,
                "GET",
                &format!("/decisions?container={}", &id[..12]),
                &[],
            )
            .await;
            let d = decisions_about(&r.json(), &id);
            (!d.is_empty()).then(|| d[0].clone())
        },
    )
    .await
    .unwrap();
    eprintln!("controller: {from_controller} after {:?}", t0.elapsed());
    assert_eq!(from_controller["action"], "kill");
    assert_eq!(from_controller["result"], "ok");
    assert_eq!(from_controller["verdict"], "deny");
    assert_eq!(from_controller["container"], scope.name("intruder").as_str());
    let from_api = eventually(
        Duration::from_secs(1),
        "status-api's /decisions has it",
        || async {
            let r = api
                .get(&format!("/decisions?container={}", scope.name("intruder")))
                .await;
            let d = decisions_about(&r.json(), &id);
            (!d.is_empty()).then(|| d[0].clone())
        },
    )
    .await
    .unwrap();
    eprintln!("status-api: after {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "both within a second of each other"
    );
    assert_eq!(from_api, from_controller, "the same decision, the same JSON");

    // The page and the detail page tell it.
    let page = eventually(Duration::from_secs(2), "the page shows the kill", || async {
        let r = api.get_html("/containers").await;
        r.body.contains("killed by dockwarden").then_some(r)
    })
    .await
    .unwrap();
    assert!(
        page.body.contains("What dockwarden did recently"),
        "{}",
        page.body
    );
    let detail = api.get_html(&format!("/containers/{id}")).await;
    assert!(
        detail.body.contains("after start by dockwarden"),
        "{}",
        detail.body
    );
    drop(ctl);
    api.stop().await.unwrap();
}
