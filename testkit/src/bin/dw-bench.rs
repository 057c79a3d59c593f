//! The benchmark driver behind `bash bench/run.sh`: it starts bursts of containers on the
//! engine, each burst in its own `dwtest.scope` label scope governed by ONE killer (the
//! controller, or the floor killer `dw-floor-killer`), reads the engine's own event
//! timestamps, and prints tables. Nothing here is a pass/fail test; the figures are printed
//! beside the floor measured in the same run.
//!
//! ```text
//! dw-bench ttk       --controller BIN --floor BIN [--sizes 1,50,200] [--reps 3] [--run-id ID] [--workdir DIR]
//! dw-bench footprint --controller BIN --api BIN [--n 200] [--reps 3] [--run-id ID] [--workdir DIR]
//! ```
//! `--docker-host URL` (both commands) benchmarks another engine than `DOCKER_HOST`'s, e.g.
//! a Podman service (`bench/podman.sh`): the driver, every killer it starts and its cleanup
//! all talk to that one.
//! Every container is named `dwtest-bench-<run-id>-...` and labelled
//! `dwtest.scope=<that scope>`; every killer is started with `--scope` on that label. PIDs
//! of the processes it starts are appended to `<workdir>/pids` so the calling script can end
//! them (by PID) if this driver dies.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCOPE_LABEL: &str = "dwtest.scope";
/// Carried by the denied containers only: the floor killer has no policy, so it is scoped
/// to this label and never sees the allowed ones.
const DENY_LABEL: &str = "dwtest.deny";
const SLEEPER_IMAGE: &str = "dwtest-sleeper:latest";

// ---------------------------------------------------------------------------------------
// command line

struct Opts {
    values: HashMap<String, String>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut values = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let key = a
                .strip_prefix("--")
                .with_context(|| format!("unexpected argument {a:?}"))?;
            let v = it.next().with_context(|| format!("{a} needs a value"))?;
            values.insert(key.to_string(), v.clone());
        }
        Ok(Opts { values })
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.values.get(k).map(String::as_str)
    }
    fn path(&self, k: &str) -> Result<PathBuf> {
        self.get(k)
            .map(PathBuf::from)
            .with_context(|| format!("--{k} is required"))
    }
    fn num(&self, k: &str, default: usize) -> Result<usize> {
        match self.get(k) {
            Some(v) => v.parse().with_context(|| format!("--{k} {v:?} is not a number")),
            None => Ok(default),
        }
    }
}

/// What the driver shares with every burst.
struct Env {
    docker: Docker,
    /// `--docker-host`, passed on to every process started and to the Docker CLI.
    docker_host: Option<String>,
    run_id: String,
    workdir: PathBuf,
    concurrency: usize,
    clk_tck: f64,
}

// ---------------------------------------------------------------------------------------
// processes under measurement

