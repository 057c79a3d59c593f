//! A rootful `podman system service` of the test's own, for the Podman tests (issue 13):
//! Debian's podman on a socket in a temp directory, with storage (`vfs`), run root, temp
//! dir, locks, events log and network configs all under that directory, so that nothing is
//! shared with another test or with the host's own podman. Containers get no network.
//!
//! This machine's sandbox refuses podman's default rlimits, so the `containers.conf` given
//! through `CONTAINERS_CONF` sets `default_ulimits = []`. There is no systemd and no
//! journald: cgroups are managed by `cgroupfs` and events go to a file (which Podman 4.3's
//! event stream polls every 250 ms). Healthchecks are not scheduled without systemd timers:
//! run them with `podman healthcheck run`.
//!
//! Dropping a [`PodmanService`] removes its containers (with the CLI, which needs no
//! service), ends the service by its PID, unmounts whatever is still mounted below the
//! directory and deletes it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{PREFIX, static_binary};

/// The sleeper fixture as Podman names an imported image: `localhost/` + the name given.
pub const PODMAN_SLEEPER_IMAGE: &str = "localhost/dwtest-podman-sleeper:latest";

/// Whether Podman tests can run: `Some(())` when the `podman` CLI answers. Without it they
/// fail under `REQUIRE_PODMAN=1` or `REQUIRE_DOCKER=1` (CI installs podman) and print a
/// loud SKIP elsewhere.
pub fn podman_or_skip() -> Option<()> {
    let test = crate::test_name();
    let why = match Command::new("podman").arg("--version").output() {
        Ok(o) if o.status.success() => return Some(()),
        Ok(o) => format!(
            "podman --version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("no podman CLI: {e}"),
    };
    let required = ["REQUIRE_PODMAN", "REQUIRE_DOCKER"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| v == "1"));
    if required {
        panic!(
            "{test}: Podman is required here (REQUIRE_PODMAN=1 or REQUIRE_DOCKER=1) but {why}; \
             apt-get install -y --no-install-recommends podman (.ci/run does)"
        );
    }
    eprintln!("\n*** SKIP {test}: {why}; set REQUIRE_PODMAN=1 to make this a failure ***\n");
    None
}

/// A `podman system service` on its own socket and storage.
pub struct PodmanService {
    /// Everything of this service lives below it (short: the socket path must fit 108 bytes).
    pub dir: PathBuf,
    /// `unix://<dir>/podman.sock`, for `--docker-host`.
    pub host: String,
    child: Option<Child>,
}

