//! Test support shared by the integration tests of every crate: a real Docker Engine or a
//! loud skip, fixture images built from this workspace's own static binaries (nothing is
//! pulled), uniquely named and labelled containers, and cleanup that runs even when a test
//! fails.
//!
//! Every test gets a [`Scope`]: a unique name prefix and label value. Containers it creates
//! carry both; a controller under test governs only that label (`--scope`); dropping the
//! scope removes every container with the prefix. [`Fixture`] bundles the usual setup.
//!
//! Where things are:
//! - [`fixture`]: [`Fixture`], the engine + scope + directory + controller of one test;
//! - [`process`]: programs under test as child processes ([`Controller`], [`Process`]),
//!   free ports, memory of a process;
//! - [`events`]: the engine's event history and a live [`events::EventLog`];
//! - [`wait`]: waits on observable things (container state, any condition) instead of sleeps;
//! - [`http`]: the one HTTP client (hyper) for tests and benches;
//! - [`engines`]: a private `dockerd`, a fault-injecting proxy, a private registry;
//! - [`podman`]: a rootful Podman service of a test's own;
//! - [`time`]: engine timestamps, medians.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};

pub mod engines;
pub mod events;
pub mod fixture;
pub mod http;
pub mod podman;
pub mod process;
pub mod signing;
pub mod time;
pub mod wait;

pub use fixture::Fixture;
pub use process::{Controller, Process, free_port, log_id};
pub use wait::{eventually, state_of, wait_state};

/// Prefix of every container, image and network the tests create.
pub const PREFIX: &str = "dwtest";
/// Label every test container carries; its value is the scope's id.
pub const SCOPE_LABEL: &str = "dwtest.scope";
/// The fixture image holding `dw-sleeper`.
pub const SLEEPER_IMAGE: &str = "dwtest-sleeper:latest";
/// The image holding both dockwarden binaries, built like the no-registry Dockerfile path.
/// Its tag is `DWTEST_TAG` when set (checkouts that test side by side on one engine must not
/// run each other's binaries), else `latest`.
pub fn dockwarden_image_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let tag = std::env::var("DWTEST_TAG").unwrap_or_default();
        let tag = if tag.is_empty() { "latest".to_string() } else { tag };
        format!("dwtest-dockwarden:{tag}")
    })
}
/// Static builds go here, apart from the normal target dir: their RUSTFLAGS differ.
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The running test's name: libtest and nextest run each test on a thread named after it.
pub fn test_name() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("test");
    let name = name.rsplit("::").next().unwrap_or(name);
    if name == "main" {
        "test".to_string()
    } else {
        name.to_string()
    }
}

/// Connects to the engine, or decides what a missing engine means: with `REQUIRE_DOCKER=1`
/// (CI) the test fails with the reason; elsewhere it prints a loud SKIP (naming the running
/// test) and returns `None`.
pub async fn docker_or_skip() -> Option<Docker> {
    let test = test_name();
    let why = match Docker::connect_with_defaults() {
        Ok(d) => match tokio::time::timeout(Duration::from_secs(5), d.ping()).await {
            Ok(Ok(_)) => match d.negotiate_version().await {
                Ok(d) => return Some(d),
                Err(e) => format!("version negotiation failed: {e}"),
            },
            Ok(Err(e)) => format!("ping failed: {e}"),
            Err(_) => "ping timed out after 5 s".to_string(),
        },
        Err(e) => format!("cannot connect: {e}"),
    };
    if std::env::var("REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("{test}: REQUIRE_DOCKER=1 but no Docker Engine answers: {why}");
    }
    eprintln!(
        "\n*** SKIP {test}: no Docker Engine ({why}); set REQUIRE_DOCKER=1 to make this a failure ***\n"
    );
    None
}

/// A test's private namespace on an engine. Dropping it removes its containers.
pub struct Scope {
    /// Unique id: `dwtest-<test>-<pid>-<nanos>`, used as name prefix and label value.
    pub id: String,
    /// The engine (`unix://...`) when it is not `DOCKER_HOST`'s, for the cleanup.
    pub host: Option<String>,
}

impl Scope {
    pub fn new(test: &str) -> Scope {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let test: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Scope::with_id(format!("{PREFIX}-{test}-{}-{nanos}", std::process::id()))
    }

    /// A scope with exactly this id (a bench run names its own).
    pub fn with_id(id: String) -> Scope {
        Scope { id, host: None }
    }

