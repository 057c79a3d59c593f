//! Enforcement: the pure [`decide`] (policy × container × who we are → what to do) and the
//! [`Enforcer`] that applies it to every change the informer reports, on every policy
//! reload, and at once on `start` when the verdict was already made at `create`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{
    KillContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use common::container::{Container, State};
use common::informer::Notice;
use common::policy::{Action, Mode, Policy, Verdict};
use common::reload::{Loaded, PolicyHandle};
use common::store::Store;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;

/// How many container names the "keeps coming back" report remembers.
const MAX_TRACKED_NAMES: usize = 10_000;

pub use common::docker::Identity;

/// What to do about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Exited, dead or being removed: nothing to enforce.
    NotLive,
    /// dockwarden's own container, or one running its image: never touched.
    Spare,
    Allow(Verdict),
    Deny {
        verdict: Verdict,
        /// What to do now; `None` while the container is only created and the action
        /// (kill, stop) needs a running process: it is done at `start`.
        act: Option<Action>,
        /// Audit mode: log and count, touch nothing.
        audit: bool,
    },
}

/// Decides, without I/O, what the policy means for `c`.
pub fn decide(policy: &Policy, c: &Container, me: &Identity) -> Decision {
    if !c.state.is_live() {
        return Decision::NotLive;
    }
    if me.is_self(c) {
        return Decision::Spare;
    }
    let verdict = policy.evaluate(c);
    if verdict.allowed {
        return Decision::Allow(verdict);
    }
    let act = match (policy.action, c.state) {
        (Action::Remove, _) => Some(Action::Remove),
        (action, State::Running | State::Paused | State::Restarting) => Some(action),
        _ => None, // created: kill and stop need a process; act at start
    };
    Decision::Deny {
        verdict,
        act,
        audit: policy.mode == Mode::Audit,
    }
}

/// Applies decisions. Owns the decision cache; actions run in spawned tasks so a slow
/// engine call never delays the next decision.
pub struct Enforcer {
    store: Store,
    docker: watch::Receiver<Option<Docker>>,
    policy: PolicyHandle,
    me: Identity,
    metrics: Arc<Metrics>,
    /// Last decision per container, with the policy generation it was made under: the
    /// fast path at `start` acts on it without waiting for an inspect.
    cached: HashMap<String, Cached>,
    /// Containers with an action under way: never two actions on one container at once.
    inflight: Arc<Mutex<HashSet<String>>>,
    /// Engine time of the last start-like event per container: decision latency is
    /// measured from it.
    started_at: HashMap<String, i64>,
    /// Actions taken per container name: a name that keeps coming back is reported.
    actions_by_name: HashMap<String, u32>,
    /// What was last logged per container, so updates that change nothing (health
    /// checks, repeated inspects) do not repeat the decision line.
    logged: HashMap<String, String>,
    /// What each image reference (as given to `docker run`) resolved to at its last
    /// inspect. With it a container is judged from its create or start event alone, no
    /// API call in between. Cleared on every image event (tag, untag, pull, load...).
    images: HashMap<String, ImageOf>,
}

/// An image reference's resolution, as the last inspect saw it.
#[derive(Debug, Clone)]
struct ImageOf {
    id: String,
    tags: Vec<String>,
    digests: Vec<String>,
}

/// How many image references the enforcer remembers.
const MAX_TRACKED_IMAGES: usize = 10_000;

struct Cached {
    generation: u64,
    decision: Decision,
    container: Arc<Container>,
}

impl Enforcer {
    pub fn new(
        store: Store,
        docker: watch::Receiver<Option<Docker>>,
        policy: PolicyHandle,
        me: Identity,
        metrics: Arc<Metrics>,
    ) -> Self {
        Enforcer {
            store,
            docker,
            policy,
            me,
            metrics,
            cached: HashMap::new(),
            inflight: Arc::default(),
            started_at: HashMap::new(),
            actions_by_name: HashMap::new(),
            logged: HashMap::new(),
            images: HashMap::new(),
        }
    }

