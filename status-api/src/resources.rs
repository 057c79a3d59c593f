//! Background collection of CPU % and memory for every running container, and the health
//! class derived from them. Requests never call Docker for figures: they read the last
//! sample from here.
//!
//! Every `interval` one round asks the engine for a `one-shot` stats sample of each running
//! container (without `one-shot` the engine waits a whole sampling period, ~1 s, to fill
//! `precpu_stats`), with at most [`CONCURRENCY`] calls in flight. Docker 20.10 still answers
//! a `one-shot` call at its collector's next one-second tick, so there a round samples about
//! [`CONCURRENCY`] containers a second and lasts longer than the interval past a few dozen
//! containers (the next one then starts at once); each sample costs the engine ~2 ms of CPU,
//! which is why the rounds are not made wider (docs/status-api.md). CPU % is the
//! change of the container's CPU time over the change of the host's CPU time between this
//! round's sample and the previous one, times the number of CPUs: `docker stats` semantics,
//! so a container that keeps one core busy shows 100 %. An engine that ignores `one-shot`
//! (API < 1.41) fills `precpu_stats` itself, which is then used directly.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use common::engine::HttpEngine;
use common::engine::container::State;
use common::informer::store::Store;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

/// Stats calls in flight at once: few enough not to crowd the engine (see the module
/// documentation for how long a round takes).
pub const CONCURRENCY: usize = 8;
/// A stats call that takes longer is abandoned; the container keeps its previous figures.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Health-class thresholds, in percent of the CPU or memory available to the container.
pub const WARNING_AT: f64 = 75.0;
pub const CRITICAL_ABOVE: f64 = 90.0;

/// The last figures of one running container.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `docker stats` semantics: 100 = one CPU busy. `None` until two samples exist.
    pub cpu_percent: Option<f64>,
    /// CPUs the engine reports for the container (the host's CPUs unless limited).
    pub online_cpus: u32,
    /// Memory in use, page cache that can be reclaimed (inactive files) excluded, as
    /// `docker stats` shows it.
    pub memory_bytes: u64,
    /// The container's limit, or the host's memory when it has none.
    pub memory_limit_bytes: Option<u64>,
    pub sampled_at: SystemTime,
    /// Cumulative CPU times of this sample, for the next round's delta.
    cpu_total_ns: u64,
    system_total_ns: u64,
}

impl Sample {
    /// CPU use as a share of the CPUs available to the container, 0–100.
    pub fn cpu_share_percent(&self) -> Option<f64> {
        self.cpu_percent.map(|p| p / f64::from(self.online_cpus.max(1)))
    }

    pub fn memory_percent(&self) -> Option<f64> {
        match self.memory_limit_bytes {
            Some(limit) if limit > 0 => Some(self.memory_bytes as f64 * 100.0 / limit as f64),
            _ => None,
        }
    }
}

/// What the page and the JSON call a container's health: Docker's own healthcheck and the
/// resource figures together, worst first. Docker's verdict outranks the figures: a
/// container Docker calls `unhealthy` is `critical` however idle it is, and only one whose
/// healthcheck says `healthy` can be `healthy`.
///
/// | class | when (first that applies) |
/// |---|---|
/// | `stopped` | not running |
/// | `critical` | Docker healthcheck `unhealthy`, or CPU or memory > 90 % |
/// | `warning` | CPU or memory ≥ 75 % |
/// | `unknown` | no CPU/memory figures yet |
/// | `starting` | Docker healthcheck still `starting` |
/// | `running` | no Docker healthcheck (figures fine, but nothing says it is healthy) |
/// | `healthy` | Docker healthcheck `healthy` and figures fine |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthClass {
    Healthy,
    Running,
    Starting,
    Unknown,
    Warning,
    Critical,
    Stopped,
}

/// The figures alone: healthy < 75 % ≤ warning ≤ 90 % < critical, of CPU or memory
/// (whichever is worse); stopped when not running; unknown while no figures exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceClass {
    Healthy,
    Warning,
    Critical,
    Stopped,
    Unknown,
}

