//! The enforcer as a state machine without I/O: notices from the informer, policy changes,
//! action results and the clock go in; [`Command`]s (act, log, inspect again) and its next
//! deadline ([`Enforcer::poll_timeout`]) come out. The decision itself is
//! [`common::decision::decide`]; this module only remembers, per container, what was decided
//! under which policy generation, which run of it was acted on, what is in flight, what was
//! logged and what triggered it. [`crate::executor`] runs the commands against the engine.
//!
//! - A denied container is acted on as soon as a decision is possible: at `create` for
//!   `remove`, at `start` for `kill` and `stop` (from the decision made at `create`, when the
//!   name has not changed since), else when the inspect after the event comes in.
//! - A decision from an event alone is made only when full facts could not change it
//!   ([`Decision::Undecided`] otherwise): nothing is cached about images.
//! - One run of a container is acted on once: an inspect of the run already acted on (it
//!   started no later than the start that was acted on) neither acts again nor counts as a
//!   comeback. A new run (a restart policy, a person) is acted on again, and is one.
//! - A failed action is retried with backoff while the container is live and denied; the
//!   retry is a deadline of this machine, not a timer somewhere else.
//! - Each container counts once per policy generation in the tally, with its first settled
//!   verdict.
//! - Every record is dropped when the informer reports the container removed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::decision::{
    Decision, Denied, EventKind, Identity, NoSignatures, Plan, Signatures, Trigger, Verdict, Why,
    decide_with, signatures_to_verify,
};
use common::engine::container::{Container, Source, State};
use common::engine::event::Action as EventAction;
use common::informer::Notice;
use common::policy::Action;
use common::policy::Missing;
use common::provenance::KeySet;
use common::reload::Loaded;

/// How many container names the "keeps coming back" report remembers.
const MAX_TRACKED_NAMES: usize = 10_000;
/// First and longest wait between tries of a failed action.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(30);

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
    /// Verify the signature of the container's image by these key sets (bounded by the
    /// verifier's timeout), then call [`Enforcer::on_verified`].
    Verify(Verify),
}

/// A signature verification to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verify {
    pub id: String,
    /// The image as the container names it, and its repo digests.
    pub image: String,
    pub digests: Vec<String>,
    pub keys: Vec<KeySet>,
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

/// What a decision line says: the typed decision, what came of it, and what prompted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub container: String,
    pub id: String,
    pub image: String,
    pub state: State,
    pub decision: Decision,
    pub kind: LineKind,
    pub trigger: Trigger,
    /// When that happened (engine or wall clock, ns since the epoch): latency is measured
    /// from it.
    pub trigger_nano: i64,
    pub action: Option<Action>,
}

/// What a line reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    /// Allowed or spared: the verdict alone.
    Judged,
    /// Denied, acted on at start (`audit`: would be), or acting now.
    Pending {
        audit: bool,
    },
    /// Denied in audit mode: would act now.
    Audit,
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
    /// Containers judged, by verdict: once per container and policy generation.
    pub allow: u64,
    pub deny: u64,
    pub spare: u64,
    /// Denied because their metadata could not be read (counted like the above).
    pub unjudgeable: u64,
    /// Would-be actions in audit mode, by action.
    pub audit: HashMap<&'static str, u64>,
    pub retries: u64,
}

/// What a logged line was about: the same again is not logged again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Logged {
    generation: u64,
    verdict: Verdict,
    /// For denials: logged again whenever the plan changes (pending at create, acted on at
    /// start).
    plan: Option<Plan>,
    audit: bool,
}

impl Logged {
    fn of(generation: u64, d: &Decision) -> Logged {
        let (plan, audit) = match d {
            Decision::Deny(Denied { plan, audit, .. }) => (Some(*plan), *audit),
            _ => (None, false),
        };
        Logged {
            generation,
            verdict: d.verdict(),
            plan,
            audit,
        }
    }
}

/// A decision, the generation it was made under and the name it was made on: the start
/// fast path acts on it without waiting for an inspect.
#[derive(Debug)]
struct Decided {
    generation: u64,
    decision: Decision,
    name: String,
}

/// What the enforcer remembers about one container.
#[derive(Debug, Default)]
struct Record {
    decided: Option<Decided>,
    logged: Option<Logged>,
    /// The policy generation this container was last counted under.
    counted: Option<u64>,
    inflight: bool,
    attempt: u32,
    /// When the failed action is tried again.
    retry_at: Option<Instant>,
    /// The start (ns since the epoch) of the run acted on: an inspect of that run (or an
    /// earlier one) does not act again.
    acted_run: Option<i64>,
    /// The last event seen and its engine time, until a decision consumed it.
    event: Option<(EventKind, i64)>,
    /// A signature verification is under way (its result calls back).
    verifying: bool,
}

