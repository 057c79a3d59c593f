//! GET /containers against the real engine: lifecycle changes show within 1 s, filters,
//! the allowlist's verdict and its hot reload, resource figures, and container
//! environments that never appear in any answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bollard::query_parameters::{
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use serde_json::Value;
use support::{Api, Opts};
use testkit::{Fixture, Spec, eventually};

const WITHIN: Duration = Duration::from_secs(1);

/// Polls the listing until `check` holds for the container `id` (or its absence), and
/// returns how long that took after the Docker call returned.
async fn shows(api: &Api, id: &str, what: &str, check: impl Fn(Option<&Value>) -> bool) -> Duration {
    let t0 = Instant::now();
    eventually(WITHIN, what, || async {
        let c = api.find(id).await;
        check(c.as_ref()).then_some(())
    })
    .await
    .unwrap();
    t0.elapsed()
}

#[tokio::test]
async fn start_stop_rename_remove_show_within_a_second() {
    let Some(fx) = Fixture::new().await else { return };
    let (docker, scope) = (&fx.docker, &fx.scope);
    let api = Api::start(scope, Opts::default()).await;
    assert!(api.list("").await.is_empty(), "the scope starts empty");

    let id = fx.run(Spec::new("a")).await;
    let name = scope.name("a");
    let t = shows(&api, &id, "started container listed as running", |c| {
        c.is_some_and(|c| c["state"] == "running" && c["name"] == name.as_str())
    })
    .await;
    eprintln!("start shown after {t:?}");
    let c = api.find(&id).await.unwrap();
    assert_eq!(c["image"], "dwtest-sleeper:latest", "the reference as given");
    assert!(c["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(c["status"].as_str().unwrap().starts_with("Up "), "{c}");
    assert!(c["created"].as_str().unwrap().ends_with('Z'));
    assert!(c["started_at"].is_string());
    assert_eq!(c["labels"]["dwtest.scope"], scope.id.as_str());
    assert!(c["ports"].is_array() && c.get("health").is_some());
    assert!(c.get("allowed").is_none(), "no allowlist, no verdict");

    // By name, full ID and unique prefix.
    for key in [name.as_str(), id.as_str(), &id[..12]] {
        let r = api.get(&format!("/containers/{key}")).await;
        assert_eq!(r.status, 200, "{key}: {}", r.body);
        assert_eq!(r.json()["id"], id.as_str());
    }

    // dw-sleeper ignores SIGTERM: `docker stop -t 1` ends in SIGKILL after 1 s.
    docker
        .stop_container(&id, Some(StopContainerOptionsBuilder::default().t(1).build()))
        .await
        .unwrap();
    let t = shows(&api, &id, "stopped container listed as exited", |c| {
        c.is_some_and(|c| {
            c["state"] == "exited"
                && c["status"].as_str().unwrap_or("").starts_with("Exited (137)")
                && c["health_class"] == "stopped"
                && c["resources"].is_null()
        })
    })
    .await;
    eprintln!("stop shown after {t:?}");

    let new_name = scope.name("renamed");
    docker
        .rename_container(
            &id,
            RenameContainerOptionsBuilder::default().name(&new_name).build(),
        )
        .await
        .unwrap();
    let t = shows(&api, &id, "renamed container listed under its new name", |c| {
        c.is_some_and(|c| c["name"] == new_name.as_str())
    })
    .await;
    eprintln!("rename shown after {t:?}");
    assert_eq!(
        api.get(&format!("/containers/{name}")).await.status,
        404,
        "old name"
    );
    assert_eq!(api.get(&format!("/containers/{new_name}")).await.status, 200);

    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .unwrap();
    let t = shows(&api, &id, "removed container gone", |c| c.is_none()).await;
    eprintln!("remove shown after {t:?}");
    api.get(&format!("/containers/{id}"))
        .await
        .assert_error(404, "not_found", "removed container by ID");
    api.stop().await.unwrap();
}

#[tokio::test]
async fn filters_select_by_state_name_and_image() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let web1 = fx.run(Spec::new("web-1")).await;
    // dw-sleeper 0 exits at once: an exited container.
    let web2 = fx.run(Spec::new("web-2").cmd(&["0"])).await;
    let db = fx.run(Spec::new("db").created_only()).await;
    let api = Api::start(scope, Opts::default()).await;
    eventually(Duration::from_secs(5), "web-2 exited", || async {
        api.find(&web2)
            .await
            .filter(|c| c["state"] == "exited")
            .map(|_| ())
    })
    .await
    .unwrap();
    let n = |s: &str| scope.name(s);
    assert_eq!(api.names("").await, [n("db"), n("web-1"), n("web-2")]);
    assert_eq!(api.names("state=running").await, [n("web-1")]);
    assert_eq!(api.names("state=exited").await, [n("web-2")]);
    assert_eq!(api.names("state=created,exited").await, [n("db"), n("web-2")]);
    assert_eq!(api.names("state=paused").await, Vec::<String>::new());
    assert_eq!(api.names("name=*-web-*").await, [n("web-1"), n("web-2")]);
    assert_eq!(
        api.names(&format!("name={}", n("db"))).await,
        [n("db")],
        "exact name"
    );
    assert_eq!(
        api.names("name=web-1").await,
        Vec::<String>::new(),
        "exact, not substring"
    );
    assert_eq!(api.names("name=*-web-[2-9]").await, [n("web-2")]);
    assert_eq!(api.names("image=dwtest-sleeper:latest").await.len(), 3);
    assert_eq!(
        api.names("image=dwtest-sleeper:*&state=running").await,
        [n("web-1")]
    );
    assert!(api.names("image=nginx:*").await.is_empty());
    assert_eq!(
        api.names("state=&name=").await.len(),
        3,
        "empty values = not given (HTML forms)"
    );
    let listed = api.get("/containers").await.json();
    assert_eq!(listed["count"], 3);
    assert_eq!(listed["synced"], true);
    for (q, param) in [
        ("state=sleeping", "state"),
        ("allowed=false", "allowed"),
        ("name=[web", "name"),
        ("sort=name", "sort"),
        ("state=running&state=exited", "state"),
    ] {
        let r = api.get(&format!("/containers?{q}")).await;
        r.assert_error(400, "bad_request", q);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains(&format!("\"{param}\"")),
            "{q}: {}",
            r.body
        );
    }
    let _ = (web1, db);
    api.stop().await.unwrap();
}

