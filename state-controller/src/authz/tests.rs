//! The plugin's judgements against a fake engine: no Docker needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use common::policy::Policy;
use serde_json::json;

use super::*;

use common::engine::fake::FakeEngine as Fake;

fn plugin(policy: &str) -> Authz<Fake> {
    let store = Store::new();
    let policy = PolicyHandle::fixed(Policy::parse(policy, "allow.toml").unwrap());
    let image = |tag: &str, id: &str| {
        (
            tag.to_string(),
            json!({"Id": id, "RepoTags": [tag], "RepoDigests": []}),
        )
    };
    let images = HashMap::from([
        image("good:1", "sha256:good"),
        image("sha256:good", "sha256:good"),
        image("evil:1", "sha256:evil"),
        image("sha256:evil", "sha256:evil"),
    ]);
    let running = json!({"Id": "c1", "Name": "/bad-running", "Image": "sha256:evil", "Path": "/x",
        "State": {"Status": "created"}, "Config": {"Image": "evil:1", "Labels": {}}});
    let containers = HashMap::from([
        ("c1".to_string(), running.clone()),
        ("bad-running".to_string(), running),
    ]);
    let metrics = Arc::new(Metrics::new(&store, &policy, Arc::default()));
    let engine = Fake::default();
    engine.state().images = images;
    engine.state().containers = containers.into_iter().collect();
    Authz {
        policy,
        store,
        engine,
        identity: Arc::default(),
        metrics,
        decisions: Decisions::default(),
    }
}

const POLICY: &str = "[[allow]]\nimage = \"good:*\"\n[[allow]]\nlabels = { tier = \"trusted\" }\n";

fn create(uri: &str, body: &str, content_type: Option<&str>) -> AuthzRequest {
    AuthzRequest {
        method: "POST".into(),
        uri: uri.into(),
        body_b64: Some(base64::engine::general_purpose::STANDARD.encode(body)),
        headers: content_type
            .map(|c| [("Content-Type".to_string(), c.to_string())].into())
            .unwrap_or_default(),
        ..Default::default()
    }
}

#[tokio::test]
async fn creates_are_judged_on_the_body_the_engine_reads() {
    let p = plugin(POLICY);
    let json = Some("application/json");
    assert!(
        p.judge(&create(
            "/v1.41/containers/create?name=a",
            r#"{"Image":"good:1"}"#,
            json
        ))
        .await
        .allow
    );
    let a = p
        .judge(&create(
            "/containers/create?name=a",
            r#"{"Image":"evil:1"}"#,
            json,
        ))
        .await;
    assert!(!a.allow);
    assert!(
        a.msg.starts_with("dockwarden policy")
            && a.msg.contains("no [[allow]] rule matches")
            && a.msg.contains("evil:1"),
        "{}",
        a.msg
    );
    // What a careless plugin reads differently.
    for body in [
        r#"{"image":"evil:1"}"#,
        r#"{"Image":"good:1","Image":"evil:1"}"#,
        r#"{"Image":"good:1","iMaGe":"evil:1"}"#,
        r#"{"Image":"evil:1","Labels":{"tier":"trusted"},"labels":{"tier":"no"}}"#,
        "{\"Image\":\"evil:1\",\"Labels\":{\"tier\":\"trusted\"},\"Label\u{017F}\":null}",
        r#"{"Image":"good:1"} {"Image":"evil:1"}"#,
    ] {
        assert!(
            !p.judge(&create("/containers/create", body, json)).await.allow,
            "{body}"
        );
    }
    assert!(
        p.judge(&create(
            "/containers/create",
            r#"{"Image":"evil:1","Labels":{"tier":"trusted"}}"#,
            json
        ))
        .await
        .allow
    );
    // No body, a content type the engine does not forward a body for, a path in disguise.
    let mut no_body = create("/containers/create", "", json);
    no_body.body_b64 = None;
    assert!(!p.judge(&no_body).await.allow);
    assert!(
        !p.judge(&create(
            "/containers/create",
            r#"{"Image":"good:1"}"#,
            Some("text/plain")
        ))
        .await
        .allow
    );
    assert!(
        !p.judge(&create("/containers/cr%65ate", r#"{"Image":"evil:1"}"#, json))
            .await
            .allow
    );
    assert!(
        !p.judge(&create(
            "/containers/create?name=x;y",
            r#"{"Image":"good:1"}"#,
            json
        ))
        .await
        .allow
    );
    // An image the engine does not have: only what does not depend on it can allow.
    assert!(
        !p.judge(&create("/containers/create", r#"{"Image":"ghost:1"}"#, json))
            .await
            .allow
    );
}

#[tokio::test]
async fn names_are_read_as_the_engine_reads_them() {
    let p = plugin("[[allow]]\nname = \"ok-*\"\n");
    let json = Some("application/json");
    let body = r#"{"Image":"evil:1"}"#;
    assert!(
        p.judge(&create("/containers/create?name=ok-1", body, json))
            .await
            .allow
    );
    assert!(
        p.judge(&create("/containers/create?name=%2Fok-1", body, json))
            .await
            .allow
    );
    assert!(
        !p.judge(&create("/containers/create?name=evil&name=ok-1", body, json))
            .await
            .allow
    );
    assert!(
        !p.judge(&create("/containers/create", body, json)).await.allow,
        "a random name is not ok-*"
    );
}

#[tokio::test]
async fn existing_containers_are_judged_at_start_and_exec_the_rest_passes_at_once() {
    let p = plugin(POLICY);
    let req = |uri: &str| AuthzRequest {
        method: "POST".into(),
        uri: uri.into(),
        ..Default::default()
    };
    assert!(!p.judge(&req("/v1.41/containers/c1/start")).await.allow);
    assert!(!p.judge(&req("/containers/bad-running/restart")).await.allow);
    assert!(!p.judge(&req("/containers/c1/exec")).await.allow);
    assert!(
        p.judge(&req("/containers/nope/start")).await.allow,
        "no such container: the engine says 404"
    );
    assert!(p.judge(&req("/containers/c1/kill")).await.allow);
    let get = AuthzRequest {
        method: "GET".into(),
        uri: "/containers/json".into(),
        ..Default::default()
    };
    assert!(p.judge(&get).await.allow);
    let text = p.metrics.render();
    assert!(
        text.contains("dockwarden_authz_requests_total{endpoint=\"start\",result=\"deny\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("dockwarden_authz_requests_total{endpoint=\"other\",result=\"allow\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn audit_mode_lets_it_through_and_keeps_the_decision() {
    let p = plugin(&format!("mode = \"audit\"\n{POLICY}"));
    let a = p
        .judge(&create(
            "/containers/create?name=x",
            r#"{"Image":"evil:1"}"#,
            Some("application/json"),
        ))
        .await;
    assert!(a.allow);
    let kept = p.decisions.list(None);
    assert_eq!(
        (kept.len(), kept[0].result.as_text(), kept[0].trigger.to_string()),
        (1, "audit".into(), "authz create".to_string())
    );
    // Even what cannot be judged passes in audit mode, logged as it would be refused.
    let mut no_body = create("/containers/create", "", Some("application/json"));
    no_body.body_b64 = None;
    assert!(p.judge(&no_body).await.allow);
    assert_eq!(p.decisions.list(None).len(), 2);
}
