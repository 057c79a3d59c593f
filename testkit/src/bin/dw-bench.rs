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
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use testkit::events::EventLog;
use testkit::http::get_port;
use testkit::process::{Process, free_port, mem_kib};
use testkit::time::{median_worst, now_nano};
use testkit::wait::{eventually, scope_states, wait_none_running};
use testkit::{PREFIX, SCOPE_LABEL, SLEEPER_IMAGE, Scope};

/// Carried by the denied containers only: the floor killer has no policy, so it is scoped
/// to this label and never sees the allowed ones.
const DENY_LABEL: &str = "dwtest.deny";

/// Longest a killer or the status API may take to say it is ready.
const READY_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// command line

/// Benchmarks of dockwarden against the floor killer (`bash bench/run.sh`).
#[derive(Parser)]
#[command(name = "dw-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// The engine to benchmark, instead of `DOCKER_HOST`'s (e.g. a Podman service).
    #[arg(long, global = true, value_name = "URL")]
    docker_host: Option<String>,
    /// Names this run's containers `dwtest-bench-<ID>-...` [default: this process's PID].
    #[arg(long, global = true, value_name = "ID")]
    run_id: Option<String>,
    /// Where policies, logs, latencies and `pids` go [default: $TMPDIR/dwtest-bench-<run-id>].
    #[arg(long, global = true, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Create and start calls in flight during a burst.
    #[arg(long, global = true, default_value_t = 32)]
    concurrency: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Time to kill: the controller beside the floor killer, kill and remove.
    Ttk {
        /// The state-controller binary.
        #[arg(long, value_name = "BIN")]
        controller: PathBuf,
        /// The dw-floor-killer binary.
        #[arg(long, value_name = "BIN")]
        floor: PathBuf,
        /// Burst sizes (denied containers; +N/4 allowed).
        #[arg(long, value_delimiter = ',', default_value = "1,50,200", value_parser = number)]
        sizes: Vec<usize>,
        /// Repetitions of every figure.
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// RSS and CPU of the controller and the status API: idle, in a burst, after it.
    Footprint {
        /// The state-controller binary.
        #[arg(long, value_name = "BIN")]
        controller: PathBuf,
        /// The status-api binary.
        #[arg(long, value_name = "BIN")]
        api: PathBuf,
        /// Denied containers in the burst (+N/4 allowed).
        #[arg(long, default_value_t = 200)]
        n: usize,
        /// Repetitions of every figure.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Seconds of the idle measurement.
        #[arg(long, default_value_t = 5)]
        idle_secs: u64,
    },
}

fn number(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| "not a number (a comma-separated list of numbers)".to_string())
}

/// What the driver shares with every burst.
struct Env {
    docker: Docker,
    /// `--docker-host`, passed on to every process started and to the cleanup.
    docker_host: Option<String>,
    run_id: String,
    workdir: PathBuf,
    concurrency: usize,
    clk_tck: f64,
}

impl Env {
    /// The scope `dwtest-bench-<run-id>-<tail>` (its containers are removed when it is
    /// dropped, even when a burst fails half-way) and its directory.
    fn scope(&self, tail: &str) -> Result<(Scope, PathBuf)> {
        let scope = Scope::with_id(format!("{PREFIX}-bench-{}-{tail}", self.run_id))
            .on_host(self.docker_host.as_deref());
        let dir = self.workdir.join(&scope.id);
        std::fs::create_dir_all(&dir)?;
        Ok((scope, dir))
    }

    /// Starts `cmd` (with `--docker-host` when given), its output in `log`; its PID goes to
    /// `<workdir>/pids` for the calling script.
    fn spawn(&self, what: &str, mut cmd: Command, log: PathBuf) -> Result<Process> {
        if let Some(h) = &self.docker_host {
            cmd.args(["--docker-host", h]);
        }
        let p = Process::spawn(what, cmd, &log)?;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.workdir.join("pids"))
        {
            let _ = writeln!(f, "{}", p.pid());
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------
// processes under measurement

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
    fn action(self) -> &'static str {
        match self {
            Killer::FloorRemove | Killer::ControllerRemove => "remove",
            Killer::FloorKill | Killer::ControllerKill => "kill",
        }
    }
}