    /// Runs until the notice channel closes (the informer is gone).
    pub async fn run(mut self, mut notices: mpsc::UnboundedReceiver<Notice>) -> anyhow::Result<()> {
        let mut policy_rx = self.policy.subscribe();
        policy_rx.mark_unchanged();
        loop {
            tokio::select! {
                n = notices.recv() => match n {
                    Some(n) => self.on_notice(n),
                    None => anyhow::bail!("the informer stopped sending changes"),
                },
                changed = policy_rx.changed() => {
                    if changed.is_err() {
                        anyhow::bail!("the policy reloader stopped");
                    }
                    let loaded = policy_rx.borrow_and_update().clone();
                    self.on_policy(&loaded);
                }
            }
        }
    }

    fn on_notice(&mut self, n: Notice) {
        match n {
            Notice::Observed {
                id,
                action,
                time_nano,
                attributes,
            } => {
                let state = match action.as_str() {
                    "create" => State::Created,
                    "start" | "restart" | "unpause" => State::Running,
                    "rename" => {
                        // A decision made on the old name is void; the inspect that
                        // follows judges the new one.
                        self.cached.remove(&id);
                        return;
                    }
                    _ => return,
                };
                self.started_at.insert(id.clone(), time_nano);
                let name = attributes.get("name").map(String::as_str);
                if state == State::Running && self.fast_path(&id, name) {
                    return;
                }
                if let Some(c) = self.judge_from_event(&id, state, attributes) {
                    let trigger = if state == State::Created {
                        "create event"
                    } else {
                        "start event"
                    };
                    self.consider(Arc::new(c), trigger);
                }
            }
            Notice::ImageChanged => self.images.clear(),
            Notice::Updated(c) => {
                if self.images.len() >= MAX_TRACKED_IMAGES {
                    self.images.clear();
                }
                let of = ImageOf {
                    id: c.image_id.clone(),
                    tags: c.image_tags.clone(),
                    digests: c.image_digests.clone(),
                };
                self.images.insert(c.image.clone(), of);
                self.consider(c, "inspect");
            }
            Notice::Removed(id) => {
                self.cached.remove(&id);
                self.started_at.remove(&id);
                self.logged.remove(&id);
            }
            Notice::Synced { containers, initial } => self.log_state_list(containers, initial),
            Notice::Disconnected { reason } => {
                tracing::warn!(%reason, "lost the Docker event stream; enforcement resumes after the re-list");
            }
        }
    }

    /// A (re)start of a container already judged at `create`: act now, without waiting
    /// for the inspect that follows. Returns whether a decision was cached.
    /// `name` is the container's name as the start event reports it: a decision made on
    /// another name (a rename since, whose own event may not have been seen yet) is not used.
    fn fast_path(&mut self, id: &str, name: Option<&str>) -> bool {
        let generation = self.policy.current().generation;
        let Some(cached) = self.cached.get(id) else {
            return false;
        };
        if cached.generation != generation || name != Some(cached.container.name.as_str()) {
            return false;
        }
        if let Decision::Deny {
            verdict,
            audit: false,
            ..
        } = &cached.decision
            && let Some(action) = self.policy_action()
        {
            let (c, v) = (cached.container.clone(), verdict.clone());
            self.act(c, v, action, "start event");
        }
        true
    }

