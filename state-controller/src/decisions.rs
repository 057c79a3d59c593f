//! The decision log: one line per decision (`docker-compose logs -f state-controller`), the
//! state list after every sync, and the recent decisions that acted, would have, or refused,
//! kept as [`DecisionRecord`]s for `GET /decisions`. Text comes from the typed decision
//! ([`common::decision`]); this module only chooses the level and the fields.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::decision::{ActionResult, DecisionRecord, Identity, Signatures, decide_with};
use common::engine::container::Container;
use common::policy::Action;
use common::reload::Loaded;

use crate::enforcer::{Line, LineKind};
use crate::metrics::Metrics;

/// How many decisions `GET /decisions` keeps.
pub const DECISIONS_KEPT: usize = 1_000;

/// The last [`DECISIONS_KEPT`] decisions that acted or would have; clone freely.
#[derive(Clone, Default)]
pub struct Decisions(Arc<Mutex<VecDeque<DecisionRecord>>>);

impl Decisions {
    pub fn push(&self, r: DecisionRecord) {
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

/// Writes a decision line (logfmt: `verdict=deny ... result=ok`), counts its action, and
/// keeps it for `/decisions` when it acted or would have.
pub fn log(l: &Line, metrics: &Metrics, decisions: &Decisions) {
    let action = l.action.map_or("none", Action::as_str);
    let latency_ms = latency_ms(l.trigger_nano);
    let lat = format!("{latency_ms:.1}");
    let (c, id, image, state, reason) = (
        &l.container,
        short(&l.id),
        &l.image,
        l.state.as_str(),
        &l.decision,
    );
    let trigger = l.trigger.to_string();
    let verdict = l.decision.verdict().as_str();
    let result = match &l.kind {
        LineKind::Judged => {
            match l.decision.rule() {
                Some(rule) => {
                    tracing::info!(container = %c, id, image = %image, state, verdict, rule, reason = %reason, trigger, "decision")
                }
                None => {
                    tracing::info!(container = %c, id, image = %image, state, verdict, reason = %reason, trigger, "decision")
                }
            }
            None
        }
        LineKind::Pending { audit } => {
            let result = if *audit {
                "pending (audit mode): would act when it starts"
            } else {
                "pending: acts the moment it starts"
            };
            tracing::info!(container = %c, id, image = %image, state, verdict, reason = %reason, action, result, trigger, "decision");
            None
        }
        LineKind::Audit => {
            metrics.action(action, "audit");
            tracing::warn!(container = %c, id, image = %image, state, verdict, reason = %reason, action,
                result = "not done (audit mode)", trigger, "decision");
            Some(ActionResult::Audit)
        }
        LineKind::Done { call_ms } => {
            metrics.action(action, "ok");
            metrics.latency.observe(latency_ms / 1000.0);
            let call = format!("{call_ms:.1}");
            tracing::warn!(container = %c, id, image = %image, verdict, reason = %reason, action, result = "ok",
                trigger, latency_ms = %lat, call_ms = %call, "decision");
            Some(ActionResult::Ok)
        }
        LineKind::AlreadyGone => {
            tracing::info!(container = %c, id, image = %image, verdict, reason = %reason, action,
                result = "already gone", trigger, "decision");
            Some(ActionResult::AlreadyGone)
        }
        LineKind::Failed { error, retry_in } => {
            metrics.action(action, "error");
            let retry_in_ms = retry_in.as_millis() as u64;
            tracing::error!(container = %c, id, image = %image, verdict, reason = %reason, action, result = "error",
                error = %error, trigger, retry_in_ms, "decision: the action failed; retrying while it is live and denied");
            Some(ActionResult::Error(error.clone()))
        }
    };
    if let Some(result) = result {
        let mut r = DecisionRecord::new(
            &l.decision,
            &l.container,
            &l.id,
            &l.image,
            l.action,
            result,
            l.trigger.clone(),
        );
        r.latency_ms = matches!(l.kind, LineKind::Done { .. }).then(|| (latency_ms * 10.0).round() / 10.0);
        decisions.push(r);
    }
}

/// The state list, after every full sync: one line per live container with its verdict.
pub fn log_state_list(
    containers: &[Arc<Container>],
    loaded: &Loaded,
    me: &Identity,
    sigs: &dyn Signatures,
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
        let d = decide_with(&loaded.policy, c, me, sigs);
        tracing::info!(container = %c.name, id = %c.short_id(), image = %c.image, state = %c.state,
            verdict = d.verdict().as_str(), reason = %d, "state");
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// From the trigger (an engine event's time, a policy's load time) to now.
fn latency_ms(trigger_nano: i64) -> f64 {
    if trigger_nano <= 0 {
        return 0.0;
    }
    ((common::informer::now_nano() - trigger_nano) as f64 / 1e6).max(0.0)
}