async fn start_controller(env: &Env, bin: &Path, dir: &Path, scope: &Scope, action: &str) -> Result<Process> {
    let policy = dir.join("allowlist.toml");
    std::fs::write(
        &policy,
        format!(
            "mode = \"enforce\"\naction = \"{action}\"\n\n[[allow]]\nname = \"{}\"\n",
            scope.name("ok-*")
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("--allowlist")
        .arg(&policy)
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--scope", &scope.selector()])
        .env("RUST_LOG", "info");
    // The log goes to a sibling directory: a log inside the watched policy directory would
    // wake the reloader at every line.
    let p = env.spawn("state-controller", cmd, dir.with_extension("controller.log"))?;
    p.wait_log(&["state list synced"], READY_LIMIT).await?;
    Ok(p)
}

async fn start_floor(env: &Env, bin: &Path, dir: &Path, scope: &Scope, action: &str) -> Result<Process> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--scope",
        &format!("{DENY_LABEL}={}", scope.id),
        "--action",
        action,
    ]);
    let p = env.spawn("dw-floor-killer", cmd, dir.with_extension("floor.log"))?;
    p.wait_log(&["dw-floor-killer ready"], READY_LIMIT).await?;
    Ok(p)
}

async fn start_api(env: &Env, bin: &Path, dir: &Path, scope: &Scope) -> Result<(Process, u16)> {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--allowlist")
        .arg(dir.join("allowlist.toml"))
        .args(["--scope", &scope.selector()])
        .env("RUST_LOG", "info");
    let p = env.spawn("status-api", cmd, dir.with_extension("api.log"))?;
    eventually(READY_LIMIT, "status-api to answer /readyz", || async {
        get_port(port, "/readyz")
            .await
            .is_ok_and(|r| r.status == 200)
            .then_some(())
    })
    .await
    .with_context(|| format!("status-api did not become ready:\n{}", p.log_text()))?;
    Ok((p, port))
}

// ---------------------------------------------------------------------------------------
// bursts

/// A container's engine times (ns): its first `start`, and when it first went down (`die`,
/// else `destroy`; Podman says `remove`).
#[derive(Default, Clone, Copy)]
struct Times {
    start: Option<i64>,
    down: Option<i64>,
}

impl Times {
    fn of(log: &EventLog, id: &str) -> Times {
        let down = ["die", "destroy", "remove"].iter().find_map(|a| log.first(id, a));
        Times {
            start: log.first(id, "start"),
            down,
        }
    }
}

struct Planned {
    name: String,
    denied: bool,
    id: Option<String>,
    /// The engine did not answer the create or start call within [`ENGINE_CALL_LIMIT`].
    stalled: bool,
    times: Times,
}

/// Longest a single create or start may take before the engine counts as stalled. Docker
/// 20.10 can deadlock in libnetwork under heavy container churn (moby/moby#42545, fixed
/// after 20.10.24): starts and removals then hang for good, and only a restart of dockerd
/// helps. The bench must say so rather than report the hung containers as survivors.
const ENGINE_CALL_LIMIT: Duration = Duration::from_secs(60);