    /// Rebuilds a container from an event's attributes (name, image reference, labels)
    /// and the image reference's last known resolution, when that is exact: the image was
    /// seen before and no rule uses the label keys the attributes hide. Otherwise `None`,
    /// and the inspect that follows decides.
    fn judge_from_event(
        &self,
        id: &str,
        state: State,
        mut attributes: HashMap<String, String>,
    ) -> Option<Container> {
        let loaded = self.policy.current();
        if loaded.policy.uses_label_key("name") || loaded.policy.uses_label_key("image") {
            return None;
        }
        let name = attributes.remove("name")?;
        // Not labels: `oldName` on rename events (never judged from, but be exact).
        attributes.remove("oldName");
        let image = attributes.remove("image")?;
        let of = self.images.get(&image)?;
        Some(Container {
            id: id.to_string(),
            name,
            image_id: of.id.clone(),
            image_tags: of.tags.clone(),
            image_digests: of.digests.clone(),
            image,
            state,
            labels: attributes.into_iter().collect(),
            ..Default::default()
        })
    }

    fn policy_action(&self) -> Option<Action> {
        let p = self.policy.current();
        (p.policy.mode == Mode::Enforce).then_some(p.policy.action)
    }

    fn consider(&mut self, c: Arc<Container>, trigger: &'static str) {
        let loaded = self.policy.current();
        let decision = decide(&loaded.policy, &c, &self.me);
        self.apply(&loaded, c, decision, trigger);
    }

    /// `trigger` names what prompted the decision, for the action's log line.
    fn apply(&mut self, loaded: &Loaded, c: Arc<Container>, decision: Decision, trigger: &'static str) {
        // Allow and spare are logged once per policy generation; a denial again whenever
        // the container's state changes (pending at create, acted on at start).
        let key = match &decision {
            Decision::Deny { .. } => format!("{}|{}|{:?}", loaded.generation, c.state, decision),
            _ => format!("{}|{:?}", loaded.generation, decision),
        };
        let first = self.logged.get(&c.id) != Some(&key);
        match &decision {
            Decision::NotLive => {}
            Decision::Spare => {
                if first {
                    self.metrics.spared.inc();
                    tracing::info!(container = %c.name, id = %c.short_id(), image = %c.image, verdict = "spare",
                        reason = "dockwarden's own image: never acted on, whatever the policy says", "decision");
                }
            }
            Decision::Allow(v) => {
                if first {
                    self.metrics.decision("allow");
                    tracing::info!(container = %c.name, id = %c.short_id(), image = %c.image, state = %c.state,
                        verdict = "allow", rule = %v.reason, "decision");
                }
            }
            Decision::Deny { verdict, act, audit } => {
                let action = loaded.policy.action;
                if first {
                    self.metrics.decision("deny");
                }
                match (act, audit) {
                    // Audit counts and logs exactly what enforce mode would do, once.
                    (Some(_), true) => {
                        if first {
                            self.metrics.action(action.as_str(), "audit");
                            tracing::warn!(container = %c.name, id = %c.short_id(), image = %c.image, state = %c.state,
                                verdict = "deny", reason = %verdict.reason, action = action.as_str(),
                                result = "not done (audit mode)", "decision");
                        }
                    }
                    (None, _) => {
                        if first {
                            tracing::info!(container = %c.name, id = %c.short_id(), image = %c.image, state = %c.state,
                                verdict = "deny", reason = %verdict.reason, action = action.as_str(),
                                result = if *audit { "pending (audit mode): would act when it starts" } else { "pending: acts the moment it starts" },
                                "decision");
                        }
                    }
                    (Some(a), false) => self.act(c.clone(), verdict.clone(), *a, trigger),
                }
            }
        }
        self.logged.insert(c.id.clone(), key);
        self.cached.insert(
            c.id.clone(),
            Cached {
                generation: loaded.generation,
                decision,
                container: c,
            },
        );
    }

    /// A new policy: judge every container in the picture again.
    fn on_policy(&mut self, loaded: &Arc<Loaded>) {
        let (mut allowed, mut denied) = (0, 0);
        for c in self.store.list() {
            let d = decide(&loaded.policy, &c, &self.me);
            match &d {
                Decision::Allow(_) => allowed += 1,
                Decision::Deny { .. } => denied += 1,
                _ => {}
            }
            self.apply(loaded, c, d, "new policy");
        }
        tracing::info!(
            generation = loaded.generation,
            mode = loaded.policy.mode.as_str(),
            action = loaded.policy.action.as_str(),
            allowed,
            denied,
            "new policy applied to every live container"
        );
    }

