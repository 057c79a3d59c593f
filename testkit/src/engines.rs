//! Engines and services of a test's own, for what the shared engine must not suffer or does
//! not have: a private `dockerd` (restarted and cut at will), a fault-injecting proxy in
//! front of the shared engine, a private image registry (real repo digests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::free_port;

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
        let connect = async { Docker::connect_with_host(&self.host)?.negotiate_version().await };
        connect
            .await
            .unwrap_or_else(|e| panic!("client of the private engine at {}: {e}", self.host))
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

/// A TCP port on loopback made reachable inside a private engine's network namespace (see
/// [`PrivateEngine::reach`]); the two forwarders are killed on drop.
pub struct Reach {
    inside: Child,
    outside: Child,
}

impl Drop for Reach {
    fn drop(&mut self) {
        for c in [&mut self.inside, &mut self.outside] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl PrivateEngine {
    /// Makes `127.0.0.1:port` of the host (a registry) reachable at the same address from
    /// inside this engine's network namespace, so that it can push to and pull from it: a
    /// forwarder (`dw-bridge`) listens there and hands each connection over a Unix socket to
    /// one outside. The engine must be running.
    pub fn reach(&self, port: u16) -> Result<Reach> {
        let pid = std::fs::read_to_string(self.dir.join("docker.pid"))
            .context("reading the private engine's pid")?
            .trim()
            .to_string();
        let netns = format!("--net=/proc/{pid}/ns/net");
        let status = Command::new("nsenter")
            .args([netns.as_str(), "ip", "link", "set", "lo", "up"])
            .status()
            .context("nsenter ip link set lo up")?;
        if !status.success() {
            bail!("cannot bring loopback up in the private engine's namespace");
        }
        let bridge = crate::static_binary("dockwarden-testkit", "dw-bridge")?;
        let sock = self.dir.join(format!("reach-{port}.sock"));
        let unix = format!("unix:{}", sock.display());
        let tcp = format!("tcp:127.0.0.1:{port}");
        let outside = Command::new(&bridge)
            .args([&unix, &tcp])
            .stdin(Stdio::null())
            .spawn()
            .context("starting dw-bridge outside")?;
        let inside = Command::new("nsenter")
            .arg(&netns)
            .arg(&bridge)
            .args([&tcp, &unix])
            .stdin(Stdio::null())
            .spawn()
            .context("starting dw-bridge inside")?;
        let reach = Reach { inside, outside };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if Instant::now() > deadline {
                bail!("dw-bridge did not listen on {}", sock.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reach)
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

/// A Unix-socket proxy in front of the shared engine that answers HTTP 500 to the first
/// `failures` requests whose request line contains `needle`, and forwards everything else
/// untouched: engine faults on demand (a failing kill) with the real engine behind.
pub struct FaultProxy {
    pub host: String,
    pub injected: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(socket: &Path, needle: &str, failures: usize) -> FaultProxy {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)
            .unwrap_or_else(|e| panic!("fault proxy on {}: {e}", socket.display()));
        let injected = Arc::new(AtomicUsize::new(0));
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
        self.injected.load(SeqCst)
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
    /// Its storage, config and log; removed on drop.
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// `name` prefixes its temporary storage directory.
    pub async fn start(name: &str) -> Result<Registry> {
        let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context(
                "Debian's docker-registry is not installed (apt-get install docker-registry; .ci/run does)",
            )?;
        let dir = crate::temp_dir(name)?;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nlog:\n  level: warn\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting docker-registry")?;
        let r = Registry {
            child,
            addr: format!("localhost:{port}"),
            dir,
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
