//! Programs under test as child processes: started with their output in a log file, killed
//! by their own PID when dropped, and the log printed when the test fails.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A free TCP port on loopback (bound, then released for the program to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// `VmRSS` and `VmHWM` of a process, KiB (0 when it is gone).
pub fn mem_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `VmRSS` of a process, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    mem_kib(pid).0
}

/// `id=<short ID>` as the controller's log lines name a container (12 hex digits).
pub fn log_id(id: &str) -> String {
    format!("id={}", &id[..id.len().min(12)])
}

/// A child process whose stdout and stderr go to a log file.
pub struct Process {
    child: Child,
    /// What it is, for the log printed on failure.
    what: String,
    pub log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with stdin closed and its output appended to `log`.
    pub fn spawn(what: &str, mut cmd: Command, log: &Path) -> Result<Process> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Process {
            child,
            what: what.to_string(),
            log: log.to_path_buf(),
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`; returns it.
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
                    "no line with {needles:?} in the {} log within {timeout:?}; log:\n{}",
                    self.what,
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
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.what,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// A running `state-controller` with its metrics listener on a free loopback port.
pub struct Controller {
    process: Process,
    pub metrics: u16,
}

impl Controller {
    /// Starts `bin --allowlist policy --metrics-listen 127.0.0.1:PORT args...` with `env`
    /// (and `RUST_LOG=info`); its log goes beside the policy file.
    pub fn start(bin: &Path, policy: &Path, args: &[&str], env: &[(&str, &str)]) -> Controller {
        let metrics = free_port();
        let log = policy.with_extension(format!("controller-{metrics}.log"));
        let mut cmd = Command::new(bin);
        cmd.arg("--allowlist")
            .arg(policy)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        let process = Process::spawn("state-controller", cmd, &log)
            .unwrap_or_else(|e| panic!("{e:#} ({})", bin.display()));
        Controller { process, metrics }
    }

    /// Waits for the first full list to be applied.
    pub async fn wait_synced(&self) {
        if let Err(e) = self
            .wait_log(&["state list synced"], Duration::from_secs(20))
            .await
        {
            panic!("{e:#}");
        }
    }

    /// Waits until the log settles its verdict on every container of `ids`: a
    /// `verdict=allow` decision line, or a decision line of an action done (`result=ok`).
    /// What it settled on is for the caller to check in the engine (an allowed container
    /// must still run, a denied one must not). Panics at `within` with the log.
    pub async fn wait_judged<S: AsRef<str>>(&self, ids: &[S], within: Duration) {
        let needles: Vec<String> = ids
            .iter()
            .map(|id| format!(" {} ", log_id(id.as_ref())))
            .collect();
        let settled = crate::eventually(
            within,
            &format!("a settled decision on {} containers", ids.len()),
            || async {
                let log = self.log_text();
                let judged = |needle: &String| {
                    log.lines().any(|l| {
                        l.contains(" decision ")
                            && l.contains(needle.as_str())
                            && (l.contains(" verdict=allow ") || l.contains(" result=ok "))
                    })
                };
                needles.iter().all(judged).then_some(())
            },
        )
        .await;
        if let Err(e) = settled {
            panic!("{e:#}; controller log:\n{}", self.log_text());
        }
    }

    /// Address of its metrics listener (also `/decisions`, `/healthz`).
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.metrics))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        match crate::http::get(self.metrics_addr(), "/metrics").await {
            Ok(r) => r.body,
            Err(e) => panic!("GET /metrics: {e:#}"),
        }
    }

    /// Value of one metric line (exact name with labels), or 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Deref for Controller {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Controller {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}
