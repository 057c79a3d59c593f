//! The bad-input suite against the real server and engine: unknown and ambiguous IDs, bad
//! query values, `tail` out of range, path tricks, very long IDs, every non-GET method, a
//! missing or wrong token, and garbage on the socket. Each gets the right 4xx with a JSON
//! body, and the server stays up throughout. Requests go through testkit's client (paths
//! as written); only the garbage is sent as raw bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Api, Opts, request, send_bytes};
use testkit::{Fixture, Spec};

const TOKEN: &str = "dwtest-token-0123456789";

#[tokio::test]
async fn bad_input_gets_json_4xx_and_the_server_stays_up() {
    let Some(fx) = Fixture::new().await else { return };
    let scope = &fx.scope;
    // Create containers until two IDs share their first character: an ambiguous prefix.
    let mut ids: Vec<String> = Vec::new();
    let prefix = loop {
        let id = fx.run(Spec::new(&format!("c{}", ids.len())).created_only()).await;
        if let Some(other) = ids.iter().find(|o| o[..1] == id[..1]) {
            let common = other
                .chars()
                .zip(id.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect::<String>();
            ids.push(id);
            break common;
        }
        ids.push(id);
        assert!(ids.len() <= 17, "pigeonhole");
    };
    let running = fx.run(Spec::new("run")).await;
    let api = Api::start(
        scope,
        Opts {
            token: Some(TOKEN.into()),
            ..Default::default()
        },
    )
    .await;
    let name = scope.name("run");

    // Unknown and ambiguous references.
    api.get("/containers/dwtest-no-such-container")
        .await
        .assert_error(404, "not_found", "unknown name");
    api.get(&format!("/containers/{}", "f".repeat(64)))
        .await
        .assert_error(404, "not_found", "unknown full ID");
    api.get("/containers/dwtest-no-such-container/logs")
        .await
        .assert_error(404, "not_found", "logs of an unknown container");
    let r = api.get(&format!("/containers/{prefix}")).await;
    r.assert_error(409, "ambiguous", "ambiguous prefix");
    let candidates = r.json()["candidates"].as_array().unwrap().clone();
    assert!(candidates.len() >= 2, "{}", r.body);
    api.get(&format!("/containers/{prefix}/logs")).await.assert_error(
        409,
        "ambiguous",
        "logs of an ambiguous prefix",
    );

    // Bad query values, each naming its parameter.
    for q in [
        "state=sleeping",
        "state=running,",
        "allowed=true",
        "name=[",
        "image={a",
        "bogus=1",
        "name=a&name=b",
    ] {
        api.get(&format!("/containers?{q}"))
            .await
            .assert_error(400, "bad_request", q);
    }
    api.get(&format!("/containers/{name}?verbose=1"))
        .await
        .assert_error(400, "bad_request", "detail takes no parameters");

    // tail out of range or not a number; in range is text.
    for tail in ["0", "10001", "-1", "abc", "1.5", "99999999999", "1e3", "%20"] {
        let r = api.get(&format!("/containers/{name}/logs?tail={tail}")).await;
        r.assert_error(400, "bad_request", &format!("tail={tail}"));
        assert!(
            r.json()["message"].as_str().unwrap().contains("\"tail\""),
            "{}",
            r.body
        );
    }
    api.get(&format!("/containers/{name}/logs?lines=5"))
        .await
        .assert_error(400, "bad_request", "unknown logs parameter");
    for tail in ["1", "10000"] {
        let r = api.get(&format!("/containers/{name}/logs?tail={tail}")).await;
        assert_eq!(r.status, 200, "tail={tail}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(r.body.contains("dw-sleeper up"), "{}", r.body);
    }

    // Path tricks and very long references.
    for (path, status, code) in [
        ("/containers/../etc/passwd", 404, "not_found"),
        ("/containers/../../etc/passwd", 404, "not_found"),
        ("/containers/..", 400, "bad_request"),
        ("/containers/.", 400, "bad_request"),
        ("/containers/%2e%2e", 400, "bad_request"),
        ("/containers/%2e%2e/logs", 400, "bad_request"),
        ("/containers/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400, "bad_request"),
        ("/containers/..%2f..%2fetc%2fpasswd/logs", 400, "bad_request"),
        ("/containers/%00", 400, "bad_request"),
        ("/containers/a%20b", 400, "bad_request"),
        ("/containers/-rf", 400, "bad_request"),
        ("/%2e%2e/containers", 404, "not_found"),
        ("/containers/x/logs/../../../etc", 404, "not_found"),
        ("/containers/x/y", 404, "not_found"),
        ("/etc/passwd", 404, "not_found"),
        ("/", 404, "not_found"),
    ] {
        api.get(path).await.assert_error(status, code, path);
    }
    for len in [257, 10_000, 60_000] {
        let path = format!("/containers/{}", "a".repeat(len));
        api.get(&path)
            .await
            .assert_error(400, "bad_request", &format!("{len}-character ID"));
    }

    // Every method but GET and HEAD, on every route (with a valid token: the 405 is about
    // the method, not the credentials).
    let routes = [
        "/containers".to_string(),
        format!("/containers/{name}"),
        format!("/containers/{name}/logs"),
        "/healthz".to_string(),
        "/readyz".to_string(),
        "/metrics".to_string(),
    ];
    for path in &routes {
        for method in [
            "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "KILL",
        ] {
            let r = api
                .request(method, path, &[("Content-Type", "application/json")])
                .await;
            r.assert_error(405, "method_not_allowed", &format!("{method} {path}"));
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
        let r = api.request("HEAD", path, &[]).await;
        assert_eq!(r.status, 200, "HEAD {path}");
        assert!(r.body.is_empty(), "HEAD {path} has no body");
    }
    let r = request(api.addr, "POST", "/healthz", &[]).await;
    r.assert_error(405, "method_not_allowed", "POST /healthz without a token");
    // A body with a write method changes nothing.
    let before = api.list("").await.len();
    let r = request(
        api.addr,
        "DELETE",
        &format!("/containers/{name}"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    r.assert_error(405, "method_not_allowed", "DELETE a container");
    assert_eq!(api.list("").await.len(), before);
    assert!(fx.state(&running).await.as_deref() == Some("running"));

    // Missing or wrong token: 401 with a Bearer challenge, on every route but /healthz.
    for path in routes
        .iter()
        .filter(|p| *p != "/healthz")
        .chain(&["/nope".to_string()])
    {
        for auth in [
            None,
            Some("Bearer wrong".to_string()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
            Some(format!("Basic {TOKEN}")),
            Some("Bearer".to_string()),
        ] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let r = request(api.addr, "GET", path, &headers).await;
            r.assert_error(401, "unauthorized", &format!("{path} with {auth:?}"));
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{path}"
            );
            assert!(!r.body.contains(TOKEN), "the token is never echoed");
        }
    }
    assert_eq!(request(api.addr, "GET", "/healthz", &[]).await.status, 200);

    // Garbage on the socket (raw bytes: no HTTP client sends these): hyper answers 400 (or
    // closes); the server stays up.
    for garbage in [
        &b"HELLO\r\n\r\n"[..],
        b"GET /containers HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ] {
        let _ = send_bytes(api.addr, garbage).await;
    }

    // Still serving, and correctly.
    assert_eq!(request(api.addr, "GET", "/healthz", &[]).await.status, 200);
    let listed = api.list("").await;
    assert_eq!(listed.len(), ids.len() + 1);
    let m = api.get("/metrics").await.body;
    assert!(
        m.contains(r#"status="405""#) && m.contains(r#"status="401""#),
        "{m}"
    );
    api.stop().await.unwrap();
}

#[tokio::test]
async fn without_docker_the_api_still_answers() {
    // No engine needed: a socket that does not exist. /healthz stays 200 (the process is
    // alive), /readyz says 503, lists are empty and say they are not synced, logs are 503.
    let api = Api::start_unsynced(
        None,
        Opts {
            docker_host: Some("unix:///nonexistent/dwtest-docker.sock".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(api.get("/healthz").await.status, 200);
    api.get("/readyz")
        .await
        .assert_error(503, "not_ready", "readyz before any sync");
    let r = api.get("/containers").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["synced"], false);
    let html = api.get_html("/containers").await.body;
    assert!(
        html.contains("NOT synced"),
        "the page says the figures may be stale"
    );
    api.get("/containers/x")
        .await
        .assert_error(404, "not_found", "no containers known");
    api.stop().await.unwrap();
}
