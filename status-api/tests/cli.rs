//! The binary's contract: the `healthcheck` subcommand's exit codes, exit code 2 for a bad
//! allowlist, a taken port is an error (not a panic), `--help` hides the token's value, and
//! a graceful shutdown on SIGTERM that keeps its deadline even with a stuck client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Api, Opts, request};
use testkit::eventually;
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_status-api");

/// Runs the binary to completion (with a deadline) and returns (exit code, stderr+stdout).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("STATUS_API_TOKEN")
        .env_remove("DOCKWARDEN_ALLOWLIST")
        .env("DOCKER_HOST", "unix:///nonexistent/dwtest-docker.sock")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("status-api {args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Multi-threaded: the probes below block this thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_on_200_and_1_otherwise() {
    let api = Api::start_unsynced(
        None,
        Opts {
            docker_host: Some("unix:///nonexistent/dwtest-docker.sock".into()),
            token: Some("t".into()),
            ..Default::default()
        },
    )
    .await;
    let url = format!("http://127.0.0.1:{}/healthz", api.addr.port());
    let (code, out) = run(&["healthcheck", "--url", &url], &[]);
    assert_eq!(code, 0, "{out}");
    // The port of STATUS_API_LISTEN is the default target.
    let listen = format!("0.0.0.0:{}", api.addr.port());
    let (code, out) = run(&["healthcheck"], &[("STATUS_API_LISTEN", &listen)]);
    assert_eq!(code, 0, "{out}");
    // Not synced: /readyz is 503, so probing it fails.
    let ready = format!("http://127.0.0.1:{}/readyz", api.addr.port());
    let (code, out) = run(&["healthcheck", "--url", &ready], &[]);
    assert_eq!(code, 1, "{out}");
    api.stop().await.unwrap();
    // Nothing listens any more.
    let (code, out) = run(&["healthcheck", "--url", &url], &[]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = run(&["healthcheck", "--url", "ftp://x/"], &[]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn bad_allowlist_exits_2_with_its_position() {
    let dir = testkit::temp_dir("cli-bad-policy").unwrap();
    let bad = dir.path().join("allowlist.toml");
    testkit::write_atomic(&bad, "[[allow]]\nnmae = \"web-*\"\n");
    let (code, out) = run(
        &["--listen", "127.0.0.1:0", "--allowlist", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("allowlist.toml:2:"),
        "file:line in the message: {out}"
    );
    let missing = dir.path().join("missing.toml");
    let (code, out) = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--allowlist",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}");
}

#[test]
fn taken_port_is_an_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, out) = run(&["--listen", &addr], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot listen on"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn help_hides_the_token_value() {
    let (code, out) = run(&["--help"], &[("STATUS_API_TOKEN", "dwtest-hidden-value")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("STATUS_API_TOKEN"), "{out}");
    assert!(!out.contains("dwtest-hidden-value"), "{out}");
    for flag in [
        "--listen",
        "--allowlist",
        "--docker-host",
        "--token",
        "--log-format",
        "healthcheck",
    ] {
        assert!(out.contains(flag), "{flag} in --help: {out}");
    }
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_within_the_deadline() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("DOCKER_HOST", "unix:///nonexistent/dwtest-docker.sock")
        .env_remove("STATUS_API_TOKEN")
        .env_remove("DOCKWARDEN_ALLOWLIST")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The bound address is in the "listening" line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr: std::net::SocketAddr = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("a log line");
        if line.contains("status-api listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no listening line");
    };
    assert_eq!(request(addr, "GET", "/healthz", &[]).await.status, 200);
    // A client that sent half a request and went quiet must not hold the shutdown open.
    let mut stuck = tokio::net::TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"GET /containers HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Once the server has accepted it: /healthz, the stuck client and the /metrics request
    // that reads this make three accepted connections.
    eventually(
        Duration::from_secs(5),
        "the server to accept the stuck client",
        || async {
            let m = request(addr, "GET", "/metrics", &[]).await.body;
            let accepted: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("status_api_http_connections_total "))
                .and_then(|v| v.trim().parse().ok())?;
            (accepted >= 3).then_some(())
        },
    )
    .await
    .unwrap();
    let pid = child.id().to_string();
    let t0 = Instant::now();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("no exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    eprintln!("exited {status:?} {took:?} after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(9),
        "the grace period is 5 s, under docker stop's 10 s: {took:?}"
    );
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    let log = lines.join("\n");
    assert!(log.contains("no longer accepting connections"), "{log}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "port closed");
    drop(stuck);
}