    /// The same scope on another engine than `DOCKER_HOST`'s.
    pub fn on_host(mut self, host: Option<&str>) -> Scope {
        self.host = host.map(String::from);
        self
    }

    /// `--scope` argument for a controller that must govern only this test's containers.
    pub fn selector(&self) -> String {
        format!("{SCOPE_LABEL}={}", self.id)
    }

    /// A container name inside the scope.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// Creates and (unless `start` is false) starts a sleeper container in this scope.
    pub async fn run(&self, docker: &Docker, spec: Spec<'_>) -> Result<String> {
        let mut labels: HashMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert(SCOPE_LABEL.into(), self.id.clone());
        let name = self.name(spec.name);
        let body = ContainerCreateBody {
            image: Some(spec.image.unwrap_or(SLEEPER_IMAGE).to_string()),
            labels: Some(labels),
            env: Some(spec.env.iter().map(|s| s.to_string()).collect()),
            cmd: spec.cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
            host_config: Some(HostConfig {
                restart_policy: spec.restart_always.then_some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(opts), body)
            .await
            .with_context(|| format!("create {name}"))?;
        if spec.start {
            docker
                .start_container(&created.id, None::<StartContainerOptions>)
                .await
                .with_context(|| format!("start {name}"))?;
        }
        Ok(created.id)
    }

    /// Removes every container whose name starts with this scope's id.
    pub fn cleanup(&self) {
        remove_containers_by_prefix(&self.id, self.host.as_deref());
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.cleanup();
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
    use futures_util::StreamExt;
    let results: Vec<Result<(String, String)>> = futures_util::stream::iter(specs)
        .map(|(name, labels)| async move {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let id = scope
                .run(docker, Spec::new(&name).labels(&labels).created_only())
                .await?;
            let _ = docker.start_container(&id, None::<StartContainerOptions>).await;
            Ok((name, id))
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Connects to `host` (`unix://...`, `tcp://...`), else to `DOCKER_HOST`'s engine, and
/// negotiates the API version.
pub async fn connect(host: Option<&str>) -> Result<Docker> {
    let docker = match host {
        Some(h) => Docker::connect_with_host(h),
        None => Docker::connect_with_defaults(),
    }
    .context("connecting to Docker")?;
    docker.negotiate_version().await.context("Docker does not answer")
}

/// What [`Scope::run`] creates.
pub struct Spec<'a> {
    pub name: &'a str,
    pub image: Option<&'a str>,
    pub labels: &'a [(&'a str, &'a str)],
    pub env: &'a [&'a str],
    pub cmd: Option<&'a [&'a str]>,
    pub restart_always: bool,
    pub start: bool,
}

impl<'a> Spec<'a> {
    pub fn new(name: &'a str) -> Spec<'a> {
        Spec {
            name,
            image: None,
            labels: &[],
            env: &[],
            cmd: None,
            restart_always: false,
            start: true,
        }
    }
    pub fn labels(mut self, labels: &'a [(&'a str, &'a str)]) -> Self {
        self.labels = labels;
        self
    }
    pub fn image(mut self, image: &'a str) -> Self {
        self.image = Some(image);
        self
    }
    pub fn env(mut self, env: &'a [&'a str]) -> Self {
        self.env = env;
        self
    }
    pub fn cmd(mut self, cmd: &'a [&'a str]) -> Self {
        self.cmd = Some(cmd);
        self
    }
    pub fn restart_always(mut self) -> Self {
        self.restart_always = true;
        self
    }
    pub fn created_only(mut self) -> Self {
        self.start = false;
        self
    }
}

/// `docker rm -f` of every container whose name starts with `prefix`, on `host` (else
/// `DOCKER_HOST`'s engine). Synchronous (the Docker CLI) so it also runs from `Drop` while
/// a failed test unwinds; bounded, as a removal on a stalled engine hangs for good.
pub fn remove_containers_by_prefix(prefix: &str, host: Option<&str>) {
    let docker = |limit: &str| {
        let mut c = Command::new("timeout");
        c.args([limit, "docker"]);
        if let Some(h) = host {
            c.args(["-H", h]);
        }
        c
    };
    let out = docker("60")
        .args(["ps", "-aq", "--filter", &format!("name=^/?{prefix}")])
        .output();
    let Ok(out) = out else { return };
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if !ids.is_empty() {
        let _ = docker("120").args(["rm", "-f"]).args(&ids).output();
    }
}

/// A temporary directory named `dwtest-<name>-*`, removed when dropped.
pub fn temp_dir(name: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}-{name}-"))
        .tempdir()
        .context("creating a temporary directory")
}

/// Writes `text` to `path` the way editors do: a temp file renamed over the target.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    let done = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        panic!("writing {}: {e}", path.display());
    }
}