    /// Starts `action` on `c` unless one is already under way.
    /// `trigger` says what prompted it, for the log: the start event (fast path, decided at
    /// create) or an inspect (any change, a re-list, a new policy).
    fn act(&mut self, c: Arc<Container>, verdict: Verdict, action: Action, trigger: &'static str) {
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if !inflight.insert(c.id.clone()) {
                return;
            }
        }
        let Some(docker) = self.docker.borrow().clone() else {
            self.inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c.id);
            return;
        };
        if self.actions_by_name.len() >= MAX_TRACKED_NAMES && !self.actions_by_name.contains_key(&c.name) {
            // Endless unique names must not grow memory without bound; forgetting only
            // weakens the "keeps coming back" report.
            self.actions_by_name.clear();
        }
        let count = self.actions_by_name.entry(c.name.clone()).or_default();
        *count += 1;
        let comebacks = *count - 1;
        let event_nano = self.started_at.get(&c.id).copied();
        let stop_timeout = self.policy.current().policy.stop_timeout;
        let inflight = self.inflight.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let result = perform(&docker, &c.id, action, stop_timeout).await;
            inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&c.id);
            let took_ms = t0.elapsed().as_secs_f64() * 1000.0;
            // From the engine's own event time when we have it: the time the container ran.
            let latency_ms = event_nano
                .map(|t| (now_nano() - t) as f64 / 1e6)
                .unwrap_or(took_ms);
            match result {
                Ok(Outcome::Done) => {
                    metrics.action(action.as_str(), "ok");
                    metrics.latency.observe(latency_ms / 1000.0);
                    if comebacks > 0 {
                        metrics.recurring.inc();
                    }
                    tracing::warn!(container = %c.name, id = %c.short_id(), image = %c.image, trigger,
                        verdict = "deny", reason = %verdict.reason, action = action.as_str(), result = "ok",
                        latency_ms = format!("{latency_ms:.1}"), call_ms = format!("{took_ms:.1}"), "decision");
                    if comebacks > 0 {
                        tracing::warn!(container = %c.name, times = comebacks + 1,
                            "a denied container with this name keeps coming back (restart policy, orchestrator, or a person)");
                    }
                }
                Ok(Outcome::AlreadyGone) => {
                    tracing::debug!(container = %c.name, action = action.as_str(), "already stopped or gone");
                }
                Err(e) => {
                    metrics.action(action.as_str(), "error");
                    tracing::error!(container = %c.name, id = %c.short_id(), image = %c.image, verdict = "deny",
                        action = action.as_str(), result = "error", error = %e, "decision");
                }
            }
        });
    }

    fn log_state_list(&self, listed: usize, initial: bool) {
        let loaded = self.policy.current();
        let all = self.store.list();
        let live: Vec<_> = all.iter().filter(|c| c.state.is_live()).collect();
        tracing::info!(
            containers = listed,
            live = live.len(),
            policy_generation = loaded.generation,
            mode = loaded.policy.mode.as_str(),
            initial,
            "state list synced with Docker"
        );
        for c in live {
            let verdict = match decide(&loaded.policy, c, &self.me) {
                Decision::Spare => "spare".to_string(),
                Decision::Allow(v) => format!("allow: {}", v.reason),
                Decision::Deny { verdict, .. } => format!("deny: {}", verdict.reason),
                Decision::NotLive => continue,
            };
            tracing::info!(container = %c.name, id = %c.short_id(), image = %c.image, state = %c.state, %verdict, "state");
        }
    }
}

/// The result of an action on the engine.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// 404 (gone) or 409 (not running / removal in progress): the goal already holds.
    AlreadyGone,
}

