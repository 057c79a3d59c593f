//! The enforcer as a state machine without I/O: notices from the informer, policy changes
//! and action results go in; [`Command`]s (act, log, inspect again, retry later) come out.
//! The decision itself is [`common::decision::decide`]; this module only remembers, per
//! container, what was decided under which policy generation, what is in flight, what was
//! logged and what triggered it. [`crate::executor`] runs the commands against the engine.
//!
//! - A denied container is acted on as soon as a decision is possible: at `create` for
//!   `remove`, at `start` for `kill` and `stop` (from the decision made at `create`, when the
//!   name has not changed since), else when the inspect after the event comes in.
//! - A decision from an event alone is made only when full facts could not change it
//!   ([`Decision::Undecided`] otherwise): nothing is cached about images.
//! - A failed action is retried with backoff while the container is live and denied.
//! - Every record is dropped when the informer reports the container removed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::decision::{Decision, Identity, Plan, decide};
use common::engine::container::{Container, State};
use common::engine::event::Action as EventAction;
use common::informer::Notice;
use common::policy::Action;
use common::reload::Loaded;

/// How many container names the "keeps coming back" report remembers.
const MAX_TRACKED_NAMES: usize = 10_000;
/// Longest wait between retries of a failed action.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What the executor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run `action` on the container and report back with [`Enforcer::on_result`].
    Act(Act),
    /// Write a decision line (and keep it for `/decisions` when it acted or would have).
    Log(Line),
    /// Ask the informer to inspect the container again: the facts at hand (a bounded copy)
    /// cannot settle the policy.
    Refresh(String),
    /// Call [`Enforcer::on_retry`] for the container after `after`.
    Retry { id: String, after: Duration },
}

/// One action to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub id: String,
    pub action: Action,
    pub stop_timeout: Duration,
    /// What the decision line will say.
    pub line: Line,
    /// Earlier actions on a container of this name: it keeps coming back.
    pub comebacks: u32,
    pub attempt: u32,
}

/// What a decision line says. `kind` decides the level and the `result`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub container: String,
    pub id: String,
    pub image: String,
    pub state: State,
    pub kind: LineKind,
    /// The rule that allows it, or why it is denied or spared.
    pub reason: String,
    pub rule: Option<usize>,
    /// What prompted the decision: `create event`, `start event`, `inspect`, `new policy`,
    /// `retry`.
    pub trigger: &'static str,
    /// When that happened (engine or wall clock, ns since the epoch): latency is measured
    /// from it.
    pub trigger_nano: i64,
    pub action: Option<Action>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    Allow,
    Spare,
    /// Denied, acted on at start (`audit`: would be).
    Pending {
        audit: bool,
    },
    /// Denied in audit mode: would act now.
    Audit,
    /// Denied, not live: nothing to do.
    NotLive,
    /// Denied and acted on: the result.
    Done {
        call_ms: f64,
    },
    AlreadyGone,
    Failed {
        error: String,
        retry_in: Duration,
    },
}

impl Line {
    pub fn verdict(&self) -> &'static str {
        match self.kind {
            LineKind::Allow => "allow",
            LineKind::Spare => "spare",
            _ => "deny",
        }
    }
}

/// The result of an action on the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        call_ms: f64,
    },
    /// 404 (gone) or 409 (not running, removal in progress): the goal already holds.
    AlreadyGone,
    Failed(String),
}

/// Counters the state machine keeps; the metrics read them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub allow: u64,
    pub deny: u64,
    pub spare: u64,
    /// Denied because their metadata could not be read.
    pub unjudgeable: u64,
    /// Would-be actions in audit mode, by action.
    pub audit: HashMap<&'static str, u64>,
    pub retries: u64,
}

/// What the enforcer remembers about one container.
#[derive(Debug, Default)]
struct Record {
    name: String,
    /// The last decision, the generation it was made under, and the name it was made on:
    /// the start fast path acts on it without waiting for an inspect.
    decided: Option<(u64, Decision, String)>,
    /// What was last logged, so updates that change nothing are not logged again.
    logged: Option<String>,
    inflight: bool,
    attempt: u32,
    /// The last event seen and its engine time, until a decision consumed it.
    event: Option<(&'static str, i64)>,
}

pub struct Enforcer {
    me: Identity,
    records: HashMap<String, Record>,
    /// Actions per workload (a container name, or the pod container, Swarm slot or compose
    /// service it belongs to): one that keeps coming back is reported.
    acted_names: HashMap<String, u32>,
    pub tally: Tally,
}

impl Enforcer {
    pub fn new(me: Identity) -> Self {
        Enforcer {
            me,
            records: HashMap::new(),
            acted_names: HashMap::new(),
            tally: Tally::default(),
        }
    }

