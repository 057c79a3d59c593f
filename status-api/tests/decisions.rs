//! What dockwarden did, status-api's side, against a small fake controller (a warp route
//! serving the controller's `GET /decisions` contract): the decisions show in status-api's
//! own `GET /decisions` (same JSON, `?container=` filter) and on the page within a second;
//! when the controller goes away the page says so and everything else keeps working. No
//! Docker needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Api, Opts};
use testkit::eventually;
use tokio::sync::oneshot;
use warp::Filter;

/// The fake controller: serves whatever feed the test puts in, until stopped.
struct FakeController {
    url: String,
    feed: Arc<Mutex<Value>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeController {
    async fn start(feed: Value) -> FakeController {
        let feed = Arc::new(Mutex::new(feed));
        let served = feed.clone();
        let route = warp::path!("decisions")
            .and(warp::get())
            .map(move || warp::reply::json(&*served.lock().unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async {
                    let _ = rx.await;
                })
                .run(),
        );
        FakeController {
            url,
            feed,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

fn decision(container: &str, id: &str, result: &str, time: &str) -> Value {
    json!({
        "time": time, "container": container, "id": id, "image": "busybox:1",
        "verdict": "deny", "rule": null, "reason": "no [[allow]] rule matches",
        "action": "kill", "result": result, "latency_ms": 12.3, "trigger": "start event"
    })
}

fn no_docker(controller_url: Option<String>) -> Opts {
    Opts {
        docker_host: Some("unix:///nonexistent/dwtest-api-docker.sock".into()),
        controller_url,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_served_and_shown_and_an_absent_controller_is_said() {
    let web = "a".repeat(64);
    let db = "b".repeat(64);
    let controller = FakeController::start(json!({"capacity": 1000, "decisions": [
        decision("dwtest-api-web", &web, "ok", "2026-12-02T14:00:00.123Z"),
    ]}))
    .await;
    let api = Api::start_unsynced(None, no_docker(Some(controller.url.clone()))).await;

    // The first fetch lands within a second.
    let got = eventually(
        Duration::from_secs(1),
        "status-api serves the controller's decisions",
        || async {
            let r = api.get("/decisions").await;
            (r.status == 200).then(|| r.json())
        },
    )
    .await
    .unwrap();
    assert_eq!(got, *controller.feed.lock().unwrap(), "the same JSON");

    // A new decision shows within a second, on /decisions and on the page.
    controller.feed.lock().unwrap()["decisions"]
        .as_array_mut()
        .unwrap()
        .push(decision("dwtest-api-db", &db, "audit", "2026-12-02T14:00:05Z"));
    eventually(Duration::from_secs(1), "the second decision", || async {
        let r = api.get("/decisions").await;
        (r.json()["decisions"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await
    .unwrap();
    let only_db = api.get("/decisions?container=dwtest-api-db").await.json();
    assert_eq!(only_db["decisions"].as_array().unwrap().len(), 1, "{only_db}");
    assert_eq!(only_db["decisions"][0]["result"], "audit");
    let by_prefix = api.get("/decisions?container=aaaa").await.json();
    assert_eq!(by_prefix["decisions"][0]["container"], "dwtest-api-web");
    assert_eq!(by_prefix["capacity"], 1000);
    let none = api.get("/decisions?container=nobody").await.json();
    assert_eq!(none["decisions"], json!([]));
    api.get("/decisions?bogus=1")
        .await
        .assert_error(400, "bad_request", "unknown parameter");

    let page = api.get_html("/containers").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("What dockwarden did recently"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("killed by dockwarden: no [[allow]] rule matches"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("would have been killed (audit mode: left alone)"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("controller-unreachable"));

    // The controller goes away: the page says so within a second, the rest works.
    controller.stop().await;
    let page = eventually(
        Duration::from_secs(3),
        "the page says the controller is unreachable",
        || async {
            let r = api.get_html("/containers").await;
            r.body.contains("id=\"controller-unreachable\"").then_some(r)
        },
    )
    .await
    .unwrap();
    assert!(
        page.body.contains("The controller cannot be reached"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("killed by dockwarden"),
        "the last known actions stay: {}",
        page.body
    );
    let r = api.get("/decisions").await;
    assert_eq!(r.status, 200, "the last known answer: {}", r.body);
    assert!(
        r.header("x-dockwarden-stale")
            .is_some_and(|v| v.contains("unreachable"))
    );
    assert_eq!(api.get("/containers").await.status, 200);
    assert_eq!(api.get("/healthz").await.status, 200);
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_controller_url_decisions_are_503_and_the_page_is_quiet() {
    let api = Api::start_unsynced(None, no_docker(None)).await;
    let r = api.get("/decisions").await;
    r.assert_error(503, "unavailable", "no --controller-url");
    assert!(r.json()["message"].as_str().unwrap().contains("--controller-url"));
    let page = api.get_html("/containers").await;
    assert!(!page.body.contains("What dockwarden did"), "{}", page.body);
    assert!(!page.body.contains("controller-unreachable"));

    // A controller URL where nothing listens: unreachable from the start, said on the page.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let api2 = Api::start_unsynced(None, no_docker(Some(url))).await;
    let page = eventually(Duration::from_secs(3), "unreachable from the start", || async {
        let r = api2.get_html("/containers").await;
        r.body.contains("id=\"controller-unreachable\"").then_some(r)
    })
    .await
    .unwrap();
    assert!(page.body.contains("Not known yet") || page.body.contains("cannot be reached"));
    api2.get("/decisions")
        .await
        .assert_error(503, "unavailable", "never reached");
    api.stop().await.unwrap();
    api2.stop().await.unwrap();
}