/// Performs one action through the engine.
pub async fn perform(
    docker: &Docker,
    id: &str,
    action: Action,
    stop_timeout: Duration,
) -> Result<Outcome, bollard::errors::Error> {
    let result = match action {
        Action::Kill => {
            let opts = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
            docker.kill_container(id, Some(opts)).await
        }
        Action::Stop => {
            let secs = i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX);
            let opts = StopContainerOptionsBuilder::default().t(secs).build();
            // The engine answers only once the container is down: wait longer than it may take.
            let d = docker
                .clone()
                .with_timeout(stop_timeout + Duration::from_secs(30));
            d.stop_container(id, Some(opts)).await
        }
        Action::Remove => {
            let opts = RemoveContainerOptionsBuilder::default().force(true).build();
            docker.remove_container(id, Some(opts)).await
        }
    };
    match result {
        Ok(()) => Ok(Outcome::Done),
        Err(e) if matches!(common::docker::status_code(&e), Some(404 | 409)) => Ok(Outcome::AlreadyGone),
        Err(e) => Err(e),
    }
}

fn now_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, state: State) -> Container {
        Container {
            id: format!("id-{name}"),
            name: name.into(),
            image: "busybox:1".into(),
            image_id: "sha256:img".into(),
            state,
            ..Default::default()
        }
    }

    fn policy(head: &str) -> Policy {
        Policy::parse(&format!("{head}\n[[allow]]\nname = \"ok-*\"\n"), "t").unwrap()
    }

    #[test]
    fn allowed_containers_are_never_acted_on() {
        let p = policy("");
        for s in [State::Created, State::Running, State::Paused, State::Restarting] {
            assert!(matches!(
                decide(&p, &container("ok-1", s), &Identity::default()),
                Decision::Allow(_)
            ));
        }
    }

    #[test]
    fn kill_and_stop_wait_for_start_remove_acts_at_create() {
        let me = Identity::default();
        let d = decide(&policy("action = \"kill\""), &container("x", State::Created), &me);
        assert!(
            matches!(
                d,
                Decision::Deny {
                    act: None,
                    audit: false,
                    ..
                }
            ),
            "{d:?}"
        );
        let d = decide(&policy("action = \"stop\""), &container("x", State::Running), &me);
        assert!(
            matches!(
                d,
                Decision::Deny {
                    act: Some(Action::Stop),
                    ..
                }
            ),
            "{d:?}"
        );
        let d = decide(
            &policy("action = \"remove\""),
            &container("x", State::Created),
            &me,
        );
        assert!(
            matches!(
                d,
                Decision::Deny {
                    act: Some(Action::Remove),
                    ..
                }
            ),
            "{d:?}"
        );
        let d = decide(&policy(""), &container("x", State::Paused), &me);
        assert!(
            matches!(
                d,
                Decision::Deny {
                    act: Some(Action::Kill),
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn exited_containers_are_left_alone() {
        for s in [State::Exited, State::Dead, State::Removing] {
            assert_eq!(
                decide(&policy(""), &container("x", s), &Identity::default()),
                Decision::NotLive
            );
        }
    }

    #[test]
    fn audit_mode_marks_denials_as_audit() {
        let d = decide(
            &policy("mode = \"audit\""),
            &container("x", State::Running),
            &Identity::default(),
        );
        assert!(
            matches!(
                d,
                Decision::Deny {
                    audit: true,
                    act: Some(Action::Kill),
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn own_container_and_image_are_spared_whatever_the_policy() {
        let c = container("x", State::Running);
        let by_image = Identity {
            container_id: None,
            image_id: Some("sha256:img".into()),
        };
        assert_eq!(decide(&policy(""), &c, &by_image), Decision::Spare);
        let by_id = Identity {
            container_id: Some("id-x".into()),
            image_id: None,
        };
        assert_eq!(decide(&policy(""), &c, &by_id), Decision::Spare);
    }
}