    /// Containers the enforcer holds a record for (the leak check watches it).
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// A change the informer saw. `now_nano` is the wall clock, for triggers without an
    /// engine time.
    pub fn on_notice(&mut self, n: Notice, loaded: &Loaded, now_nano: i64) -> Vec<Command> {
        let mut out = Vec::new();
        match n {
            Notice::Event {
                id,
                action,
                time_nano,
                container,
            } => self.on_event(&id, &action, time_nano, container.map(|c| *c), loaded, &mut out),
            Notice::Updated(c) => {
                let (trigger, at) = self
                    .records
                    .get_mut(&c.id)
                    .and_then(|r| r.event.take())
                    .map_or(("inspect", now_nano), |(what, t)| (what, t));
                let trigger = if trigger == "inspect" {
                    trigger
                } else {
                    after_event(trigger)
                };
                self.consider(&c, loaded, trigger, at, &mut out);
            }
            Notice::Removed(id) => {
                self.records.remove(&id);
            }
            Notice::ImageChanged | Notice::Synced { .. } | Notice::Disconnected { .. } => {}
        }
        out
    }

    fn on_event(
        &mut self,
        id: &str,
        action: &EventAction,
        time_nano: i64,
        from_event: Option<Container>,
        loaded: &Loaded,
        out: &mut Vec<Command>,
    ) {
        let trigger = match action {
            EventAction::Create => "create event",
            EventAction::Start => "start event",
            EventAction::Restart => "restart event",
            EventAction::Unpause => "unpause event",
            EventAction::Rename { .. } => {
                // A decision made on the old name is void; the inspect that follows judges
                // the new one.
                if let Some(r) = self.records.get_mut(id) {
                    r.decided = None;
                    r.event = Some(("rename event", time_nano));
                }
                return;
            }
            _ => return,
        };
        let record = self.records.entry(id.to_string()).or_default();
        record.event = Some((trigger, time_nano));
        let Some(c) = from_event else { return };
        // The fast path: a (re)start of a container denied at create under this policy,
        // with the name it has now: act without deciding again.
        if c.state == State::Running
            && let Some((generation, decision, name)) = &record.decided
            && *generation == loaded.generation
            && *name == c.name
            && let Decision::Deny {
                verdict,
                plan: Plan::AtStart(a) | Plan::Now(a),
                audit: false,
                ..
            } = decision
        {
            let line = Line {
                container: c.name.clone(),
                id: id.to_string(),
                image: c.image.clone(),
                state: State::Running,
                kind: LineKind::Pending { audit: false },
                reason: verdict.reason.clone(),
                rule: None,
                trigger,
                trigger_nano: time_nano,
                action: Some(*a),
            };
            let a = *a;
            record.event = None;
            let workload = common::identity::workload_key(&c.name, &c.labels);
            self.act(id, a, line, workload, loaded, out);
            return;
        }
        self.consider(&c, loaded, trigger, time_nano, out);
    }

    /// A new policy: judge every container in the picture again. `containers` are the
    /// store's (bounded) copies; those it cannot settle are inspected again.
    pub fn on_policy(&mut self, loaded: &Loaded, containers: &[Arc<Container>]) -> Vec<Command> {
        let mut out = Vec::new();
        let at = loaded
            .since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        for c in containers {
            self.consider(c, loaded, "new policy", at, &mut out);
        }
        out
    }

    /// The result of an [`Act`].
    pub fn on_result(&mut self, act: &Act, outcome: Outcome) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(record) = self.records.get_mut(&act.id) else {
            // Removed meanwhile: report, nothing to retry.
            out.push(Command::Log(finish(&act.line, outcome, Duration::ZERO)));
            return out;
        };
        record.inflight = false;
        match outcome {
            Outcome::Failed(e) => {
                record.attempt = act.attempt + 1;
                let retry_in = retry_delay(act.attempt);
                out.push(Command::Log(finish(&act.line, Outcome::Failed(e), retry_in)));
                out.push(Command::Retry {
                    id: act.id.clone(),
                    after: retry_in,
                });
            }
            other => {
                record.attempt = 0;
                out.push(Command::Log(finish(&act.line, other, Duration::ZERO)));
            }
        }
        out
    }

    /// A retry is due: act again if the container is still live and denied. `c` is the
    /// store's copy (None when gone).
    pub fn on_retry(
        &mut self,
        id: &str,
        c: Option<Arc<Container>>,
        loaded: &Loaded,
        now_nano: i64,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let (Some(c), Some(record)) = (c, self.records.get_mut(id)) else {
            return out;
        };
        if record.inflight {
            return out;
        }
        self.tally.retries += 1;
        // Log again even if the line would repeat: this is a new attempt.
        record.logged = None;
        self.consider(&c, loaded, "retry", now_nano, &mut out);
        out
    }

