//! The edge of the enforcer: runs its [`Command`]s against the engine (actions in spawned
//! tasks, so a slow engine call never delays the next decision), writes the decision lines,
//! keeps the recent ones for `GET /decisions`, and feeds results and due retries back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use common::decision::{Decision, Identity, decide};
use common::engine::Engine;
use common::engine::container::Container;
use common::informer::Refresher;
use common::policy::Action;
use common::reload::Loaded;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::enforcer::{Act, Command, Line, LineKind, Outcome};
use crate::metrics::Metrics;

/// How many decisions `GET /decisions` keeps.
pub const DECISIONS_KEPT: usize = 1_000;

/// What comes back to the enforcer's loop.
#[derive(Debug)]
pub enum Input {
    Result(Box<Act>, Outcome),
    Retry(String),
}

/// One decision that acted or would have acted, as `GET /decisions` serves it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub container: String,
    pub id: String,
    pub image: String,
    pub verdict: &'static str,
    pub rule: Option<usize>,
    pub reason: String,
    pub action: Option<&'static str>,
    /// `ok`, `error: <message>`, `audit` (would have acted), `already gone`.
    pub result: String,
    pub latency_ms: Option<f64>,
    pub trigger: &'static str,
}

/// The last [`DECISIONS_KEPT`] decisions that acted or would have; clone freely.
#[derive(Clone, Default)]
pub struct Decisions(Arc<Mutex<VecDeque<DecisionRecord>>>);

impl Decisions {
    pub(crate) fn push(&self, r: DecisionRecord) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= DECISIONS_KEPT {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// Oldest first; only those whose container name or ID starts with `container`.
    pub fn list(&self, container: Option<&str>) -> Vec<DecisionRecord> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter()
            .filter(|r| container.is_none_or(|c| r.container == c || r.id.starts_with(c)))
            .cloned()
            .collect()
    }
}

pub struct Executor<E: Engine> {
    pub engine: E,
    pub metrics: Arc<Metrics>,
    pub decisions: Decisions,
    pub refresher: Refresher,
    pub inputs: mpsc::UnboundedSender<Input>,
}