#[tokio::test]
async fn allowed_follows_the_policy_and_its_reload() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let policy = fx.policy("mode = \"audit\"\n[[allow]]\nname = \"*-good\"\n");
    let good = fx.run(Spec::new("good")).await;
    let bad = fx.run(Spec::new("bad")).await;
    let api = Api::with_policy(scope, policy).await;
    let g = api.find(&good).await.unwrap();
    assert_eq!(
        (g["allowed"].clone(), g["rule"].clone()),
        (true.into(), 1.into()),
        "{g}"
    );
    let b = api.find(&bad).await.unwrap();
    assert_eq!(
        (b["allowed"].clone(), b["rule"].clone()),
        (false.into(), Value::Null),
        "{b}"
    );
    assert!(b["reason"].as_str().unwrap().contains("no [[allow]] rule"));
    assert_eq!(api.names("allowed=false").await, [scope.name("bad")]);
    assert_eq!(api.names("allowed=true").await, [scope.name("good")]);
    let html = api.get_html("/containers").await.body;
    // Audit mode: the denied row is marked as one audit leaves running, not as an alarm.
    assert!(html.contains("class=\"container audit\""), "denied row marked");
    assert!(
        html.contains("DENIED · audit") && html.contains("AUDIT mode"),
        "{html}"
    );
    assert!(
        !html.contains("class=\"container denied\""),
        "audit touches nothing"
    );

    // Replace the file the way editors do: the verdicts follow.
    fx.policy("mode = \"audit\"\n[[allow]]\nname = \"*-nothing\"\n[[allow]]\nname = \"*-bad\"\n");
    eventually(Duration::from_secs(5), "verdicts after the reload", || async {
        let b = api.find(&bad).await?;
        let g = api.find(&good).await?;
        (b["allowed"] == true && b["rule"] == 2 && g["allowed"] == false).then_some(())
    })
    .await
    .unwrap();
    let metrics = api.get("/metrics").await.body;
    assert!(metrics.contains("dockwarden_policy_generation 2"), "{metrics}");

    // An invalid file is refused: the last good policy stays.
    fx.policy("[[allow]]\nnmae = \"x\"\n");
    eventually(Duration::from_secs(5), "the invalid file refused", || async {
        let m = api.get("/metrics").await.body;
        m.contains("dockwarden_policy_reloads_total{result=\"rejected\"} 1")
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(api.names("allowed=true").await, [scope.name("bad")]);
    api.stop().await.unwrap();
}

#[tokio::test]
async fn resources_are_sampled_in_the_background() {
    let Some(fx) = Fixture::new().await else { return };
    let id = fx.run(Spec::new("r")).await;
    let api = Api::start(&fx.scope, Opts::default()).await;
    // Two rounds (500 ms apart in tests) give CPU %; memory comes with the first.
    let c = eventually(Duration::from_secs(10), "CPU and memory figures", || async {
        api.find(&id)
            .await
            .filter(|c| c["resources"]["cpu_percent"].is_number())
    })
    .await
    .unwrap();
    let r = &c["resources"];
    assert!(r["memory_bytes"].as_u64().unwrap() > 0, "{c}");
    assert!(r["memory_limit_bytes"].as_u64().unwrap() > 0, "{c}");
    assert!(r["online_cpus"].as_u64().unwrap() >= 1, "{c}");
    assert!(r["cpu_percent"].as_f64().unwrap() >= 0.0, "{c}");
    // No Docker healthcheck: never the green "healthy", whatever the figures say.
    assert_eq!(c["health_class"], "running", "an idle sleeper: {c}");
    assert_eq!(c["resource_class"], "healthy", "an idle sleeper: {c}");
    let html = api.get_html("/containers").await.body;
    assert!(html.contains("<meter"), "CPU and memory bars on the page");
    let m = api.get("/metrics").await.body;
    assert!(m.contains("status_api_resource_rounds_total"), "{m}");
    api.stop().await.unwrap();
}

#[tokio::test]
async fn container_environment_never_appears() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    let secret = format!("hunter2-{}", scope.id);
    let env = format!("SECRET={secret}");
    let id = fx
        .run(
            Spec::new("s")
                .env(&[env.as_str(), "DB_PASSWORD=pa55word-do-not-show"])
                .labels(&[("note", "<script>alert(1)</script>")]),
        )
        .await;
    let policy = fx.policy("[[allow]]\nname = \"*\"\n");
    let api = Api::with_policy(scope, policy).await;
    eventually(Duration::from_secs(5), "figures sampled", || async {
        api.find(&id)
            .await
            .filter(|c| !c["resources"].is_null())
            .map(|_| ())
    })
    .await
    .unwrap();
    let name = scope.name("s");
    let mut answers = Vec::new();
    for path in [
        "/containers".to_string(),
        "/containers?state=running".to_string(),
        "/containers?name=*-s".to_string(),
        format!("/containers/{id}"),
        format!("/containers/{}", &id[..10]),
        format!("/containers/{name}"),
        format!("/containers/{name}/logs?tail=100"),
        "/metrics".to_string(),
        "/readyz".to_string(),
        "/containers/nope".to_string(),
    ] {
        answers.push((path.clone(), api.get(&path).await));
        answers.push((format!("{path} (html)"), api.get_html(&path).await));
        answers.push((format!("HEAD {path}"), api.request("HEAD", &path, &[]).await));
    }
    for (what, r) in &answers {
        assert!(r.status < 500, "{what}: {}", r.status);
        for needle in [secret.as_str(), "SECRET=", "pa55word", "DB_PASSWORD"] {
            assert!(!r.body.contains(needle), "{what} shows {needle}: {}", r.body);
            assert!(
                r.headers.iter().all(|(_, v)| !v.contains(needle)),
                "{what} header shows {needle}"
            );
        }
    }
    // Docker strings are escaped on the pages.
    let detail = api.get_html(&format!("/containers/{id}")).await.body;
    assert!(
        detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{detail}"
    );
    assert!(!detail.contains("<script>"));
    api.stop().await.unwrap();
}