pub struct Enforcer {
    me: Identity,
    /// The signature verifier's cache, read by the decision (no I/O).
    sigs: Arc<dyn Signatures + Send + Sync>,
    records: HashMap<String, Record>,
    /// Due retries, in order (a record's `retry_at` says whether an entry is current).
    deadlines: BTreeSet<(Instant, String)>,
    /// Actions per workload (a container name, or the pod container, Swarm slot or compose
    /// service it belongs to): one that keeps coming back is reported.
    acted_names: HashMap<String, u32>,
    pub tally: Tally,
    /// Containers whose latest decision denies them while they are live.
    denied_live: usize,
}

impl Enforcer {
    pub fn new(me: Identity) -> Self {
        Enforcer {
            me,
            sigs: Arc::new(NoSignatures),
            records: HashMap::new(),
            deadlines: BTreeSet::new(),
            acted_names: HashMap::new(),
            tally: Tally::default(),
            denied_live: 0,
        }
    }

    /// Decides with these signature results (the verifier's cache).
    pub fn with_signatures(mut self, sigs: Arc<dyn Signatures + Send + Sync>) -> Self {
        self.sigs = sigs;
        self
    }

    /// Containers the enforcer holds a record for (the leak check watches it).
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// Live containers the policy in force denies, from the latest decision about each
    /// (in enforce mode they are being acted on; in audit mode they run).
    pub fn denied_live(&self) -> usize {
        self.denied_live
    }

    /// Allowed (or spared) and denied live containers, from the latest decisions.
    pub fn verdicts(&self) -> (usize, usize) {
        let allowed = self
            .records
            .values()
            .filter(|r| r.decided.as_ref().is_some_and(|d| d.decision.allowed()))
            .count();
        (allowed, self.denied_live)
    }

    /// Replaces what is remembered as the latest decision about a container, keeping the
    /// denied-live count.
    fn set_decided(&mut self, id: &str, decided: Option<Decided>) {
        let live = |d: &Option<Decided>| d.as_ref().is_some_and(|d| d.decision.denied_live());
        let record = self.records.entry(id.to_string()).or_default();
        let before = live(&record.decided);
        let after = live(&decided);
        record.decided = decided;
        match (before, after) {
            (false, true) => self.denied_live += 1,
            (true, false) => self.denied_live = self.denied_live.saturating_sub(1),
            _ => {}
        }
    }

