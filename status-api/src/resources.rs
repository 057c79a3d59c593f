//! Background collection of CPU % and memory for every running container, and the health
//! class derived from them. Requests never call Docker for figures: they read the last
//! sample from here.
//!
//! Every `interval` one round asks the engine for a `one-shot` stats sample of each running
//! container (a few ms each; without `one-shot` the engine waits a whole sampling period,
//! ~1 s, to fill `precpu_stats`), with at most [`CONCURRENCY`] calls in flight. CPU % is the
//! change of the container's CPU time over the change of the host's CPU time between this
//! round's sample and the previous one, times the number of CPUs: `docker stats` semantics,
//! so a container that keeps one core busy shows 100 %. An engine that ignores `one-shot`
//! (API < 1.41) fills `precpu_stats` itself, which is then used directly.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptionsBuilder;
use common::engine::container::State;
use common::informer::store::Store;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::watch;

/// Stats calls in flight at once: enough to finish a round of hundreds of containers in well
/// under a second, few enough not to crowd the engine.
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

    /// Samples every running container of `store` every `interval`, forever, with the
    /// client the informer currently holds.
    pub async fn run(self, store: Store, mut docker: watch::Receiver<Option<Docker>>, interval: Duration) {
        // The first round as soon as the picture is complete, then one every `interval`.
        store.wait_until_ready().await;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let client = docker.borrow_and_update().clone();
            match client {
                Some(client) => self.round(&store, &client).await,
                // Not connected (yet): wait for the informer's next connection.
                None => {
                    if docker.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One round: sample all running containers, forget those no longer running.
    async fn round(&self, store: &Store, docker: &Docker) {
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
                let r = fetch(docker, &id).await;
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
async fn fetch(docker: &Docker, id: &str) -> Option<ContainerStatsResponse> {
    let opts = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let call = async { docker.stats(id, Some(opts)).try_next().await };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(Some(r))) => Some(r),
        Ok(Ok(None)) => None,
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

fn cpu_totals(s: Option<&ContainerCpuStats>) -> Option<(u64, u64)> {
    let s = s?;
    let total = s.cpu_usage.as_ref()?.total_usage?;
    let system = s.system_cpu_usage?;
    (system > 0).then_some((total, system))
}

/// Turns an engine answer into a sample; CPU % from the engine's own `precpu_stats` when it
/// filled them, else from the previous sample. `None` when the answer has no figures (the
/// container stopped meanwhile).
pub fn sample_from(r: &ContainerStatsResponse, prev: Option<&Sample>, now: SystemTime) -> Option<Sample> {
    let (cpu_total_ns, system_total_ns) = cpu_totals(r.cpu_stats.as_ref())?;
    let online_cpus = r
        .cpu_stats
        .as_ref()
        .and_then(|c| c.online_cpus)
        .filter(|n| *n > 0)
        .or_else(|| {
            r.cpu_stats
                .as_ref()
                .and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.percpu_usage.as_ref())
                .map(|p| p.len() as u32)
        })
        .unwrap_or(1)
        .max(1);
    let before =
        cpu_totals(r.precpu_stats.as_ref()).or_else(|| prev.map(|p| (p.cpu_total_ns, p.system_total_ns)));
    let cpu_percent = before.and_then(|(cpu0, sys0)| {
        // A restarted container's counters start again from zero: no delta then.
        let cpu = cpu_total_ns.checked_sub(cpu0)?;
        let sys = system_total_ns.checked_sub(sys0).filter(|d| *d > 0)?;
        Some(cpu as f64 / sys as f64 * f64::from(online_cpus) * 100.0)
    });
    let mem = r.memory_stats.as_ref()?;
    let usage = mem.usage?;
    // Like the Docker CLI: subtract reclaimable cache (cgroup v1: total_inactive_file,
    // cgroup v2: inactive_file) when it is smaller than the usage.
    let inactive = mem.stats.as_ref().and_then(|s| {
        s.get("total_inactive_file")
            .or_else(|| s.get("inactive_file"))
            .copied()
    });
    let memory_bytes = match inactive {
        Some(i) if i < usage => usage - i,
        _ => usage,
    };
    Some(Sample {
        cpu_percent,
        online_cpus,
        memory_bytes,
        memory_limit_bytes: mem.limit.filter(|l| *l > 0),
        sampled_at: now,
        cpu_total_ns,
        system_total_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuUsage, ContainerMemoryStats};

    fn resp(cpu: u64, sys: u64, mem: u64, limit: u64) -> ContainerStatsResponse {
        ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(cpu),
                    ..Default::default()
                }),
                system_cpu_usage: Some(sys),
                online_cpus: Some(2),
                ..Default::default()
            }),
            precpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(mem),
                limit: Some(limit),
                stats: Some(HashMap::from([("total_inactive_file".to_string(), 100)])),
                ..Default::default()
            }),
            ..Default::default()
        }
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
        r.precpu_stats = resp(1_000, 10_000, 0, 0).cpu_stats;
        assert_eq!(sample_from(&r, None, now).unwrap().cpu_percent, Some(100.0));
    }

    #[test]
    fn stopped_container_answer_has_no_sample() {
        let mut r = resp(0, 0, 0, 0);
        r.cpu_stats.as_mut().unwrap().system_cpu_usage = None;
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