/// A process we started; killed (by its PID) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(env: &Env, cmd: &mut Command, log: PathBuf) -> Result<Proc> {
        let out = std::fs::File::create(&log)?;
        let child = cmd
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(env.workdir.join("pids"))
        {
            let _ = writeln!(f, "{}", child.id());
        }
        Ok(Proc { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_log(&mut self, needle: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.log_text().contains(needle) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "{} exited ({status}) before logging {needle:?}:\n{}",
                    self.log.display(),
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!("no {needle:?} within {within:?}:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` (KiB) from /proc/PID/status.
fn mem_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// utime + stime (clock ticks) from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing ')'.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(14) + n(15)
}

/// Samples a process's RSS every 50 ms until dropped; keeps the maximum.
struct RssSampler {
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let max = Arc::new(AtomicU64::new(0));
        let m = max.clone();
        let task = tokio::spawn(async move {
            loop {
                m.fetch_max(mem_kib(pid).0, Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { max, task }
    }
    fn stop(self) -> u64 {
        self.task.abort();
        self.max.load(Relaxed)
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Minimal HTTP/1.0 GET on loopback: (status, body).
async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
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
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------
// killers

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Killer {
    FloorKill,
    ControllerKill,
    FloorRemove,
    ControllerRemove,
}

impl Killer {
    fn label(self) -> &'static str {
        match self {
            Killer::FloorKill => "floor: kill at start",
            Killer::ControllerKill => "controller, action=kill",
            Killer::FloorRemove => "floor: remove at create",
            Killer::ControllerRemove => "controller, action=remove",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Killer::FloorKill => "fk",
            Killer::ControllerKill => "ck",
            Killer::FloorRemove => "fr",
            Killer::ControllerRemove => "cr",
        }
    }
    fn remove(self) -> bool {
        matches!(self, Killer::FloorRemove | Killer::ControllerRemove)
    }
}

fn write_policy(dir: &Path, scope: &str, action: &str) -> Result<PathBuf> {
    let path = dir.join("allowlist.toml");
    std::fs::write(
        &path,
        format!("mode = \"enforce\"\naction = \"{action}\"\n\n[[allow]]\nname = \"{scope}-ok-*\"\n"),
    )?;
    Ok(path)
}

async fn start_controller(env: &Env, bin: &Path, dir: &Path, scope: &str, action: &str) -> Result<Proc> {
    let policy = write_policy(dir, scope, action)?;
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("--allowlist")
        .arg(&policy)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .args(["--scope", &format!("{SCOPE_LABEL}={scope}")])
        .args(env.host_args("--docker-host"))
        .env("RUST_LOG", "info");
    // The log goes to a sibling directory: a log inside the watched policy directory would
    // wake the reloader at every line.
    let mut p = Proc::spawn(env, &mut cmd, dir.with_extension("controller.log"))?;
    p.wait_log("state list synced", Duration::from_secs(30)).await?;
    Ok(p)
}

async fn start_floor(env: &Env, bin: &Path, dir: &Path, scope: &str, action: &str) -> Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.args(["--scope", &format!("{DENY_LABEL}={scope}"), "--action", action])
        .args(env.host_args("--docker-host"));
    let mut p = Proc::spawn(env, &mut cmd, dir.with_extension("floor.log"))?;
    p.wait_log("dw-floor-killer ready", Duration::from_secs(30))
        .await?;
    Ok(p)
}

async fn start_api(env: &Env, bin: &Path, dir: &Path, scope: &str) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--allowlist")
        .arg(dir.join("allowlist.toml"))
        .args(["--scope", &format!("{SCOPE_LABEL}={scope}")])
        .args(env.host_args("--docker-host"))
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn(env, &mut cmd, dir.with_extension("api.log"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = http_get(port, "/readyz").await {
            return Ok((p, port));
        }
        if !p.alive() || Instant::now() > deadline {
            bail!("status-api did not become ready:\n{}", p.log_text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// bursts

struct Planned {
    name: String,
    denied: bool,
    id: Option<String>,
    /// The engine did not answer the create or start call within [`ENGINE_CALL_LIMIT`].
    stalled: bool,
}

/// Longest a single create or start may take before the engine counts as stalled. Docker
/// 20.10 can deadlock in libnetwork under heavy container churn (moby/moby#42545, fixed
/// after 20.10.24): starts and removals then hang for good, and only a restart of dockerd
/// helps. The bench must say so rather than report the hung containers as survivors.
const ENGINE_CALL_LIMIT: Duration = Duration::from_secs(60);

/// Creates and starts `denied` + `allowed` sleepers in `scope`, at most `env.concurrency`
/// calls in flight, allowed ones spread evenly among the denied.
async fn burst(env: &Env, scope: &str, denied: usize, allowed: usize) -> Vec<Planned> {
    let total = denied + allowed;
    let mut plan: Vec<(String, bool)> = Vec::with_capacity(total);
    let (mut d, mut a) = (0, 0);
    for i in 0..total {
        // Bresenham-style interleave: allowed ones spread over the whole burst.
        let want_allowed = allowed > 0 && (i + 1) * allowed / total > a;
        if want_allowed && a < allowed || d >= denied {
            plan.push((format!("{scope}-ok-{a}"), false));
            a += 1;
        } else {
            plan.push((format!("{scope}-bad-{d}"), true));
            d += 1;
        }
    }
    futures_util::stream::iter(plan)
        .map(|(name, denied)| {
            let docker = env.docker.clone();
            let scope = scope.to_string();
            async move {
                let mut labels = HashMap::from([(SCOPE_LABEL.to_string(), scope.clone())]);
                if denied {
                    labels.insert(DENY_LABEL.to_string(), scope);
                }
                let body = ContainerCreateBody {
                    image: Some(SLEEPER_IMAGE.to_string()),
                    labels: Some(labels),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let opts = CreateContainerOptionsBuilder::default().name(&name).build();
                let mut stalled = false;
                let id =
                    match tokio::time::timeout(ENGINE_CALL_LIMIT, docker.create_container(Some(opts), body))
                        .await
                    {
                        Ok(Ok(r)) => Some(r.id),
                        Ok(Err(e)) => {
                            eprintln!("  create {name}: {e}");
                            None
                        }
                        Err(_) => {
                            stalled = true;
                            None
                        }
                    };
                if let Some(id) = &id {
                    // Under action=remove a denied container may be gone before its start:
                    // that error is the point, not a failure.
                    let start = docker.start_container(id, None::<StartContainerOptions>);
                    stalled = tokio::time::timeout(ENGINE_CALL_LIMIT, start).await.is_err();
                }
                Planned {
                    name,
                    denied,
                    id,
                    stalled,
                }
            }
        })
        .buffer_unordered(env.concurrency)
        .collect()
        .await
}

/// An error when the engine stopped answering during the burst: its figures would be
/// meaningless, and what it left behind needs a restart of dockerd, not a verdict.
fn stalled(planned: &[Planned]) -> Result<()> {
    let n = planned.iter().filter(|p| p.stalled).count();
    if n > 0 {
        bail!(
            "the engine stalled: {n} create/start calls got no answer within {ENGINE_CALL_LIMIT:?}. \
             Docker 20.10 deadlocks in libnetwork under heavy container churn (moby/moby#42545; \
             `docker info` hangs, `kill -USR1 $(pidof dockerd)` dumps goroutines stuck in \
             getSvcRecords/processEndpointDelete); only restarting dockerd clears it"
        );
    }
    Ok(())
}

/// State of every container in the scope: id -> running?
async fn scope_states(docker: &Docker, scope: &str) -> Result<HashMap<String, bool>> {
    let label = format!("{SCOPE_LABEL}={scope}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker.list_containers(Some(opts)).await?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let running = matches!(
                c.state,
                Some(
                    ContainerSummaryStateEnum::RUNNING
                        | ContainerSummaryStateEnum::RESTARTING
                        | ContainerSummaryStateEnum::PAUSED
                )
            );
            Some((c.id?, running))
        })
        .collect())
}

/// Engine timestamps (ns) per container: first start, die, destroy.
#[derive(Default, Clone, Copy)]
struct Times {
    start: Option<i64>,
    die: Option<i64>,
    destroy: Option<i64>,
}

fn now_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn fmt_ts(n: i64) -> String {
    format!(
        "{}.{:09}",
        n.div_euclid(1_000_000_000),
        n.rem_euclid(1_000_000_000)
    )
}

/// Records the engine's container events for one scope, live. The engine replays only its
/// last 256 events for `since`, far fewer than a burst of 200 containers makes, so the
/// timeline is read as it happens rather than asked for afterwards.
struct Recorder {
    times: Arc<std::sync::Mutex<HashMap<String, Times>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    fn start(docker: &Docker, scope: &str, since: i64) -> Recorder {
        let times: Arc<std::sync::Mutex<HashMap<String, Times>>> = Arc::default();
        let (docker, label, t) = (docker.clone(), format!("{SCOPE_LABEL}={scope}"), times.clone());
        let task = tokio::spawn(async move {
            let filters = HashMap::from([("type", vec!["container"]), ("label", vec![label.as_str()])]);
            // Podman closes every event stream when it rotates its events file (1 MB by
            // default, a few thousand events): follow on from the last event seen.
            let mut since = since;
            loop {
                let opts = EventsOptionsBuilder::default()
                    .since(&fmt_ts(since))
                    .filters(&filters)
                    .build();
                let mut events = docker.events(Some(opts));
                while let Some(Ok(e)) = events.next().await {
                    let (Some(id), Some(ts)) = (e.actor.and_then(|a| a.id), e.time_nano) else {
                        continue;
                    };
                    since = since.max(ts);
                    let mut map = t.lock().unwrap_or_else(|p| p.into_inner());
                    let times = map.entry(id).or_default();
                    let slot = match e.action.as_deref() {
                        Some("start") => &mut times.start,
                        Some("die") => &mut times.die,
                        // Podman says `remove`.
                        Some("destroy" | "remove") => &mut times.destroy,
                        _ => continue,
                    };
                    slot.get_or_insert(ts);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Recorder { times, task }
    }

    fn finish(self) -> HashMap<String, Times> {
        self.task.abort();
        std::mem::take(&mut *self.times.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Force-removes every container in the scope.
async fn remove_scope(env: &Env, scope: &str) {
    let Ok(states) = scope_states(&env.docker, scope).await else {
        return;
    };
    futures_util::stream::iter(states.into_keys())
        .map(|id| {
            let docker = env.docker.clone();
            async move {
                let opts = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ =
                    tokio::time::timeout(ENGINE_CALL_LIMIT, docker.remove_container(&id, Some(opts))).await;
            }
        })
        .buffer_unordered(env.concurrency.min(16))
        .collect::<Vec<_>>()
        .await;
}

impl Env {
    /// `[flag, URL]` when `--docker-host` was given, else nothing.
    fn host_args(&self, flag: &str) -> Vec<String> {
        match &self.docker_host {
            Some(h) => vec![flag.to_string(), h.clone()],
            None => Vec::new(),
        }
    }

    fn scope_guard(&self, name_prefix: &str) -> ScopeGuard {
        ScopeGuard {
            name_prefix: name_prefix.to_string(),
            host: self.host_args("-H"),
        }
    }
}

/// Removes the scope's containers when dropped, even when a burst fails half-way.
struct ScopeGuard {
    name_prefix: String,
    /// `-H URL` for the Docker CLI, when the engine is not `DOCKER_HOST`'s.
    host: Vec<String>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        // Bounded: on a stalled engine a removal hangs for good.
        let out = Command::new("timeout")
            .args(["60", "docker"])
            .args(&self.host)
            .args(["ps", "-aq", "--filter", &format!("name=^/{}", self.name_prefix)])
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("timeout")
                    .args(["120", "docker"])
                    .args(&self.host)
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// What one burst showed.
struct Outcome {
    /// start -> die (or destroy), ms, for each denied container that reached `running`.
    latencies: Vec<f64>,
    denied: usize,
    never_ran: usize,
    survivors: usize,
    false_kills: usize,
    create_errors: usize,
    /// Seconds from the first create to the last denied container down.
    wall: f64,
    /// Killer footprint during this burst.
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    hwm_kib: u64,
    burst_cpu_s: f64,
}

/// Runs one burst under one killer and cleans up after it.
async fn run_burst(env: &Env, o: &BurstOpts<'_>, killer: Killer, n: usize, rep: usize) -> Result<Outcome> {
    let scope = format!("dwtest-bench-{}-{}-{n}-r{rep}", env.run_id, killer.short());
    let _guard = env.scope_guard(&scope);
    let dir = env.workdir.join(&scope);
    std::fs::create_dir_all(&dir)?;
    let action = if killer.remove() { "remove" } else { "kill" };
    let mut proc = match killer {
        Killer::FloorKill | Killer::FloorRemove => start_floor(env, o.floor, &dir, &scope, action).await?,
        Killer::ControllerKill | Killer::ControllerRemove => {
            start_controller(env, o.controller, &dir, &scope, action).await?
        }
    };
    let pid = proc.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = mem_kib(pid).0;
    let allowed = (n / 4).max(1);
    let sampler = RssSampler::start(pid);
    let cpu0 = cpu_ticks(pid);
    let t0 = now_nano();
    let recorder = Recorder::start(&env.docker, &scope, t0 - 1_000_000);
    let clock = Instant::now();
    let planned = burst(env, &scope, n, allowed).await;
    stalled(&planned)?;

    // Wait until no denied container runs (or give up after 90 s: those are survivors).
    let denied_ids: Vec<&String> = planned
        .iter()
        .filter(|p| p.denied)
        .filter_map(|p| p.id.as_ref())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let states = scope_states(&env.docker, &scope).await.unwrap_or_default();
        if denied_ids
            .iter()
            .all(|id| !states.get(*id).copied().unwrap_or(false))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = clock.elapsed().as_secs_f64();
    let burst_cpu_s = cpu_ticks(pid).saturating_sub(cpu0) as f64 / env.clk_tck;
    let peak_rss_kib = sampler.stop();
    let hwm_kib = mem_kib(pid).1;
    // Allowed ones get a moment to be (wrongly) killed before they are checked.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let states_after = scope_states(&env.docker, &scope).await.unwrap_or_default();
    let times = recorder.finish();
    if !proc.alive() {
        bail!("the killer exited during the burst:\n{}", proc.log_text());
    }
    drop(proc);

    let mut latencies = Vec::new();
    let (mut never_ran, mut survivors, mut false_kills) = (0, 0, 0);
    for p in &planned {
        let Some(id) = &p.id else { continue };
        let t = times.get(id).copied().unwrap_or_default();
        if p.denied {
            if states_after.get(id).copied().unwrap_or(false) {
                survivors += 1;
                eprintln!("  SURVIVOR {}", p.name);
            }
            match (t.start, t.die.or(t.destroy)) {
                (None, _) => never_ran += 1,
                (Some(s), Some(d)) => latencies.push((d - s) as f64 / 1e6),
                (Some(_), None) => {}
            }
        } else {
            let running = states_after.get(id).copied().unwrap_or(false);
            if !running || t.die.is_some() || t.destroy.is_some() {
                false_kills += 1;
                eprintln!("  FALSE KILL {}", p.name);
            }
        }
    }
    let create_errors = planned.iter().filter(|p| p.id.is_none()).count();
    // Per container, for a closer look beside the killer's log: name, start->die ms.
    let tsv: String = planned
        .iter()
        .filter(|p| p.denied)
        .filter_map(|p| {
            let t = times.get(p.id.as_ref()?).copied().unwrap_or_default();
            let ms = match (t.start, t.die.or(t.destroy)) {
                (Some(s), Some(d)) => format!("{:.1}", (d - s) as f64 / 1e6),
                (None, _) => "never-ran".into(),
                _ => "-".into(),
            };
            Some(format!("{}\t{ms}\n", p.name))
        })
        .collect();
    let _ = std::fs::write(dir.with_extension("latencies.tsv"), tsv);
    remove_scope(env, &scope).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Outcome {
        latencies,
        denied: planned.iter().filter(|p| p.denied && p.id.is_some()).count(),
        never_ran,
        survivors,
        false_kills,
        create_errors,
        wall,
        idle_rss_kib,
        peak_rss_kib,
        hwm_kib,
        burst_cpu_s,
    })
}

struct BurstOpts<'a> {
    controller: &'a Path,
    floor: &'a Path,
}

// ---------------------------------------------------------------------------------------
// statistics and tables

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn ms(v: f64) -> String {
    if v.is_nan() { "-".into() } else { format!("{v:.1}") }
}

fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".into()
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

async fn ttk(env: &Env, opts: &Opts) -> Result<bool> {
    let controller = opts.path("controller")?;
    let floor = opts.path("floor")?;
    let reps = opts.num("reps", 3)?;
    let sizes: Vec<usize> = opts
        .get("sizes")
        .unwrap_or("1,50,200")
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("--sizes: a comma-separated list of numbers")
        })
        .collect::<Result<_>>()?;
    let killers = [
        Killer::FloorKill,
        Killer::ControllerKill,
        Killer::FloorRemove,
        Killer::ControllerRemove,
    ];
    let bo = BurstOpts {
        controller: &controller,
        floor: &floor,
    };
    let mut results: HashMap<(usize, Killer), Vec<Outcome>> = HashMap::new();
    for rep in 0..reps {
        for &n in &sizes {
            // Alternate the order every repetition: drift in the engine's state (its
            // growing event log, other users) hits floor and controller alike.
            let mut order = killers.to_vec();
            if rep % 2 == 1 {
                order.reverse();
            }
            for k in order {
                let t = Instant::now();
                let out = run_burst(env, &bo, k, n, rep).await?;
                eprintln!(
                    "  rep {}/{reps} N={n:<3} {:<26} median {:>7} ms  worst {:>7} ms  never running {}/{}  survivors {}  false kills {}  ({:.0} s)",
                    rep + 1,
                    k.label(),
                    ms(median(&out.latencies)),
                    ms(max(&out.latencies)),
                    out.never_ran,
                    out.denied,
                    out.survivors,
                    out.false_kills,
                    t.elapsed().as_secs_f64()
                );
                results.entry((n, k)).or_default().push(out);
            }
        }
    }

    println!();
    println!(
        "Time to kill: engine `start` event -> `die` event of each denied container (engine timestamps),"
    );
    println!(
        "N denied + max(1, N/4) allowed sleepers created and started with {} calls in flight; {reps} repetitions,",
        env.concurrency
    );
    println!(
        "floor and controller alternating in the same run. median/p90/worst pooled over all repetitions;"
    );
    println!(
        "rep medians = each repetition's median. never running = denied containers with no `start` event."
    );
    println!();
    println!(
        "| {:>3} | {:<26} | {:>9} | {:>8} | {:>9} | {:<23} | {:>13} | {:>9} | {:>11} |",
        "N",
        "killer",
        "median ms",
        "p90 ms",
        "worst ms",
        "rep medians ms",
        "never running",
        "survivors",
        "false kills"
    );
    println!(
        "|----:|:---------------------------|----------:|---------:|----------:|:------------------------|--------------:|----------:|------------:|"
    );
    let mut clean = true;
    for &n in &sizes {
        for k in killers {
            let Some(outs) = results.get(&(n, k)) else {
                continue;
            };
            let all: Vec<f64> = outs.iter().flat_map(|o| o.latencies.iter().copied()).collect();
            let rep_medians: Vec<String> = outs.iter().map(|o| ms(median(&o.latencies))).collect();
            let denied: usize = outs.iter().map(|o| o.denied).sum();
            let never: usize = outs.iter().map(|o| o.never_ran).sum();
            let surv: usize = outs.iter().map(|o| o.survivors).sum();
            let fk: usize = outs.iter().map(|o| o.false_kills).sum();
            let ce: usize = outs.iter().map(|o| o.create_errors).sum();
            clean &= surv == 0 && fk == 0 && ce == 0;
            println!(
                "| {:>3} | {:<26} | {:>9} | {:>8} | {:>9} | {:<23} | {:>13} | {:>9} | {:>11} |",
                n,
                k.label(),
                ms(median(&all)),
                ms(percentile(&all, 90.0)),
                ms(max(&all)),
                rep_medians.join(" / "),
                format!(
                    "{never}/{denied} ({:.0}%)",
                    100.0 * never as f64 / denied.max(1) as f64
                ),
                surv,
                fk
            );
            if ce > 0 {
                println!("|     |   ({ce} containers could not be created)");
            }
        }
    }
    println!();
    println!(
        "Controller / floor (same run): ratio of the pooled figures; goal at N = 200: median <= 1.25x, worst <= 2x."
    );
    println!();
    println!(
        "| {:>3} | {:<34} | {:>12} | {:>11} | {:>24} |",
        "N", "pair", "median ratio", "worst ratio", "never running (ctl/floor)"
    );
    println!(
        "|----:|:-----------------------------------|-------------:|------------:|-------------------------:|"
    );
    for &n in &sizes {
        for (c, f, name) in [
            (
                Killer::ControllerKill,
                Killer::FloorKill,
                "kill: controller / floor kill",
            ),
            (
                Killer::ControllerRemove,
                Killer::FloorRemove,
                "remove: controller / floor remove",
            ),
            (
                Killer::ControllerRemove,
                Killer::FloorKill,
                "controller remove / floor kill",
            ),
        ] {
            let (Some(co), Some(fo)) = (results.get(&(n, c)), results.get(&(n, f))) else {
                continue;
            };
            let pool = |v: &Vec<Outcome>| -> Vec<f64> {
                v.iter().flat_map(|o| o.latencies.iter().copied()).collect()
            };
            let (cl, fl) = (pool(co), pool(fo));
            let never = |v: &Vec<Outcome>| {
                let d: usize = v.iter().map(|o| o.denied).sum();
                100.0 * v.iter().map(|o| o.never_ran).sum::<usize>() as f64 / d.max(1) as f64
            };
            println!(
                "| {:>3} | {:<34} | {:>12} | {:>11} | {:>11.0}% / {:>3.0}% |",
                n,
                name,
                ratio(median(&cl), median(&fl)),
                ratio(max(&cl), max(&fl)),
                never(co),
                never(fo)
            );
        }
    }
    println!();
    println!(
        "Killer footprint during these bursts (RSS sampled every 50 ms; CPU = utime+stime during the burst):"
    );
    println!();
    println!(
        "| {:>3} | {:<26} | {:>13} | {:>14} | {:>13} | {:>15} | {:>12} |",
        "N", "killer", "idle RSS MiB", "burst peak MiB", "VmHWM MiB", "burst CPU s", "burst wall s"
    );
    println!(
        "|----:|:---------------------------|--------------:|---------------:|--------------:|----------------:|-------------:|"
    );
    for &n in &sizes {
        for k in killers {
            let Some(outs) = results.get(&(n, k)) else {
                continue;
            };
            let f = |g: &dyn Fn(&Outcome) -> f64| -> (f64, f64) {
                let v: Vec<f64> = outs.iter().map(g).collect();
                (median(&v), max(&v))
            };
            let idle = f(&|o| o.idle_rss_kib as f64);
            let peak = f(&|o| o.peak_rss_kib as f64);
            let hwm = f(&|o| o.hwm_kib as f64);
            let cpu = f(&|o| o.burst_cpu_s);
            let wall = f(&|o| o.wall);
            println!(
                "| {:>3} | {:<26} | {:>13} | {:>14} | {:>13} | {:>15} | {:>12} |",
                n,
                k.label(),
                format!("{} / {}", mib(idle.0 as u64), mib(idle.1 as u64)),
                format!("{} / {}", mib(peak.0 as u64), mib(peak.1 as u64)),
                format!("{} / {}", mib(hwm.0 as u64), mib(hwm.1 as u64)),
                format!("{:.2} / {:.2}", cpu.0, cpu.1),
                format!("{:.1} / {:.1}", wall.0, wall.1),
            );
        }
    }
    println!("(each cell: median / worst over the repetitions)");
    Ok(clean)
}

/// One process's figures in one footprint repetition.
#[derive(Default, Clone, Copy)]
struct Foot {
    idle_rss: u64,
    idle_cpu_pct: f64,
    burst_peak_rss: u64,
    burst_cpu_pct: f64,
    after_rss: u64,
    hwm: u64,
}

async fn footprint(env: &Env, opts: &Opts) -> Result<bool> {
    let controller = opts.path("controller")?;
    let api = opts.path("api")?;
    let n = opts.num("n", 200)?;
    let reps = opts.num("reps", 3)?;
    let idle_secs = opts.num("idle-secs", 5)?;
    let mut rows: Vec<(Foot, Foot, usize)> = Vec::new();
    let mut clean = true;
    for rep in 0..reps {
        let scope = format!("dwtest-bench-{}-fp-{n}-r{rep}", env.run_id);
        let _guard = env.scope_guard(&scope);
        let dir = env.workdir.join(&scope);
        std::fs::create_dir_all(&dir)?;
        let mut ctl = start_controller(env, &controller, &dir, &scope, "kill").await?;
        let (mut apip, port) = start_api(env, &api, &dir, &scope).await?;
        let (cp, ap) = (ctl.pid(), apip.pid());
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Idle: no container in scope (the API still runs its background sampler).
        let (c0, a0) = (cpu_ticks(cp), cpu_ticks(ap));
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(idle_secs as u64)).await;
        let idle_wall = t.elapsed().as_secs_f64();
        let mut cf = Foot {
            idle_rss: mem_kib(cp).0,
            idle_cpu_pct: 100.0 * (cpu_ticks(cp) - c0) as f64 / env.clk_tck / idle_wall,
            ..Default::default()
        };
        let mut af = Foot {
            idle_rss: mem_kib(ap).0,
            idle_cpu_pct: 100.0 * (cpu_ticks(ap) - a0) as f64 / env.clk_tck / idle_wall,
            ..Default::default()
        };
        // Burst: n denied + n/4 allowed, until every denied one is down.
        let (cs, asm) = (RssSampler::start(cp), RssSampler::start(ap));
        let (c0, a0) = (cpu_ticks(cp), cpu_ticks(ap));
        let t = Instant::now();
        let planned = burst(env, &scope, n, (n / 4).max(1)).await;
        stalled(&planned)?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let states = scope_states(&env.docker, &scope).await.unwrap_or_default();
            let running_denied = planned
                .iter()
                .filter(|p| p.denied)
                .filter_map(|p| p.id.as_ref())
                .filter(|id| states.get(*id).copied().unwrap_or(false))
                .count();
            if running_denied == 0 || Instant::now() > deadline {
                if running_denied > 0 {
                    clean = false;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wall = t.elapsed().as_secs_f64();
        cf.burst_cpu_pct = 100.0 * (cpu_ticks(cp) - c0) as f64 / env.clk_tck / wall;
        af.burst_cpu_pct = 100.0 * (cpu_ticks(ap) - a0) as f64 / env.clk_tck / wall;
        // With the containers present (denied ones exited, allowed ones running): let the
        // API's sampler go round a few times, and read what /containers returns.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let listed = match http_get(port, "/containers").await {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("containers")?.as_array().map(Vec::len))
                .unwrap_or(0),
            _ => 0,
        };
        cf.burst_peak_rss = cs.stop();
        af.burst_peak_rss = asm.stop();
        cf.after_rss = mem_kib(cp).0;
        af.after_rss = mem_kib(ap).0;
        cf.hwm = mem_kib(cp).1;
        af.hwm = mem_kib(ap).1;
        if !ctl.alive() || !apip.alive() {
            bail!("a process exited during the footprint burst");
        }
        eprintln!(
            "  footprint rep {}/{reps}: controller idle {} MiB peak {} MiB; status-api idle {} MiB peak {} MiB; /containers listed {listed}",
            rep + 1,
            mib(cf.idle_rss),
            mib(cf.hwm),
            mib(af.idle_rss),
            mib(af.hwm)
        );
        drop(ctl);
        drop(apip);
        remove_scope(env, &scope).await;
        let _ = std::fs::remove_dir_all(&dir);
        rows.push((cf, af, listed));
    }
    println!();
    println!(
        "Footprint: each binary idle (no container, {idle_secs} s) and during a burst of {n} denied + {} allowed containers,",
        (n / 4).max(1)
    );
    println!(
        "then with those {} containers present (status-api lists them). {reps} repetitions: median / worst.",
        n + (n / 4).max(1)
    );
    println!("Goals: controller under 15 MiB RSS, status-api under 20 MiB, with 200 containers.");
    println!();
    println!(
        "| {:<16} | {:>13} | {:>13} | {:>15} | {:>15} | {:>19} | {:>13} |",
        "binary",
        "idle RSS MiB",
        "idle CPU %",
        "burst peak MiB",
        "burst CPU %",
        "RSS after, MiB",
        "VmHWM MiB"
    );
    println!(
        "|:-----------------|--------------:|--------------:|----------------:|----------------:|--------------------:|--------------:|"
    );
    for (name, pick) in [("state-controller", 0usize), ("status-api", 1usize)] {
        let v: Vec<Foot> = rows.iter().map(|r| if pick == 0 { r.0 } else { r.1 }).collect();
        let mm = |g: &dyn Fn(&Foot) -> f64| -> (f64, f64) {
            let x: Vec<f64> = v.iter().map(g).collect();
            (median(&x), max(&x))
        };
        let kib = |p: (f64, f64)| format!("{} / {}", mib(p.0 as u64), mib(p.1 as u64));
        let pct = |p: (f64, f64)| format!("{:.1} / {:.1}", p.0, p.1);
        println!(
            "| {:<16} | {:>13} | {:>13} | {:>15} | {:>15} | {:>19} | {:>13} |",
            name,
            kib(mm(&|f| f.idle_rss as f64)),
            pct(mm(&|f| f.idle_cpu_pct)),
            kib(mm(&|f| f.burst_peak_rss as f64)),
            pct(mm(&|f| f.burst_cpu_pct)),
            kib(mm(&|f| f.after_rss as f64)),
            kib(mm(&|f| f.hwm as f64)),
        );
    }
    let listed: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
    println!(
        "(CPU % of one core; /containers listed {} containers in the repetitions)",
        listed.join(", ")
    );
    Ok(clean)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        bail!("usage: dw-bench ttk|footprint --controller BIN ...");
    };
    let opts = Opts::parse(rest)?;
    let docker_host = opts.get("docker-host").map(String::from);
    let docker = match &docker_host {
        Some(h) => Docker::connect_with_host(h),
        None => Docker::connect_with_defaults(),
    }
    .context("connecting to Docker")?
    .negotiate_version()
    .await
    .context("Docker does not answer")?;
    let run_id = opts
        .get("run-id")
        .map(String::from)
        .unwrap_or_else(|| std::process::id().to_string());
    let workdir = opts
        .get("workdir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("dwtest-bench-{run_id}")));
    std::fs::create_dir_all(&workdir)?;
    let clk_tck = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let env = Env {
        docker,
        docker_host,
        run_id,
        workdir,
        concurrency: opts.num("concurrency", 32)?,
        clk_tck,
    };
    let clean = match cmd.as_str() {
        "ttk" => ttk(&env, &opts).await?,
        "footprint" => footprint(&env, &opts).await?,
        other => bail!("unknown command {other:?}: ttk or footprint"),
    };
    if !clean {
        eprintln!("dw-bench: survivors, false kills or create errors seen (see the tables)");
        std::process::exit(1);
    }
    Ok(())
}