    /// When [`Enforcer::on_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
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
                    .map_or((Trigger::Inspect, now_nano), |(what, t)| {
                        (Trigger::AfterEvent(what), t)
                    });
                self.consider(&c, loaded, trigger, at, &mut out);
            }
            Notice::Removed(id) => {
                self.set_decided(&id, None);
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
        let kind = match action {
            EventAction::Create => EventKind::Create,
            EventAction::Start => EventKind::Start,
            EventAction::Restart => EventKind::Restart,
            EventAction::Unpause => EventKind::Unpause,
            EventAction::Rename { .. } => {
                // A decision made on the old name is void; the inspect that follows judges
                // the new one.
                if let Some(r) = self.records.get_mut(id) {
                    r.event = Some((EventKind::Rename, time_nano));
                    self.set_decided(id, None);
                }
                return;
            }
            _ => return,
        };
        let trigger = Trigger::Event(kind);
        let record = self.records.entry(id.to_string()).or_default();
        record.event = Some((kind, time_nano));
        let Some(c) = from_event else { return };
        // The fast path: a (re)start of a container denied at create under this policy,
        // with the name it has now: act without deciding again.
        if c.state == State::Running
            && let Some(Decided {
                generation,
                decision,
                name,
            }) = &record.decided
            && *generation == loaded.generation
            && *name == c.name
            && let Decision::Deny(Denied {
                plan: Plan::AtStart(a) | Plan::Now(a),
                audit: false,
                ..
            }) = decision
        {
            let line = Line {
                container: c.name.clone(),
                id: id.to_string(),
                image: c.image.clone(),
                state: State::Running,
                decision: decision.clone(),
                kind: LineKind::Pending { audit: false },
                trigger,
                trigger_nano: time_nano,
                action: Some(*a),
            };
            let a = *a;
            record.event = None;
            // This run is the one acted on: the inspect after this start sees it again.
            record.acted_run = Some(time_nano);
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
            self.consider(c, loaded, Trigger::NewPolicy, at, &mut out);
        }
        out
    }

    /// The result of an [`Act`]. `now` schedules a retry of a failed action.
    pub fn on_result(&mut self, act: &Act, outcome: Outcome, now: Instant) -> Vec<Command> {
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
                // The run was not acted on after all: the retry must act on it.
                record.acted_run = None;
                let retry_in = retry_delay(act.attempt);
                let at = now + retry_in;
                record.retry_at = Some(at);
                self.deadlines.insert((at, act.id.clone()));
                out.push(Command::Log(finish(&act.line, Outcome::Failed(e), retry_in)));
            }
            other => {
                record.attempt = 0;
                out.push(Command::Log(finish(&act.line, other, Duration::ZERO)));
            }
        }
        out
    }

    /// A verification asked by [`Command::Verify`] ended (its result is in the verifier's
    /// cache): decide again on the store's copy (`None`: gone).
    pub fn on_verified(
        &mut self,
        id: &str,
        c: Option<Arc<Container>>,
        loaded: &Loaded,
        now_nano: i64,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(record) = self.records.get_mut(id) else {
            return out;
        };
        record.verifying = false;
        if let Some(c) = c {
            self.consider(&c, loaded, Trigger::Verified, now_nano, &mut out);
        }
        out
    }

    /// The clock moved to `now`: retries that are due act again if their container is still
    /// live and denied. `store` gives the store's copy of a container (None when gone).
    pub fn on_timeout(
        &mut self,
        now: Instant,
        store: impl Fn(&str) -> Option<Arc<Container>>,
        loaded: &Loaded,
        now_nano: i64,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        while let Some((at, id)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id.clone()));
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            if record.retry_at != Some(at) {
                continue; // superseded
            }
            record.retry_at = None;
            let Some(c) = store(&id) else { continue };
            if record.inflight {
                continue;
            }
            self.tally.retries += 1;
            // Log again even if the line would repeat: this is a new attempt.
            record.logged = None;
            self.consider(&c, loaded, Trigger::Retry, now_nano, &mut out);
        }
        out
    }

    fn consider(
        &mut self,
        c: &Container,
        loaded: &Loaded,
        trigger: Trigger,
        at: i64,
        out: &mut Vec<Command>,
    ) {
        let decision = decide_with(&loaded.policy, c, &self.me, self.sigs.as_ref());
        if let Decision::Undecided(missing) = decision {
            if missing == Missing::Signature {
                let record = self.records.entry(c.id.clone()).or_default();
                let keys: Vec<KeySet> = signatures_to_verify(&loaded.policy, c, self.sigs.as_ref())
                    .into_iter()
                    .cloned()
                    .collect();
                if !record.verifying && !keys.is_empty() {
                    record.verifying = true;
                    out.push(Command::Verify(Verify {
                        id: c.id.clone(),
                        image: c.image.clone(),
                        digests: c.image_digests.clone(),
                        keys,
                    }));
                }
            } else if c.source == Source::Inspect {
                tracing::debug!(container = %c.name, missing = missing.as_str(),
                    "a stored copy cannot settle the policy; inspecting again");
                out.push(Command::Refresh(c.id.clone()));
            }
            return;
        }
        let record = self.records.entry(c.id.clone()).or_default();
        if record.counted != Some(loaded.generation) {
            record.counted = Some(loaded.generation);
            match &decision {
                Decision::Spare(_) => self.tally.spare += 1,
                Decision::Allow(_) => self.tally.allow += 1,
                Decision::Deny(d) => {
                    self.tally.deny += 1;
                    if matches!(d.why, Why::Unjudgeable(_)) {
                        self.tally.unjudgeable += 1;
                    }
                }
                Decision::Undecided(_) => {}
            }
        }
        let key = Logged::of(loaded.generation, &decision);
        let first = record.logged != Some(key);
        record.logged = Some(key);
        self.set_decided(
            &c.id,
            Some(Decided {
                generation: loaded.generation,
                decision: decision.clone(),
                name: c.name.clone(),
            }),
        );
        let record = self.records.entry(c.id.clone()).or_default();
        let line = |kind, action| Line {
            container: c.name.clone(),
            id: c.id.clone(),
            image: c.image.clone(),
            state: c.state,
            decision: decision.clone(),
            kind,
            trigger: trigger.clone(),
            trigger_nano: at,
            action,
        };
        let Decision::Deny(Denied { plan, audit, .. }) = &decision else {
            if first {
                out.push(Command::Log(line(LineKind::Judged, None)));
            }
            return;
        };
        match (*plan, *audit) {
            // Not live: nothing to do, and no line per exited container.
            (Plan::Nothing, _) => {}
            (Plan::AtStart(a), audit) => {
                if first {
                    out.push(Command::Log(line(LineKind::Pending { audit }, Some(a))));
                }
            }
            (Plan::Now(a), true) => {
                if first {
                    *self.tally.audit.entry(a.as_str()).or_default() += 1;
                    out.push(Command::Log(line(LineKind::Audit, Some(a))));
                }
            }
            (Plan::Now(a), false) => {
                let run = started_nano(c).or(match trigger {
                    Trigger::Event(_) => Some(at),
                    _ => None,
                });
                if let (Some(acted), Some(run)) = (record.acted_run, run)
                    && run <= acted
                {
                    // This run was acted on already (an inspect that raced the action).
                    return;
                }
                record.acted_run = run;
                let l = line(LineKind::Pending { audit: false }, Some(a));
                let workload = common::identity::workload_key(&c.name, &c.labels);
                self.act(&c.id, a, l, workload, loaded, out);
            }
        }
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

/// When the container's current run started (ns since the epoch), from an inspect.
fn started_nano(c: &Container) -> Option<i64> {
    let t: jiff::Timestamp = c.started_at.as_deref()?.parse().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

/// The wait before try `attempt + 1`: the project's one backoff, without jitter (a single
/// controller retrying one container needs no spreading).
fn retry_delay(attempt: u32) -> Duration {
    Backoff::new(RETRY_FIRST, RETRY_MAX).delay_of(attempt.saturating_sub(1))
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