/// Creates and starts `denied` + `allowed` sleepers in `scope`, at most `env.concurrency`
/// calls in flight, allowed ones spread evenly among the denied.
async fn burst(env: &Env, scope: &Scope, denied: usize, allowed: usize) -> Vec<Planned> {
    let total = denied + allowed;
    let mut plan: Vec<(String, bool)> = Vec::with_capacity(total);
    let (mut d, mut a) = (0, 0);
    for i in 0..total {
        // Bresenham-style interleave: allowed ones spread over the whole burst.
        let want_allowed = allowed > 0 && (i + 1) * allowed / total > a;
        if want_allowed && a < allowed || d >= denied {
            plan.push((scope.name(&format!("ok-{a}")), false));
            a += 1;
        } else {
            plan.push((scope.name(&format!("bad-{d}")), true));
            d += 1;
        }
    }
    futures_util::stream::iter(plan)
        .map(|(name, denied)| {
            let docker = env.docker.clone();
            let scope = scope.id.clone();
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
                    times: Times::default(),
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

/// IDs of the denied containers that were created.
fn denied_ids(planned: &[Planned]) -> Vec<String> {
    planned
        .iter()
        .filter(|p| p.denied)
        .filter_map(|p| p.id.clone())
        .collect()
}

/// Waits until no denied container runs; gives up after 90 s (those are survivors).
async fn wait_denied_down(env: &Env, scope: &Scope, planned: &[Planned]) -> Vec<String> {
    wait_none_running(&env.docker, scope, &denied_ids(planned), Duration::from_secs(90)).await
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
    let (scope, dir) = env.scope(&format!("{}-{n}-r{rep}", killer.short()))?;
    let action = killer.action();
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
    let log = EventLog::start_since(&env.docker, &scope.selector(), now_nano() - 1_000_000);
    let clock = Instant::now();
    let mut planned = burst(env, &scope, n, allowed).await;
    stalled(&planned)?;
    wait_denied_down(env, &scope, &planned).await;
    let wall = clock.elapsed().as_secs_f64();
    let burst_cpu_s = cpu_ticks(pid).saturating_sub(cpu0) as f64 / env.clk_tck;
    let peak_rss_kib = sampler.stop();
    let hwm_kib = mem_kib(pid).1;
    // Allowed ones get a moment to be (wrongly) killed before they are checked.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let states_after = scope_states(&env.docker, &scope).await;
    let running = |id: &str| {
        states_after
            .get(id)
            .is_some_and(|(_, s)| matches!(s.as_str(), "running" | "restarting" | "paused"))
    };
    for p in &mut planned {
        p.times = p.id.as_deref().map(|id| Times::of(&log, id)).unwrap_or_default();
    }
    drop(log);
    if !proc.still_running() {
        bail!("the killer exited during the burst:\n{}", proc.log_text());
    }
    drop(proc);

    let mut latencies = Vec::new();
    let (mut never_ran, mut survivors, mut false_kills) = (0, 0, 0);
    for p in &planned {
        let Some(id) = &p.id else { continue };
        let t = p.times;
        if p.denied {
            if running(id) {
                survivors += 1;
                eprintln!("  SURVIVOR {}", p.name);
            }
            match (t.start, t.down) {
                (None, _) => never_ran += 1,
                (Some(s), Some(d)) => latencies.push((d - s) as f64 / 1e6),
                (Some(_), None) => {}
            }
        } else if !running(id) || t.down.is_some() {
            false_kills += 1;
            eprintln!("  FALSE KILL {}", p.name);
        }
    }
    let create_errors = planned.iter().filter(|p| p.id.is_none()).count();
    // Per container, for a closer look beside the killer's log: name, start->die ms.
    let tsv: String = planned
        .iter()
        .filter(|p| p.denied && p.id.is_some())
        .map(|p| {
            let ms = match (p.times.start, p.times.down) {
                (Some(s), Some(d)) => format!("{:.1}", (d - s) as f64 / 1e6),
                (None, _) => "never-ran".into(),
                _ => "-".into(),
            };
            format!("{}\t{ms}\n", p.name)
        })
        .collect();
    let _ = std::fs::write(dir.with_extension("latencies.tsv"), tsv);
    drop(scope);
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

/// Median and worst; NaN (printed `-`) when there is nothing to summarise.
fn med_worst(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        median_worst(v.to_vec())
    }
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

async fn ttk(env: &Env, controller: &Path, floor: &Path, sizes: &[usize], reps: usize) -> Result<bool> {
    let killers = [
        Killer::FloorKill,
        Killer::ControllerKill,
        Killer::FloorRemove,
        Killer::ControllerRemove,
    ];
    let bo = BurstOpts { controller, floor };
    let mut results: HashMap<(usize, Killer), Vec<Outcome>> = HashMap::new();
    for rep in 0..reps {
        for &n in sizes {
            // Alternate the order every repetition: drift in the engine's state (its
            // growing event log, other users) hits floor and controller alike.
            let mut order = killers.to_vec();
            if rep % 2 == 1 {
                order.reverse();
            }
            for k in order {
                let t = Instant::now();
                let out = run_burst(env, &bo, k, n, rep).await?;
                let (median, worst) = med_worst(&out.latencies);
                eprintln!(
                    "  rep {}/{reps} N={n:<3} {:<26} median {:>7} ms  worst {:>7} ms  never running {}/{}  survivors {}  false kills {}  ({:.0} s)",
                    rep + 1,
                    k.label(),
                    ms(median),
                    ms(worst),
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
    let pool =
        |v: &Vec<Outcome>| -> Vec<f64> { v.iter().flat_map(|o| o.latencies.iter().copied()).collect() };
    let mut clean = true;
    for &n in sizes {
        for k in killers {
            let Some(outs) = results.get(&(n, k)) else {
                continue;
            };
            let all = pool(outs);
            let (median, worst) = med_worst(&all);
            let rep_medians: Vec<String> = outs.iter().map(|o| ms(med_worst(&o.latencies).0)).collect();
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
                ms(median),
                ms(percentile(&all, 90.0)),
                ms(worst),
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
    for &n in sizes {
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
            let ((cm, cw), (fm, fw)) = (med_worst(&pool(co)), med_worst(&pool(fo)));
            let never = |v: &Vec<Outcome>| {
                let d: usize = v.iter().map(|o| o.denied).sum();
                100.0 * v.iter().map(|o| o.never_ran).sum::<usize>() as f64 / d.max(1) as f64
            };
            println!(
                "| {:>3} | {:<34} | {:>12} | {:>11} | {:>11.0}% / {:>3.0}% |",
                n,
                name,
                ratio(cm, fm),
                ratio(cw, fw),
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
    for &n in sizes {
        for k in killers {
            let Some(outs) = results.get(&(n, k)) else {
                continue;
            };
            let f = |g: &dyn Fn(&Outcome) -> f64| med_worst(&outs.iter().map(g).collect::<Vec<_>>());
            let kib = |p: (f64, f64)| format!("{} / {}", mib(p.0 as u64), mib(p.1 as u64));
            let cpu = f(&|o| o.burst_cpu_s);
            let wall = f(&|o| o.wall);
            println!(
                "| {:>3} | {:<26} | {:>13} | {:>14} | {:>13} | {:>15} | {:>12} |",
                n,
                k.label(),
                kib(f(&|o| o.idle_rss_kib as f64)),
                kib(f(&|o| o.peak_rss_kib as f64)),
                kib(f(&|o| o.hwm_kib as f64)),
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

async fn footprint(
    env: &Env,
    controller: &Path,
    api: &Path,
    n: usize,
    reps: usize,
    idle_secs: u64,
) -> Result<bool> {
    let mut rows: Vec<(Foot, Foot, usize)> = Vec::new();
    let mut clean = true;
    for rep in 0..reps {
        let (scope, dir) = env.scope(&format!("fp-{n}-r{rep}"))?;
        let mut ctl = start_controller(env, controller, &dir, &scope, "kill").await?;
        let (mut apip, port) = start_api(env, api, &dir, &scope).await?;
        let (cp, ap) = (ctl.pid(), apip.pid());
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Idle: no container in scope (the API still runs its background sampler).
        let (c0, a0) = (cpu_ticks(cp), cpu_ticks(ap));
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        let idle_wall = t.elapsed().as_secs_f64();
        let cpu_pct =
            |pid: u32, t0: u64, wall: f64| 100.0 * (cpu_ticks(pid) - t0) as f64 / env.clk_tck / wall;
        let mut cf = Foot {
            idle_rss: mem_kib(cp).0,
            idle_cpu_pct: cpu_pct(cp, c0, idle_wall),
            ..Default::default()
        };
        let mut af = Foot {
            idle_rss: mem_kib(ap).0,
            idle_cpu_pct: cpu_pct(ap, a0, idle_wall),
            ..Default::default()
        };
        // Burst: n denied + n/4 allowed, until every denied one is down.
        let (cs, asm) = (RssSampler::start(cp), RssSampler::start(ap));
        let (c0, a0) = (cpu_ticks(cp), cpu_ticks(ap));
        let t = Instant::now();
        let planned = burst(env, &scope, n, (n / 4).max(1)).await;
        stalled(&planned)?;
        if !wait_denied_down(env, &scope, &planned).await.is_empty() {
            clean = false;
        }
        let wall = t.elapsed().as_secs_f64();
        cf.burst_cpu_pct = cpu_pct(cp, c0, wall);
        af.burst_cpu_pct = cpu_pct(ap, a0, wall);
        // With the containers present (denied ones exited, allowed ones running): let the
        // API's sampler go round a few times, and read what /containers returns.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let listed = match get_port(port, "/containers").await {
            Ok(r) if r.status == 200 => serde_json::from_str::<serde_json::Value>(&r.body)
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
        if !ctl.still_running() || !apip.still_running() {
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
        drop(scope);
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
        let mm = |g: &dyn Fn(&Foot) -> f64| med_worst(&v.iter().map(g).collect::<Vec<_>>());
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
    let cli = Cli::parse();
    let docker = testkit::connect(cli.docker_host.as_deref()).await?;
    let run_id = cli.run_id.unwrap_or_else(|| std::process::id().to_string());
    let workdir = cli
        .workdir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("{PREFIX}-bench-{run_id}")));
    std::fs::create_dir_all(&workdir)?;
    let clk_tck = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let env = Env {
        docker,
        docker_host: cli.docker_host,
        run_id,
        workdir,
        concurrency: cli.concurrency,
        clk_tck,
    };
    let clean = match &cli.cmd {
        Cmd::Ttk {
            controller,
            floor,
            sizes,
            reps,
        } => ttk(&env, controller, floor, sizes, *reps).await?,
        Cmd::Footprint {
            controller,
            api,
            n,
            reps,
            idle_secs,
        } => footprint(&env, controller, api, *n, *reps, *idle_secs).await?,
    };
    if !clean {
        eprintln!("dw-bench: survivors, false kills or create errors seen (see the tables)");
        std::process::exit(1);
    }
    Ok(())
}
