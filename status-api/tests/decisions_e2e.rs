//! What dockwarden did, end to end (needs the controller's `GET /decisions` on its metrics
//! listener, the lead's side of issue 10): a denied container started under a running
//! controller appears in the `/decisions` of both programs within a second, with its
//! action and result; status-api's page and the container's detail page say it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, Opts, TempDir, raw};
use serde_json::Value;
use testkit::{Scope, Spec, docker_or_skip, eventually, sleeper_image, static_binary};

/// The real controller (static release build), scoped to the test, killed by PID on drop.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn decisions_about(v: &Value, id: &str) -> Vec<Value> {
    v["decisions"]
        .as_array()
        .map(|d| d.iter().filter(|x| x["id"] == id).cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_container_shows_in_both_decisions_within_a_second() {
    let Some(docker) = docker_or_skip("a_denied_container_shows_in_both_decisions_within_a_second").await
    else {
        return;
    };
    sleeper_image().unwrap();
    let bin = static_binary("state-controller", "state-controller").unwrap();
    let scope = Scope::new("api-decisions-e2e");
    let dir = TempDir::new("api-decisions-e2e");
    let policy = dir.replace(
        "allowlist.toml",
        &format!("[[allow]]\nname = \"{}-ok-*\"\n", scope.id),
    );
    let port = free_port();
    let ctl = Controller(
        Command::new(bin)
            .args(["--allowlist"])
            .arg(&policy)
            .args([
                "--metrics-listen",
                &format!("127.0.0.1:{port}"),
                "--scope",
                &scope.selector(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ctl_url = format!("http://127.0.0.1:{port}");
    let ctl_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually(
        Duration::from_secs(15),
        "the controller answers /decisions",
        || async {
            // Listening yet? (`raw` expects a server there.)
            tokio::net::TcpStream::connect(ctl_addr).await.ok()?;
            let r = tokio::time::timeout(Duration::from_secs(2), raw(ctl_addr, "GET", "/decisions", &[]))
                .await
                .ok()?;
            (r.status == 200).then_some(())
        },
    )
    .await
    .unwrap();
    let api = Api::start(
        &scope,
        Opts {
            allowlist: Some(policy.clone()),
            controller_url: Some(ctl_url),
            ..Default::default()
        },
    )
    .await;

    let t0 = Instant::now();
    let id = scope.run(&docker, Spec::new("intruder")).await.unwrap();
    let from_controller = eventually(
        Duration::from_secs(1),
        "the controller's /decisions has it",
        || async {
            let r = raw(
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
