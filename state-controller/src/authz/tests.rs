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
    let verifier = common::provenance::Verifier::new(Default::default());
    let metrics = Arc::new(Metrics::new(&store, &policy, Arc::default(), &verifier));
    let engine = Fake::default();
    engine.state().images = images;
    engine.state().containers = containers.into_iter().collect();
    Authz {
        policy,
        store,
        engine,
        verifier,
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

fn post(uri: &str, body: &str) -> AuthzRequest {
    create(uri, body, Some("application/json"))
}

/// A plugin whose engine also has an allowed container `app-1` (image good:1) that asks
/// for nothing, and a volume that binds the host's root.
fn power_plugin(policy: &str) -> Authz<Fake> {
    let p = plugin(policy);
    {
        let mut s = p.engine.state();
        let app = json!({"Id": "a1", "Name": "/app-1", "Image": "sha256:good", "Path": "/x",
            "State": {"Status": "running"}, "Config": {"Image": "good:1", "Labels": {}, "User": ""},
            "HostConfig": {"NetworkMode": "default"}, "Mounts": []});
        s.containers.insert("a1".into(), app.clone());
        s.containers.insert("app-1".into(), app);
        s.volumes.insert(
            "root".into(),
            json!({"Name": "root", "Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}),
        );
    }
    p
}

#[tokio::test]
async fn host_power_is_refused_unless_the_allowing_rule_grants_it() {
    let p = power_plugin("[[allow]]\nimage = \"good:*\"\n");
    for body in [
        r#"{"Image":"good:1","HostConfig":{"Privileged":true}}"#,
        r#"{"Image":"good:1","HostConfig":{"PidMode":"host"}}"#,
        r#"{"Image":"good:1","hostconfig":{"binds":["/:/host"]}}"#,
        r#"{"Image":"good:1","HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}"#,
        r#"{"Image":"good:1","HostConfig":{"Binds":["root:/h"]}}"#,
        r#"{"Image":"good:1","HostConfig":{"Mounts":[{"Type":"volume","Source":"x","Target":"/h","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/etc"}}}}]}}"#,
        r#"{"Image":"good:1","HostConfig":{"CapAdd":["sys_admin"]}}"#,
        r#"{"Image":"good:1","HostConfig":{"SecurityOpt":["seccomp:unconfined"]}}"#,
        r#"{"Image":"good:1","HostConfig":{"Devices":[{"PathOnHost":"/dev/fuse"}]}}"#,
        r#"{"Image":"good:1","HostConfig":{"Sysctls":{"kernel.msgmax":"1"}}}"#,
        r#"{"Image":"good:1","HostConfig":{"VolumesFrom":["nope"]}}"#,
        r#"{"Image":"good:1","Binds":["/:/host"]}"#,
    ] {
        let a = p.judge(&post("/containers/create?name=x", body)).await;
        assert!(!a.allow, "{body}");
        assert!(a.msg.contains("allow[1]"), "names the rule: {}", a.msg);
    }
    let a = p
        .judge(&post(
            "/containers/create?name=x",
            r#"{"Image":"good:1","HostConfig":{"PidMode":"host"}}"#,
        ))
        .await;
    assert!(
        a.msg.ends_with(
            r#"host pid namespace (allow[1] matches it but does not grant host_namespaces = ["pid"])"#
        ),
        "{}",
        a.msg
    );
    let kept = p.decisions.list(None);
    assert_eq!(kept.last().unwrap().why, Some(common::decision::WhyKind::Power));
    // Nothing asked: allowed as before.
    assert!(
        p.judge(&post("/containers/create", r#"{"Image":"good:1"}"#))
            .await
            .allow
    );

    // Exactly the grant, and the `:ro` case.
    let p = power_plugin(
        "[[allow]]\nimage = \"good:*\"\nhost_namespaces = [\"pid\"]\nmounts = [\"/var/log/**:ro\"]\n",
    );
    let ok = |hc: &str| {
        post(
            "/containers/create",
            &format!(r#"{{"Image":"good:1","HostConfig":{hc}}}"#),
        )
    };
    assert!(p.judge(&ok(r#"{"PidMode":"host"}"#)).await.allow);
    assert!(p.judge(&ok(r#"{"Binds":["/var/log/app:/l:ro"]}"#)).await.allow);
    assert!(
        !p.judge(&ok(r#"{"Binds":["/var/log/app:/l"]}"#)).await.allow,
        "read-write"
    );
    assert!(
        !p.judge(&ok(r#"{"Binds":["/var:/v:ro"]}"#)).await.allow,
        "a directory above"
    );
    assert!(!p.judge(&ok(r#"{"PidMode":"host","IpcMode":"host"}"#)).await.allow);
}

#[tokio::test]
async fn exec_start_services_and_engine_plugins_are_judged_too() {
    let p = power_plugin("[[allow]]\nimage = \"good:*\"\n");
    // exec --privileged into an allowed container: the container's rule must grant it.
    assert!(
        !p.judge(&post(
            "/containers/app-1/exec",
            r#"{"Cmd":["sh"],"Privileged":true}"#
        ))
        .await
        .allow
    );
    assert!(
        p.judge(&post("/containers/app-1/exec", r#"{"Cmd":["sh"]}"#))
            .await
            .allow
    );
    assert!(
        !p.judge(&post("/containers/app-1/exec", "")).await.allow,
        "no body: not judgeable"
    );
    // A start on an old API version sets a new HostConfig.
    assert!(
        !p.judge(&post(
            "/v1.23/containers/app-1/start",
            r#"{"HostConfig":{"Binds":["/:/h"]}}"#
        ))
        .await
        .allow
    );
    assert!(p.judge(&post("/v1.41/containers/app-1/start", "")).await.allow);
    // Services: the task template's power; what only a node tells is left to the event path.
    let svc = |spec: &str| post("/services/create", spec);
    assert!(
        !p.judge(&svc(r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"good:1","CapabilityAdd":["NET_ADMIN"]}}}"#))
            .await
            .allow
    );
    assert!(
        !p.judge(&svc(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"evil:1"}}}"#
        ))
        .await
        .allow,
        "no rule allows its image"
    );
    assert!(
        p.judge(&svc(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"good:1"}}}"#
        ))
        .await
        .allow
    );
    let named = power_plugin("[[allow]]\nname = \"s.*\"\n");
    assert!(
        named
            .judge(&svc(
                r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"evil:1"}}}"#
            ))
            .await
            .allow,
        "a name rule is settled by the tasks' names, on the nodes"
    );
    // Engine plugins: only those engine_plugins lists.
    let pull = post("/plugins/pull?remote=vieux/sshfs:latest&name=sshfs", "[]");
    let a = p.judge(&pull).await;
    assert!(!a.allow);
    assert!(
        a.msg.contains("engine plugin docker.io/vieux/sshfs:latest"),
        "{}",
        a.msg
    );
    let listed = power_plugin("engine_plugins = [\"vieux/sshfs:*\"]\n[[allow]]\nimage = \"good:*\"\n");
    assert!(listed.judge(&pull).await.allow);
    // An alias is judged by what it was pulled from.
    listed
        .engine
        .state()
        .plugins
        .insert("fs".into(), "evil/fs:latest".into());
    assert!(!listed.judge(&post("/plugins/fs/enable", "")).await.allow);
}

#[tokio::test]
async fn audit_mode_lets_power_through_and_logs_would_deny_naming_it() {
    let p = power_plugin("mode = \"audit\"\n[[allow]]\nimage = \"good:*\"\n");
    let a = p
        .judge(&post(
            "/containers/create?name=x",
            r#"{"Image":"good:1","HostConfig":{"CapAdd":["ALL"]}}"#,
        ))
        .await;
    assert!(a.allow);
    let kept = p.decisions.list(None);
    let r = kept.last().unwrap();
    assert_eq!(r.result, common::decision::ActionResult::Audit);
    assert!(r.reason.contains("capability ALL"), "{}", r.reason);
}