/// The workspace root (testkit lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a static release binary of this workspace, built on first use (a cross-process
/// lock keeps parallel test processes from building at once). It builds exactly what
/// `scripts/build-static.sh` builds, every binary of the three packages in one invocation:
/// a build of one package alone would unify other features, rebuild, and the next build of
/// the set would rebuild again. Static builds need `--target` so that RUSTFLAGS do not
/// reach proc-macros.
pub fn static_binary(package: &str, bin: &str) -> Result<PathBuf> {
    const SET: [&str; 3] = ["state-controller", "status-api", "dockwarden-testkit"];
    if !SET.contains(&package) {
        bail!("{package} is not one of the statically built packages {SET:?}");
    }
    let root = workspace_root();
    let _lock = lock("static-build")?;
    let mut cmd = Command::new(env!("CARGO"));
    // A test runs with the variables cargo sets for it (CARGO_MANIFEST_DIR, CARGO_PKG_NAME,
    // ...). Build scripts that watch them (ring's does) would see them change between this
    // build, build-static.sh's and another crate's tests, and rebuild everything after them.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_MANIFEST_PATH"
            || k == "CARGO_MANIFEST_LINKS"
            || k == "CARGO_CRATE_NAME"
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_TARGET_TMPDIR"
            || k == "OUT_DIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || k.starts_with("CARGO_CFG_")
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.current_dir(&root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--target", STATIC_TARGET, "--bins"]);
    for p in SET {
        cmd.args(["-p", p]);
    }
    let status = cmd
        .status()
        .context("running cargo build for the static binaries")?;
    if !status.success() {
        bail!("static build (for {bin}) failed");
    }
    Ok(root.join("target").join(STATIC_TARGET).join("release").join(bin))
}

/// Builds `tag` `FROM scratch` with the given binaries at `/`, through the Docker CLI's
/// legacy builder (no registry, no BuildKit frontend to pull). Idempotent per process.
pub fn image_from_binaries(tag: &str, binaries: &[PathBuf], entrypoint: &str) -> Result<()> {
    let _lock = lock(&format!("image-{}", tag.replace([':', '/'], "_")))?;
    let ctx = std::env::temp_dir().join(format!(
        "{PREFIX}-ctx-{}-{}",
        std::process::id(),
        tag.replace([':', '/'], "_")
    ));
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx)?;
    let mut dockerfile = String::from("FROM scratch\n");
    for b in binaries {
        let name = b
            .file_name()
            .context("binary path has no file name")?
            .to_string_lossy()
            .to_string();
        std::fs::copy(b, ctx.join(&name)).with_context(|| format!("copy {}", b.display()))?;
        dockerfile.push_str(&format!("COPY {name} /{name}\n"));
    }
    dockerfile.push_str(&format!("ENTRYPOINT [\"/{entrypoint}\"]\n"));
    std::fs::write(ctx.join("Dockerfile"), dockerfile)?;
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag, "--label", &format!("{PREFIX}=1")])
        .arg(&ctx)
        .output()
        .context("running docker build")?;
    let _ = std::fs::remove_dir_all(&ctx);
    if !out.status.success() {
        bail!(
            "docker build {tag} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The sleeper fixture image, built once per test process.
pub fn sleeper_image() -> Result<&'static str> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bin = static_binary("dockwarden-testkit", "dw-sleeper").map_err(|e| format!("{e:#}"))?;
        image_from_binaries(SLEEPER_IMAGE, &[bin], "dw-sleeper").map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)?;
    Ok(SLEEPER_IMAGE)
}

/// An image with both dockwarden binaries (static), built once per test process.
pub fn dockwarden_image() -> Result<&'static str> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let build = || -> Result<()> {
            let c = static_binary("state-controller", "state-controller")?;
            let a = static_binary("status-api", "status-api")?;
            image_from_binaries(dockwarden_image_tag(), &[c, a], "state-controller")
        };
        build().map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)?;
    Ok(dockwarden_image_tag())
}

/// An exclusive lock across processes, released on drop.
fn lock(name: &str) -> Result<std::fs::File> {
    let dir = workspace_root().join("target");
    std::fs::create_dir_all(&dir)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{PREFIX}-{name}.lock")))?;
    f.lock().context("locking")?;
    Ok(f)
}