impl<E: Engine> Executor<E> {
    pub fn execute(&self, commands: Vec<Command>) {
        for c in commands {
            match c {
                Command::Act(act) => self.act(act),
                Command::Log(line) => self.log(&line),
                Command::Refresh(id) => self.refresher.refresh(&id),
                Command::Retry { id, after } => {
                    let inputs = self.inputs.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = inputs.send(Input::Retry(id));
                    });
                }
            }
        }
    }

    fn act(&self, act: Act) {
        let engine = self.engine.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let result = match act.action {
                Action::Kill => engine.kill(&act.id).await,
                Action::Stop => engine.stop(&act.id, act.stop_timeout.as_secs()).await,
                Action::Remove => engine.remove(&act.id).await,
            };
            let outcome = match result {
                Ok(()) => Outcome::Done {
                    call_ms: t0.elapsed().as_secs_f64() * 1000.0,
                },
                Err(e) if matches!(e.status(), Some(404 | 409)) => Outcome::AlreadyGone,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            let _ = inputs.send(Input::Result(Box::new(act), outcome));
        });
    }

    /// Reports a finished action's side effects that only the executor knows of.
    pub fn finished(&self, act: &Act, outcome: &Outcome) {
        if matches!(outcome, Outcome::Done { .. }) && act.comebacks > 0 {
            self.metrics.recurring.inc();
            tracing::warn!(container = %act.line.container, id = %short(&act.id), times = act.comebacks + 1,
                "a denied container with this name keeps coming back (restart policy, orchestrator, or a person)");
        }
    }

    /// Writes a decision line (logfmt: `verdict=deny ... result=ok`), counts it, and keeps it
    /// for `/decisions` when it acted or would have.
    pub fn log(&self, l: &Line) {
        let action = l.action.map_or("none", Action::as_str);
        let latency_ms = latency_ms(l.trigger_nano);
        let lat = format!("{latency_ms:.1}");
        let (c, id, image, state, trigger, reason) = (
            &l.container,
            short(&l.id),
            &l.image,
            l.state.as_str(),
            l.trigger,
            &l.reason,
        );
        let result: Option<String> = match &l.kind {
            LineKind::Allow => {
                let rule = l.rule.unwrap_or(0);
                tracing::info!(container = %c, id, image = %image, state, verdict = "allow", rule, reason = %reason, trigger, "decision");
                None
            }
            LineKind::Spare => {
                tracing::info!(container = %c, id, image = %image, state, verdict = "spare", reason = %reason, trigger,
                    "decision");
                None
            }
            LineKind::NotLive => None,
            LineKind::Pending { audit } => {
                let result = if *audit {
                    "pending (audit mode): would act when it starts"
                } else {
                    "pending: acts the moment it starts"
                };
                tracing::info!(container = %c, id, image = %image, state, verdict = "deny", reason = %reason, action, result, trigger, "decision");
                None
            }
            LineKind::Audit => {
                self.metrics.action(action, "audit");
                tracing::warn!(container = %c, id, image = %image, state, verdict = "deny", reason = %reason, action,
                    result = "not done (audit mode)", trigger, "decision");
                Some("audit".to_string())
            }
            LineKind::Done { call_ms } => {
                self.metrics.action(action, "ok");
                self.metrics.latency.observe(latency_ms / 1000.0);
                let call = format!("{call_ms:.1}");
                tracing::warn!(container = %c, id, image = %image, verdict = "deny", reason = %reason, action, result = "ok",
                    trigger, latency_ms = %lat, call_ms = %call, "decision");
                Some("ok".to_string())
            }
            LineKind::AlreadyGone => {
                tracing::info!(container = %c, id, image = %image, verdict = "deny", reason = %reason, action,
                    result = "already gone", trigger, "decision");
                Some("already gone".to_string())
            }
            LineKind::Failed { error, retry_in } => {
                self.metrics.action(action, "error");
                let retry_in_ms = retry_in.as_millis() as u64;
                tracing::error!(container = %c, id, image = %image, verdict = "deny", reason = %reason, action, result = "error",
                    error = %error, trigger, retry_in_ms, "decision: the action failed; retrying while it is live and denied");
                Some(format!("error: {error}"))
            }
        };
        if let Some(result) = result {
            self.decisions.push(DecisionRecord {
                time: now_rfc3339(),
                container: l.container.clone(),
                id: l.id.clone(),
                image: l.image.clone(),
                verdict: l.verdict(),
                rule: l.rule,
                reason: l.reason.clone(),
                action: l.action.map(Action::as_str),
                latency_ms: matches!(l.kind, LineKind::Done { .. })
                    .then(|| (latency_ms * 10.0).round() / 10.0),
                result,
                trigger: l.trigger,
            });
        }
    }
}

/// The state list, after every full sync: one line per live container with its verdict.
pub fn log_state_list(
    containers: &[Arc<Container>],
    loaded: &Loaded,
    me: &Identity,
    listed: usize,
    initial: bool,
) {
    let live: Vec<_> = containers.iter().filter(|c| c.state.is_live()).collect();
    tracing::info!(
        containers = listed,
        live = live.len(),
        policy_generation = loaded.generation,
        mode = loaded.policy.mode.as_str(),
        initial,
        "state list synced with Docker"
    );
    for c in live {
        let d = decide(&loaded.policy, c, me);
        let reason = match &d {
            Decision::Spare(s) => s.reason().to_string(),
            Decision::Allow(v) => v.reason.clone(),
            Decision::Deny { verdict, .. } => verdict.reason.clone(),
            Decision::Undecided(m) => format!("{m} not known yet"),
        };
        tracing::info!(container = %c.name, id = %c.short_id(), image = %c.image, state = %c.state,
            verdict = d.verdict_name(), reason = %reason, "state");
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn now_nano() -> i64 {
    common::informer::now_nano()
}

/// From the trigger (an engine event's time, a policy's load time) to now.
fn latency_ms(trigger_nano: i64) -> f64 {
    if trigger_nano <= 0 {
        return 0.0;
    }
    ((now_nano() - trigger_nano) as f64 / 1e6).max(0.0)
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::try_from(SystemTime::now())
        .map(|t| t.round(jiff::Unit::Millisecond).unwrap_or(t).to_string())
        .unwrap_or_default()
}