impl ResourceClass {
    pub fn of(state: State, sample: Option<&Sample>) -> ResourceClass {
        if state != State::Running {
            return ResourceClass::Stopped;
        }
        let Some(s) = sample else {
            return ResourceClass::Unknown;
        };
        let worst = [s.cpu_share_percent(), s.memory_percent()]
            .into_iter()
            .flatten()
            .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))));
        match worst {
            None => ResourceClass::Unknown,
            Some(w) if w > CRITICAL_ABOVE => ResourceClass::Critical,
            Some(w) if w >= WARNING_AT => ResourceClass::Warning,
            Some(_) => ResourceClass::Healthy,
        }
    }
}

impl HealthClass {
    /// Combines Docker's healthcheck status (`None`: the image defines none) with the
    /// resource class, by the table above.
    pub fn of(state: State, docker_health: Option<&str>, resources: ResourceClass) -> HealthClass {
        if state != State::Running {
            return HealthClass::Stopped;
        }
        match (docker_health, resources) {
            (Some("unhealthy"), _) | (_, ResourceClass::Critical) => HealthClass::Critical,
            (_, ResourceClass::Warning) => HealthClass::Warning,
            (_, ResourceClass::Unknown | ResourceClass::Stopped) => HealthClass::Unknown,
            (Some("healthy"), ResourceClass::Healthy) => HealthClass::Healthy,
            (None, ResourceClass::Healthy) => HealthClass::Running,
            // `starting`, or a value a newer engine may add: not known to be healthy.
            (Some(_), ResourceClass::Healthy) => HealthClass::Starting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthClass::Healthy => "healthy",
            HealthClass::Running => "running",
            HealthClass::Starting => "starting",
            HealthClass::Unknown => "unknown",
            HealthClass::Warning => "warning",
            HealthClass::Critical => "critical",
            HealthClass::Stopped => "stopped",
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CollectorStats {
    pub rounds: AtomicU64,
    pub samples: AtomicU64,
    pub errors: AtomicU64,
    /// Duration of the last round, in microseconds.
    pub last_round_micros: AtomicU64,
}

/// Samples by container ID.
pub type Samples = HashMap<String, Sample>;

/// The figures of every running container; clone freely (shared). Each round publishes a
/// whole new map, so a reader takes one cheap snapshot per request and never waits on a
/// round.
#[derive(Clone, Default)]
pub struct Resources {
    samples: Arc<RwLock<Arc<Samples>>>,
    pub stats: Arc<CollectorStats>,
    /// Bumped at every published round: the view cache re-renders when it moves.
    version: Arc<AtomicU64>,
}

impl Resources {
    /// The figures of the last round.
    pub fn snapshot(&self) -> Arc<Samples> {
        self.samples.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes whenever a round publishes new figures.
    pub fn version(&self) -> u64 {
        self.version.load(Relaxed)
    }

    /// Samples every running container of `store` every `interval`, forever.
    pub async fn run(self, store: Store, engine: HttpEngine, interval: Duration) {
        // The first round as soon as the picture is complete, then one every `interval`.
        store.wait_until_ready().await;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // While the picture is stale (the engine is away), wait for the re-list.
            store.wait_until_ready().await;
            self.round(&store, &engine).await;
        }
    }

    /// One round: sample all running containers, forget those no longer running.
    async fn round(&self, store: &Store, engine: &HttpEngine) {
        let started = std::time::Instant::now();
        let running: Vec<String> = store
            .list()
            .iter()
            .filter(|c| c.state == State::Running)
            .map(|c| c.id.clone())
            .collect();
        let keep: HashSet<&String> = running.iter().collect();
        let previous = self.snapshot();
        let mut samples: Samples = previous
            .iter()
            .filter(|(id, _)| keep.contains(id))
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        // Each answer becomes a small Sample as it arrives: the engine's answers (a few KB
        // each once decoded) are never all held at once, which at 1,000 containers was the
        // largest peak of the process's memory.
        let mut answers = futures_util::stream::iter(running.iter().cloned())
            .map(|id| async move {
                let r = fetch(engine, &id).await;
                (id, r)
            })
            .buffer_unordered(CONCURRENCY);
        while let Some((id, resp)) = answers.next().await {
            let Some(resp) = resp else {
                self.stats.errors.fetch_add(1, Relaxed);
                continue;
            };
            if let Some(s) = sample_from(&resp, previous.get(&id), SystemTime::now()) {
                self.stats.samples.fetch_add(1, Relaxed);
                samples.insert(id, s);
            }
        }
        *self.samples.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(samples);
        self.version.fetch_add(1, Relaxed);
        self.stats.rounds.fetch_add(1, Relaxed);
        self.stats
            .last_round_micros
            .store(started.elapsed().as_micros() as u64, Relaxed);
    }
}

/// One `one-shot` stats sample; `None` (logged at debug: a container that just stopped is
/// normal) on error or timeout.
async fn fetch(engine: &HttpEngine, id: &str) -> Option<Value> {
    match tokio::time::timeout(CALL_TIMEOUT, engine.stats(id)).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(container = %id, error = %e, "stats failed");
            None
        }
        Err(_) => {
            tracing::debug!(container = %id, "stats timed out");
            None
        }
    }
}

fn u64_at(v: &Value, path: &str) -> Option<u64> {
    v.pointer(path).and_then(Value::as_u64)
}

/// `(total_usage, system_cpu_usage)` of a `cpu_stats` or `precpu_stats` object.
fn cpu_totals(s: &Value) -> Option<(u64, u64)> {
    let total = u64_at(s, "/cpu_usage/total_usage")?;
    let system = u64_at(s, "/system_cpu_usage")?;
    (system > 0).then_some((total, system))
}

/// Turns an engine answer into a sample; CPU % from the engine's own `precpu_stats` when it
/// filled them, else from the previous sample. `None` when the answer has no figures (the
/// container stopped meanwhile). Fields are read leniently: an odd one is a missing figure.
pub fn sample_from(r: &Value, prev: Option<&Sample>, now: SystemTime) -> Option<Sample> {
    let cpu = r.get("cpu_stats")?;
    let (cpu_total_ns, system_total_ns) = cpu_totals(cpu)?;
    let online_cpus = u64_at(cpu, "/online_cpus")
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .or_else(|| {
            cpu.pointer("/cpu_usage/percpu_usage")
                .and_then(Value::as_array)
                .map(|p| p.len() as u32)
        })
        .unwrap_or(1)
        .max(1);
    let before = r
        .get("precpu_stats")
        .and_then(cpu_totals)
        .or_else(|| prev.map(|p| (p.cpu_total_ns, p.system_total_ns)));
    let cpu_percent = before.and_then(|(cpu0, sys0)| {
        // A restarted container's counters start again from zero: no delta then.
        let cpu = cpu_total_ns.checked_sub(cpu0)?;
        let sys = system_total_ns.checked_sub(sys0).filter(|d| *d > 0)?;
        Some(cpu as f64 / sys as f64 * f64::from(online_cpus) * 100.0)
    });
    let mem = r.get("memory_stats")?;
    let usage = u64_at(mem, "/usage")?;
    // Like the Docker CLI: subtract reclaimable cache (cgroup v1: total_inactive_file,
    // cgroup v2: inactive_file) when it is smaller than the usage.
    let inactive = u64_at(mem, "/stats/total_inactive_file").or_else(|| u64_at(mem, "/stats/inactive_file"));
    let memory_bytes = match inactive {
        Some(i) if i < usage => usage - i,
        _ => usage,
    };
    Some(Sample {
        cpu_percent,
        online_cpus,
        memory_bytes,
        memory_limit_bytes: u64_at(mem, "/limit").filter(|l| *l > 0),
        sampled_at: now,
        cpu_total_ns,
        system_total_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// As Engine 20.10 answers a one-shot stats call (precpu_stats without system usage).
    fn resp(cpu: u64, sys: u64, mem: u64, limit: u64) -> Value {
        json!({
            "cpu_stats": {"cpu_usage": {"total_usage": cpu}, "system_cpu_usage": sys, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}},
            "memory_stats": {"usage": mem, "limit": limit, "stats": {"total_inactive_file": 100}},
            "blkio_stats": {"io_service_bytes_recursive": null}
        })
    }

    #[test]
    fn cpu_percent_needs_two_samples() {
        let now = SystemTime::now();
        let first = sample_from(&resp(1_000, 10_000, 1_100, 4_000), None, now).unwrap();
        assert_eq!(first.cpu_percent, None, "one-shot: no precpu, no previous sample");
        assert_eq!(first.memory_bytes, 1_000, "inactive file cache excluded");
        assert_eq!(first.memory_percent(), Some(25.0));
        // 500 ns of container CPU over 1000 ns of host CPU time on 2 CPUs: one CPU busy.
        let second = sample_from(&resp(1_500, 11_000, 1_100, 4_000), Some(&first), now).unwrap();
        assert_eq!(second.cpu_percent, Some(100.0));
        assert_eq!(second.cpu_share_percent(), Some(50.0));
        // Counters went backwards (restart): no figure rather than a wrong one.
        let third = sample_from(&resp(10, 12_000, 1_100, 4_000), Some(&second), now).unwrap();
        assert_eq!(third.cpu_percent, None);
        // An engine that filled precpu_stats itself.
        let mut r = resp(1_500, 11_000, 1_100, 4_000);
        r["precpu_stats"] = resp(1_000, 10_000, 0, 0)["cpu_stats"].clone();
        assert_eq!(sample_from(&r, None, now).unwrap().cpu_percent, Some(100.0));
    }

    #[test]
    fn stopped_container_answer_has_no_sample() {
        let mut r = resp(0, 0, 0, 0);
        r["cpu_stats"]["system_cpu_usage"] = Value::Null;
        assert_eq!(sample_from(&r, None, SystemTime::now()), None);
    }

    #[test]
    fn health_classes() {
        let now = SystemTime::now();
        let with = |cpu: Option<f64>, mem: u64| Sample {
            cpu_percent: cpu,
            online_cpus: 2,
            memory_bytes: mem,
            memory_limit_bytes: Some(100),
            sampled_at: now,
            cpu_total_ns: 0,
            system_total_ns: 0,
        };
        let class = |s: &Sample| ResourceClass::of(State::Running, Some(s));
        assert_eq!(class(&with(Some(10.0), 10)), ResourceClass::Healthy);
        assert_eq!(
            class(&with(Some(149.0), 10)),
            ResourceClass::Healthy,
            "74.5 % of 2 CPUs"
        );
        assert_eq!(
            class(&with(Some(150.0), 10)),
            ResourceClass::Warning,
            "75 % of 2 CPUs"
        );
        assert_eq!(
            class(&with(None, 90)),
            ResourceClass::Warning,
            "90 % is still warning"
        );
        assert_eq!(class(&with(None, 91)), ResourceClass::Critical);
        assert_eq!(class(&with(Some(190.0), 5)), ResourceClass::Critical);
        assert_eq!(ResourceClass::of(State::Running, None), ResourceClass::Unknown);
        assert_eq!(
            ResourceClass::of(State::Exited, Some(&with(None, 99))),
            ResourceClass::Stopped
        );
        assert_eq!(ResourceClass::of(State::Paused, None), ResourceClass::Stopped);
    }

    #[test]
    fn docker_health_outranks_the_figures() {
        use HealthClass as H;
        use ResourceClass as R;
        let run = State::Running;
        assert_eq!(
            H::of(run, Some("unhealthy"), R::Healthy),
            H::Critical,
            "never green"
        );
        assert_eq!(H::of(run, Some("unhealthy"), R::Unknown), H::Critical);
        assert_eq!(H::of(run, Some("healthy"), R::Healthy), H::Healthy);
        assert_eq!(H::of(run, Some("healthy"), R::Warning), H::Warning);
        assert_eq!(H::of(run, Some("healthy"), R::Critical), H::Critical);
        assert_eq!(H::of(run, Some("healthy"), R::Unknown), H::Unknown);
        assert_eq!(
            H::of(run, Some("starting"), R::Healthy),
            H::Starting,
            "not green yet"
        );
        assert_eq!(
            H::of(run, None, R::Healthy),
            H::Running,
            "no healthcheck: not green"
        );
        assert_eq!(H::of(run, None, R::Unknown), H::Unknown);
        assert_eq!(H::of(State::Exited, Some("unhealthy"), R::Stopped), H::Stopped);
        assert_eq!(H::of(State::Paused, Some("healthy"), R::Stopped), H::Stopped);
    }
}
