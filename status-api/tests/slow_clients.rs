//! status-api on an open network (no Docker needed): 5,000 connections that send half a
//! request are closed within the header-read timeout while a normal keep-alive client keeps
//! getting answers in under 50 ms; file descriptors return to their baseline; the log gets
//! no line per slow client; over the connection cap new clients wait while the clients
//! already connected keep being served.
//!
//! File descriptors: the test process holds both ends of every connection (about 10,000
//! for 5,000 clients), so it raises its own RLIMIT_NOFILE soft limit to the hard limit with
//! the `rlimit` crate (the server runs in this process, so that covers it too) and fails
//! with the numbers if the hard limit is too low (raise it with `ulimit -Hn` as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Api, KeepAlive, Opts, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW_CLIENTS: usize = 5_000;
/// The header-read timeout these tests configure (the default is 10 s).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Log lines at the default level (INFO), captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Captured {
        let c = Captured::default();
        let writer = c.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        c
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until the number of open file descriptors has not changed for 200 ms (the
/// server is done starting up) and returns it.
async fn steady_fds() -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut last, mut since) = (open_fds(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = open_fds();
        if n != last {
            (last, since) = (n, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(200) || Instant::now() > deadline {
            return n;
        }
    }
}

/// Opens a connection, sends half a request (raw bytes: no HTTP client stops mid-header)
/// and returns how long until the server closed it.
async fn half_request(addr: SocketAddr) -> Duration {
    let mut s = loop {
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            // A full listen queue drops SYNs; the kernel retries, but a refused connect
            // (rare) is retried here.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    s.write_all(b"GET /containers HTTP/1.1\r\nHost: slow\r\nAccept: app")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(TIMEOUT * 4, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
            // hyper may answer 408 before closing: read on to the close.
            Ok(Ok(_)) => continue,
            Err(_) => return t0.elapsed(),
        }
    }
}

fn raise_nofile(need: u64) {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let new = rlimit::increase_nofile_limit(hard).unwrap();
    eprintln!("RLIMIT_NOFILE: soft {soft} -> {new}, hard {hard}");
    assert!(
        new >= need,
        "this test needs {need} open files (both ends of {SLOW_CLIENTS} connections); the hard limit is {hard}: raise it (ulimit -Hn) and run again"
    );
}

fn no_docker() -> Opts {
    Opts {
        docker_host: Some("unix:///nonexistent/dwtest-api-docker.sock".into()),
        header_read_timeout: Some(TIMEOUT),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_half_requests_are_closed_while_a_normal_client_is_served() {
    raise_nofile(2 * SLOW_CLIENTS as u64 + 500);
    let log = Captured::install();
    let api = Api::start_unsynced(
        None,
        Opts {
            max_connections: Some(SLOW_CLIENTS + 100),
            ..no_docker()
        },
    )
    .await;
    let addr = api.addr;
    let baseline = steady_fds().await;
    let lines_before = log.text().lines().count();

    // The slow clients and the normal client are other programs on the network: each runs
    // on a thread (and runtime) of its own, so neither starves the other or the server.
    let started = Instant::now();
    let slow = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // 5,000 a second: 100 every 20 ms.
            let mut handles = Vec::with_capacity(SLOW_CLIENTS);
            for i in 0..SLOW_CLIENTS {
                if i % 100 == 99 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                handles.push(tokio::spawn(half_request(addr)));
            }
            let mut closed_after = Vec::with_capacity(SLOW_CLIENTS);
            for h in handles {
                closed_after.push(h.await.unwrap());
            }
            closed_after
        })
    });
    // The normal client, every 20 ms, until the slow ones are done.
    let normal_side = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut took = Vec::new();
            let mut normal = KeepAlive::connect(addr).await;
            assert_eq!(normal.get("/healthz").await.0.status, 200);
            while !slow.is_finished() {
                let (r, t) = normal.get("/healthz").await;
                assert_eq!(r.status, 200);
                took.push(t);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (slow.join().unwrap(), took, normal)
        })
    });
    let (closed_after, mut took, normal_again) =
        tokio::task::spawn_blocking(move || normal_side.join().unwrap())
            .await
            .unwrap();
    drop(normal_again);
    took.sort();
    let answered = took.len();
    let worst = took.last().copied().unwrap_or_default();
    let median = took.get(answered / 2).copied().unwrap_or_default();
    let total = started.elapsed();
    let slowest = closed_after.iter().max().copied().unwrap_or_default();
    let fastest = closed_after.iter().min().copied().unwrap_or_default();
    let open_at_peak = closed_after.len();
    eprintln!(
        "{open_at_peak} half requests: closed {fastest:?}..{slowest:?} after sending (timeout {TIMEOUT:?}); \
         all done in {total:?}; normal client: {answered} answers, median {median:?}, slowest {worst:?}"
    );
    assert_eq!(closed_after.len(), SLOW_CLIENTS);
    assert!(
        slowest <= TIMEOUT + Duration::from_millis(1500),
        "a half request stayed open {slowest:?} (timeout {TIMEOUT:?})"
    );
    assert!(
        fastest >= TIMEOUT - Duration::from_millis(500),
        "closed before the timeout: {fastest:?}"
    );
    assert!(answered >= 10, "the normal client got only {answered} answers");
    assert!(
        worst < Duration::from_millis(50),
        "the normal client waited {worst:?}"
    );

    // The server counted them as failed connections, and logged no line for each.
    let metrics = api.get("/metrics").await.body;
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("status_api_http_connection_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("status_api_http_connection_errors_total in /metrics");
    assert!(
        errors >= SLOW_CLIENTS as u64,
        "{errors} connection errors counted"
    );
    let text = log.text();
    let new_lines = text.lines().count() - lines_before;
    assert!(
        new_lines < 20,
        "{new_lines} log lines for {SLOW_CLIENTS} slow clients:\n{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");

    // File descriptors back to where they were (the normal client's pair included).
    let mut fds = open_fds();
    for _ in 0..100 {
        if fds <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds = open_fds();
    }
    eprintln!("open fds: baseline {baseline}, after {fds}");
    assert!(fds <= baseline, "fds: baseline {baseline}, now {fds}");
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_new_clients_wait_and_connected_ones_are_served() {
    const CAP: usize = 8;
    let api = Api::start_unsynced(
        None,
        Opts {
            max_connections: Some(CAP),
            ..no_docker()
        },
    )
    .await;
    let addr = api.addr;
    let mut normal = KeepAlive::connect(addr).await;
    assert_eq!(normal.get("/healthz").await.0.status, 200);
    // Fill the cap with silent connections (they send nothing at all).
    let mut idle = Vec::new();
    for _ in 0..CAP - 1 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Until the server has accepted them all: its open-connections gauge, read over the
    // connected client, says CAP.
    let full = format!("status_api_http_connections_open {CAP}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = normal.get("/metrics").await.0.body;
        if m.lines().any(|l| l == full) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the silent connections were not all accepted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let waiting = tokio::spawn(async move {
        let r = request(addr, "GET", "/healthz", &[]).await;
        (r, t0.elapsed())
    });
    // While the newcomer waits, the connected client is served as before.
    let mut worst = Duration::ZERO;
    while t0.elapsed() < TIMEOUT / 2 {
        let (r, took) = normal.get("/healthz").await;
        assert_eq!(r.status, 200);
        worst = worst.max(took);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !waiting.is_finished(),
        "the client over the cap was served at once"
    );
    assert!(
        worst < Duration::from_millis(50),
        "the connected client waited {worst:?}"
    );
    // The silent ones time out, freeing room: the newcomer gets its answer.
    let (r, waited) = tokio::time::timeout(TIMEOUT * 3, waiting).await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    eprintln!("over the cap: answered after {waited:?} (timeout {TIMEOUT:?})");
    assert!(waited >= TIMEOUT / 2, "answered after {waited:?}");
    drop(idle);
    api.stop().await.unwrap();
}