impl PodmanService {
    /// Writes the configuration and starts the service; returns once `/_ping` answers.
    pub async fn start(tag: &str) -> Result<PodmanService> {
        let dir = PathBuf::from(format!("/tmp/{PREFIX}-podman-{tag}-{}", std::process::id()));
        if dir.exists() {
            // A crashed earlier run of this very process id: its leftovers go first.
            cleanup_dir(&dir);
        }
        for sub in ["root", "runroot", "tmp", "cni"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.display()))?;
        }
        let d = dir.display();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n\
                 # the sandbox refuses podman's default rlimits\n\
                 default_ulimits = []\n\
                 netns = \"none\"\n\
                 [network]\n\
                 network_config_dir = \"{d}/cni\"\n\
                 [engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 runtime = \"runc\"\n\
                 tmp_dir = \"{d}/tmp\"\n\
                 lock_type = \"file\"\n"
            ),
        )?;
        std::fs::write(
            dir.join("storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n"),
        )?;
        let host = format!("unix://{d}/podman.sock");
        let log = std::fs::File::create(dir.join("service.log"))?;
        let mut svc = PodmanService {
            dir: dir.clone(),
            host: host.clone(),
            child: None,
        };
        let child = svc
            .command()
            .args(["system", "service", "--time=0", &host])
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting podman system service")?;
        svc.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ping(&dir.join("podman.sock")).await {
                return Ok(svc);
            }
            let exited = svc
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                bail!(
                    "podman system service did not answer on {host}; log:\n{}",
                    std::fs::read_to_string(dir.join("service.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `podman` CLI on this service's storage (the CLI works on the storage directly,
    /// beside the service, as Podman is meant to).
    pub fn command(&self) -> Command {
        podman_command(&self.dir)
    }

    /// Runs the podman CLI; its stdout, trimmed, or an error with its stderr.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command()
            .args(args)
            .output()
            .with_context(|| format!("running podman {args:?}"))?;
        if !out.status.success() {
            bail!("podman {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Imports the static `dw-sleeper` as [`PODMAN_SLEEPER_IMAGE`] (nothing can be pulled).
    pub fn sleeper_image(&self) -> Result<&'static str> {
        let bin = static_binary("dockwarden-testkit", "dw-sleeper")?;
        let ctx = self.dir.join("sleeper-ctx");
        std::fs::create_dir_all(&ctx)?;
        std::fs::copy(&bin, ctx.join("dw-sleeper")).context("copying dw-sleeper")?;
        let tar = self.dir.join("sleeper.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&ctx)
            .arg("-cf")
            .arg(&tar)
            .arg("dw-sleeper")
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("tar of dw-sleeper failed");
        }
        let tar = tar.display().to_string();
        self.cli(&[
            "import",
            "--quiet",
            "--change",
            r#"ENTRYPOINT ["/dw-sleeper"]"#,
            &tar,
            "dwtest-podman-sleeper:latest",
        ])?;
        Ok(PODMAN_SLEEPER_IMAGE)
    }

    /// `podman run -d` of the sleeper: `--name`, no network, then `args` (labels...).
    pub fn run(&self, name: &str, args: &[&str]) -> Result<String> {
        self.sleeper("run", name, args)
    }

    /// `podman create` of the sleeper, like [`PodmanService::run`] without the start.
    pub fn create(&self, name: &str, args: &[&str]) -> Result<String> {
        self.sleeper("create", name, args)
    }

    fn sleeper(&self, verb: &str, name: &str, args: &[&str]) -> Result<String> {
        let mut a = vec![verb];
        if verb == "run" {
            a.push("-d");
        }
        a.extend_from_slice(&["--network", "none", "--name", name]);
        a.extend_from_slice(args);
        a.push(PODMAN_SLEEPER_IMAGE);
        self.cli(&a)
    }

    /// The container's state as the CLI reports it (`running`, `exited`...), `None` when
    /// there is no such container.
    pub fn state(&self, name_or_id: &str) -> Option<String> {
        self.cli(&["inspect", "--format", "{{.State.Status}}", name_or_id])
            .ok()
    }

    /// SIGTERM to the service (by its PID), then SIGKILL if it lingers.
    fn stop_service(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- podman service log ({}) ---\n{}",
                self.dir.display(),
                std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
            );
        }
        // Containers first, with the CLI (it needs no service): their conmon processes
        // and shm mounts go with them.
        let _ = self.cli(&["rm", "--all", "--force", "--time", "0"]);
        self.stop_service();
        cleanup_dir(&self.dir);
    }
}

/// The podman CLI with the configuration under `dir` (see the module's doc).
pub fn podman_command(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", dir.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
        .env("TMPDIR", dir.join("tmp"))
        .stdin(Stdio::null());
    c
}

/// Removes a service directory: containers still in its storage, mounts below it, files.
/// A removed container's conmon runs `podman container cleanup` on its own after the
/// removal returns, with this directory in its arguments; it would create the directory
/// again if deleted under it, so those processes are waited for first.
fn cleanup_dir(dir: &Path) {
    if dir.join("storage.conf").exists() {
        let _ = podman_command(dir)
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !processes_using(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "grep -o ' {}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
            dir.display()
        ))
        .status();
    let _ = std::fs::remove_dir_all(dir);
}

/// PIDs of processes (other than this one) with `dir` in their command line: the service,
/// its conmons and their cleanup runs.
fn processes_using(dir: &Path) -> Vec<u32> {
    // With the slash: /tmp/x-1 must not match the processes of /tmp/x-12.
    let needle = format!("{}/", dir.display());
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// `GET /_ping` on the socket answers `OK`.
async fn ping(sock: &Path) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::UnixStream::connect(sock).await else {
        return false;
    };
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut buf)).await;
    read.is_ok() && buf.starts_with("HTTP/1.") && buf.contains(" 200 ")
}
