//! Helpers for the controller's integration tests: the real binary started as a child
//! process (scoped to one test's containers), its log, its metrics, the engine's own event
//! history (replayed, or recorded live for bursts larger than the engine's 256-event replay
//! buffer), many containers started at once, and a private `dockerd` for faults the shared
//! engine must not suffer.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::StreamExt;
use testkit::{SCOPE_LABEL, Scope, Spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `state-controller`, killed (by its PID) when dropped.
pub struct Controller {
    child: Child,
    pub log: PathBuf,
    pub metrics: u16,
}

impl Controller {
    /// Starts the binary with `--allowlist policy`, a free metrics port and `args`.
    pub fn start(policy: &Path, args: &[&str]) -> Controller {
        Self::start_env(policy, args, &[])
    }

    pub fn start_env(policy: &Path, args: &[&str], env: &[(&str, &str)]) -> Controller {
        let metrics = free_port();
        let log = policy.with_extension(format!("controller-{metrics}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_state-controller"))
            .arg("--allowlist")
            .arg(policy)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Controller { child, log, metrics }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`.
    pub async fn wait_log(&self, needles: &[&str], timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Ok(l.to_string());
            }
            if Instant::now() > deadline {
                bail!(
                    "no log line with {needles:?} within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Number of log lines containing every one of `needles`.
    pub fn count_log(&self, needles: &[&str]) -> usize {
        self.log_text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits for the first full list to be applied.
    pub async fn wait_synced(&self) {
        self.wait_log(&["state list synced"], Duration::from_secs(20))
            .await
            .unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (by its PID) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(self.metrics, "/metrics").await.unwrap()
    }

    /// Value of one metric line (exact name with labels), or 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- controller log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// A private temp directory removed on drop (policy files, logs).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to `path` the way editors do: a temp file renamed over the target.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Minimal HTTP/1.0 GET on loopback; returns the body.
pub async fn http_get(port: u16, path: &str) -> Result<String> {
    Ok(http_get_status(port, path).await?.1)
}

/// Minimal HTTP/1.0 GET on loopback (JSON asked for); returns the status code and the body.
pub async fn http_get_status(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status line in {:?}", buf.get(..80).unwrap_or(&buf)))?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `VmRSS` of a process, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn now_nano() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// The engine's own record of container events since `since_nano` (until now), filtered.
pub async fn engine_events(
    docker: &Docker,
    since_nano: i64,
    filters: &HashMap<&str, Vec<&str>>,
) -> Vec<EventMessage> {
    let fmt = |n: i64| format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000);
    let opts = EventsOptionsBuilder::default()
        .since(&fmt(since_nano))
        .until(&fmt(now_nano() + 1_000_000))
        .filters(filters)
        .build();
    docker
        .events(Some(opts))
        .filter_map(|e| async move { e.ok() })
        .collect()
        .await
}

/// Container ID -> every (action, engine time in ns) seen for it.
type Seen = Arc<Mutex<HashMap<String, Vec<(String, i64)>>>>;

/// The engine's container events, recorded live from the moment it is started. The engine
/// replays only its last 256 events (of every user of the engine) for `since`, so a test
/// that makes more than a few dozen containers, or shares the engine with other tests, must
/// read the stream as it happens: [`engine_events`] would silently miss the early ones.
pub struct EventLog {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    /// Records container events carrying `label` (`key=value`), from one second ago.
    pub fn start(docker: &Docker, label: &str) -> EventLog {
        let seen: Seen = Arc::default();
        let (docker, label, out) = (docker.clone(), label.to_string(), seen.clone());
        let since = now_nano() - 1_000_000_000;
        let task = tokio::spawn(async move {
            let filters = HashMap::from([("type", vec!["container"]), ("label", vec![label.as_str()])]);
            let opts = EventsOptionsBuilder::default()
                .since(&format!("{}.{:09}", since / 1_000_000_000, since % 1_000_000_000))
                .filters(&filters)
                .build();
            let mut events = docker.events(Some(opts));
            while let Some(Ok(e)) = events.next().await {
                let (Some(id), Some(action), Some(t)) = (e.actor.and_then(|a| a.id), e.action, e.time_nano)
                else {
                    continue;
                };
                out.lock().unwrap().entry(id).or_default().push((action, t));
            }
        });
        EventLog { seen, task }
    }

    /// Every (action, engine time in ns) seen for one container, in order.
    pub fn of(&self, id: &str) -> Vec<(String, i64)> {
        self.seen.lock().unwrap().get(id).cloned().unwrap_or_default()
    }

    /// Engine time of the first `action` of a container.
    pub fn first(&self, id: &str, action: &str) -> Option<i64> {
        self.of(id).into_iter().find(|(a, _)| a == action).map(|(_, t)| t)
    }

    /// Whether the container ever had `action` (`kill`, `die`, `destroy`, ...).
    pub fn saw(&self, id: &str, action: &str) -> bool {
        self.first(id, action).is_some()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates and starts many sleepers in `scope` at once (at most `in_flight` engine calls
/// at a time): `(name suffix, extra labels)` each. Returns `(name suffix, container ID)`;
/// a failure to create is an error, a failure to start is not (under `action = "remove"`
/// the controller may remove a denied container before its start).
pub async fn start_many(
    docker: &Docker,
    scope: &Scope,
    specs: Vec<(String, Vec<(String, String)>)>,
    in_flight: usize,
) -> Result<Vec<(String, String)>> {
    let results: Vec<Result<(String, String)>> = futures_util::stream::iter(specs)
        .map(|(name, labels)| async move {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let id = scope
                .run(docker, Spec::new(&name).labels(&labels).created_only())
                .await?;
            let _ = docker
                .start_container(&id, None::<bollard::query_parameters::StartContainerOptions>)
                .await;
            Ok((name, id))
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Every container of a scope: ID -> (name without the scope prefix, state).
pub async fn scope_states(docker: &Docker, scope: &Scope) -> HashMap<String, (String, String)> {
    let label = format!("{SCOPE_LABEL}={}", scope.id);
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let prefix = format!("/{}-", scope.id);
    docker
        .list_containers(Some(opts))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches(&prefix).to_string();
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            Some((c.id?, (name, state)))
        })
        .collect()
}

/// Waits until no container among `ids` is running (or restarting, or paused); returns the
/// names of those still running at `timeout`.
pub async fn wait_none_running(
    docker: &Docker,
    scope: &Scope,
    ids: &[String],
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let states = scope_states(docker, scope).await;
        let running: Vec<String> = ids
            .iter()
            .filter_map(|id| states.get(id))
            .filter(|(_, s)| matches!(s.as_str(), "running" | "restarting" | "paused"))
            .map(|(n, _)| n.clone())
            .collect();
        if running.is_empty() || Instant::now() > deadline {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Median and worst of a list of milliseconds (for the figures tests print, never assert).
pub fn median_worst(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

/// Actions (`create`, `start`, `kill`, `die`, ...) the engine recorded for one container.
pub async fn actions_of(docker: &Docker, since_nano: i64, id: &str) -> Vec<String> {
    let f = HashMap::from([("container", vec![id])]);
    engine_events(docker, since_nano, &f)
        .await
        .into_iter()
        .filter_map(|e| e.action)
        .collect()
}

/// A `dockerd` of our own on its own socket and data root (ECOSYSTEM §11): restarted and
/// cut at will without touching the shared engine. Stopped and deleted on drop.
pub struct PrivateEngine {
    pub dir: PathBuf,
    pub host: String,
    ns: String,
    child: Option<Child>,
    extra: Vec<String>,
}

impl PrivateEngine {
    pub async fn start(tag: &str) -> Result<PrivateEngine> {
        Self::start_with(tag, &[]).await
    }

    /// Like [`PrivateEngine::start`], with more `dockerd` flags (kept across restarts),
    /// e.g. `--shutdown-timeout 1` so a stop does not wait 15 s for containers that ignore
    /// SIGTERM (the sleeper does, as PID 1).
    pub async fn start_with(tag: &str, extra: &[&str]) -> Result<PrivateEngine> {
        let mut e = Self::prepare(tag, extra)?;
        e.launch().await?;
        Ok(e)
    }

    /// Its directory and address, without starting it yet (a plugin it needs must answer
    /// before it starts).
    pub fn prepare(tag: &str, extra: &[&str]) -> Result<PrivateEngine> {
        // Short path: Unix socket paths are limited to 108 bytes.
        let dir = PathBuf::from(format!("/tmp/dwtest-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let host = format!("unix://{}/docker.sock", dir.display());
        Ok(PrivateEngine {
            ns: format!("dwtest-{tag}-{}", std::process::id()),
            dir,
            host,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// The engine's socket file.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// Replaces the extra `dockerd` flags used from the next (re)start on.
    pub fn set_flags(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    /// Whether the dockerd process has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    pub async fn launch(&mut self) -> Result<()> {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dockerd.log"))?;
        // Its own (empty) config: the host's /etc/docker/daemon.json may set data-root etc.
        std::fs::write(d.join("daemon.json"), "{}")?;
        // In a network namespace of its own: a dockerd started with --bridge=none deletes
        // any interface named docker0 it can see (moby's removeDefaultBridgeInterface), which
        // in the host's namespace is the shared engine's default bridge. `unshare` execs
        // dockerd, so the child's PID is dockerd's. Its containers use no network anyway.
        let child = Command::new("unshare")
            .args(["--net", "dockerd"])
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args([
                "-H",
                &self.host,
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ])
            .args([
                "--containerd-namespace",
                &self.ns,
                "--containerd-plugins-namespace",
                &format!("{}-p", self.ns),
            ])
            .args(&self.extra)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting dockerd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.cli(&["info"]).is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                bail!(
                    "private dockerd did not come up; log:\n{}",
                    std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the Docker CLI against this engine.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Copies an image from the shared engine into this one.
    pub fn load_image(&self, image: &str) -> Result<()> {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {image} | DOCKER_HOST={} docker load -q",
                self.host
            ))
            .status()?;
        if !status.success() {
            bail!("loading {image} into the private engine failed");
        }
        Ok(())
    }

    pub async fn client(&self) -> Docker {
        Docker::connect_with_host(&self.host)
            .unwrap()
            .negotiate_version()
            .await
            .unwrap()
    }

    /// SIGTERM, and wait until the process is gone (it must be, before a restart on the
    /// same data root).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.launch().await
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Ok(ids) = self.cli(&["ps", "-aq"])
        {
            for id in ids.split_whitespace() {
                let _ = self.cli(&["rm", "-f", id]);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            for _ in 0..300 {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Left-over mounts (if any) must go before the directory can.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {0}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.display()
            ))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the Docker CLI; its stdout, trimmed, or an error with its stderr.
pub fn docker_cli(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("running the docker CLI")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits until the container's state is `want` (`None`: gone).
pub async fn wait_state(docker: &Docker, id: &str, want: Option<&str>, within: Duration) -> Result<()> {
    testkit::eventually(within, &format!("{id} to be {want:?}"), || async {
        (testkit::state_of(docker, id).await.as_deref() == want).then_some(())
    })
    .await
}

/// A Unix-socket proxy in front of the shared engine that answers HTTP 500 to the first
/// `failures` requests whose request line contains `needle`, and forwards everything else
/// untouched: engine faults on demand (a failing kill) with the real engine behind.
pub struct FaultProxy {
    pub host: String,
    pub injected: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(socket: &Path, needle: &str, failures: usize) -> FaultProxy {
        use std::sync::atomic::Ordering::SeqCst;
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let injected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, needle) = (injected.clone(), needle.to_string());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (count, needle) = (count.clone(), needle.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    if line.contains(&needle) && count.fetch_add(1, SeqCst) < failures {
                        let body = "{\"message\":\"injected by the test's fault proxy\"}";
                        let resp = format!(
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = client.write_all(resp.as_bytes()).await;
                        return;
                    }
                    let Ok(mut upstream) = tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    else {
                        return;
                    };
                    if upstream.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        FaultProxy {
            host: format!("unix://{}", socket.display()),
            injected,
            task,
        }
    }

    /// Requests answered with the injected error so far.
    pub fn injected(&self) -> usize {
        self.injected.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A private image registry (Debian's `docker-registry`) on a loopback port, so images get
/// repo digests for real. Killed (by its PID) and its storage removed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: TempDir,
}

impl Registry {
    pub async fn start(name: &str) -> Result<Registry> {
        let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context(
                "Debian's docker-registry is not installed (apt-get install docker-registry; .ci/run does)",
            )?;
        let dir = TempDir::new(name);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nlog:\n  level: warn\n",
            dir.path("data").display()
        );
        std::fs::write(dir.path("config.yml"), config)?;
        let log = std::fs::File::create(dir.path("registry.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.path("config.yml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting docker-registry")?;
        let r = Registry {
            child,
            addr: format!("localhost:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(r)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP/1.1 request (bytes as given: malformed on purpose where that is the
/// test) over a unix socket and returns the status code and body. `Connection: close` is
/// the caller's to add.
pub async fn raw_unix(socket: &Path, request: &[u8]) -> Result<(u16, String)> {
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    s.write_all(request).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .context("no answer within 30 s")??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {:?}", text.get(..80).unwrap_or(&text)))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