    fn consider(
        &mut self,
        c: &Container,
        loaded: &Loaded,
        trigger: &'static str,
        at: i64,
        out: &mut Vec<Command>,
    ) {
        let decision = decide(&loaded.policy, c, &self.me);
        let record = self.records.entry(c.id.clone()).or_default();
        record.name = c.name.clone();
        let line = |kind, reason: String, rule, action| Line {
            container: c.name.clone(),
            id: c.id.clone(),
            image: c.image.clone(),
            state: c.state,
            kind,
            reason,
            rule,
            trigger,
            trigger_nano: at,
            action,
        };
        // Allow and spare are logged once per policy generation; a denial again whenever
        // its plan changes (pending at create, acted on at start).
        let key = match &decision {
            Decision::Deny { plan, audit, .. } => format!("{}|deny|{plan:?}|{audit}", loaded.generation),
            d => format!("{}|{}", loaded.generation, d.verdict_name()),
        };
        let first = record.logged.as_deref() != Some(key.as_str());
        match &decision {
            Decision::Undecided(missing) => {
                if c.source == common::engine::container::Source::Inspect {
                    tracing::debug!(container = %c.name, missing, "a stored copy cannot settle the policy; inspecting again");
                    out.push(Command::Refresh(c.id.clone()));
                }
                return;
            }
            Decision::Spare(s) => {
                if first {
                    self.tally.spare += 1;
                    out.push(Command::Log(line(
                        LineKind::Spare,
                        s.reason().to_string(),
                        None,
                        None,
                    )));
                }
            }
            Decision::Allow(v) => {
                if first {
                    self.tally.allow += 1;
                    out.push(Command::Log(line(
                        LineKind::Allow,
                        v.reason.clone(),
                        v.rule,
                        None,
                    )));
                }
            }
            Decision::Deny {
                verdict,
                unjudgeable,
                plan,
                audit,
            } => {
                if first {
                    self.tally.deny += 1;
                    if unjudgeable.is_some() {
                        self.tally.unjudgeable += 1;
                    }
                }
                let reason = verdict.reason.clone();
                match (plan, audit) {
                    // Not live: nothing to do, and no line per exited container.
                    (Plan::Nothing, _) => {}
                    (Plan::AtStart(a), audit) => {
                        if first {
                            out.push(Command::Log(line(
                                LineKind::Pending { audit: *audit },
                                reason,
                                None,
                                Some(*a),
                            )));
                        }
                    }
                    (Plan::Now(a), true) => {
                        if first {
                            *self.tally.audit.entry(a.as_str()).or_default() += 1;
                            out.push(Command::Log(line(LineKind::Audit, reason, None, Some(*a))));
                        }
                    }
                    (Plan::Now(a), false) => {
                        let l = line(LineKind::Pending { audit: false }, reason, None, Some(*a));
                        let record = self.records.entry(c.id.clone()).or_default();
                        record.logged = Some(key.clone());
                        record.decided = Some((loaded.generation, decision.clone(), c.name.clone()));
                        let workload = common::identity::workload_key(&c.name, &c.labels);
                        self.act(&c.id, *a, l, workload, loaded, out);
                        return;
                    }
                }
            }
        }
        let record = self.records.entry(c.id.clone()).or_default();
        record.logged = Some(key);
        record.decided = Some((loaded.generation, decision, c.name.clone()));
    }

    /// Starts `action` on the container unless one is already under way. `workload` names
    /// what an orchestrator re-creates under new names ([`common::identity::workload_key`]):
    /// actions on it again are comebacks.
    fn act(
        &mut self,
        id: &str,
        action: Action,
        line: Line,
        workload: String,
        loaded: &Loaded,
        out: &mut Vec<Command>,
    ) {
        let record = self.records.entry(id.to_string()).or_default();
        if record.inflight {
            return;
        }
        record.inflight = true;
        let attempt = record.attempt.max(1);
        if self.acted_names.len() >= MAX_TRACKED_NAMES && !self.acted_names.contains_key(&workload) {
            // Endless unique names must not grow memory without bound; forgetting only
            // weakens the "keeps coming back" report.
            self.acted_names.clear();
        }
        let count = self.acted_names.entry(workload).or_default();
        let comebacks = if attempt == 1 {
            *count += 1;
            *count - 1
        } else {
            0
        };
        out.push(Command::Act(Act {
            id: id.to_string(),
            action,
            stop_timeout: loaded.policy.stop_timeout,
            line,
            comebacks,
            attempt,
        }));
    }
}

/// `start event` → `inspect after start event`: the inspect decided, the event is the clock.
fn after_event(trigger: &'static str) -> &'static str {
    match trigger {
        "create event" => "inspect after create event",
        "start event" => "inspect after start event",
        "restart event" => "inspect after restart event",
        "unpause event" => "inspect after unpause event",
        "rename event" => "inspect after rename event",
        _ => "inspect",
    }
}

fn retry_delay(attempt: u32) -> Duration {
    let d = Duration::from_millis(250).saturating_mul(1 << attempt.min(10).saturating_sub(1));
    d.min(MAX_RETRY_DELAY)
}

/// The decision line for an action's outcome.
fn finish(line: &Line, outcome: Outcome, retry_in: Duration) -> Line {
    let kind = match outcome {
        Outcome::Done { call_ms } => LineKind::Done { call_ms },
        Outcome::AlreadyGone => LineKind::AlreadyGone,
        Outcome::Failed(error) => LineKind::Failed { error, retry_in },
    };
    Line { kind, ..line.clone() }
}

#[cfg(test)]
mod tests;
