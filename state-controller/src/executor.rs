//! The edge of the enforcer: runs its [`Command`]s against the engine (actions in spawned
//! tasks, so a slow engine call never delays the next decision), hands lines to the
//! decision log, and feeds results back.

use std::sync::Arc;
use std::time::Instant;

use common::engine::Engine;
use common::informer::Refresher;
use common::policy::Action;
use common::provenance::Verifier;
use tokio::sync::mpsc;

use crate::decisions::{self, Decisions};
use crate::enforcer::{Act, Command, Outcome, Verify};
use crate::metrics::Metrics;

/// What comes back to the enforcer's loop from the work it asked for.
#[derive(Debug)]
pub enum Finished {
    /// An action's outcome.
    Acted(Box<Act>, Outcome),
    /// A signature verification of this container ended (its result is cached).
    Verified(String),
}

pub struct Executor<E: Engine> {
    pub engine: E,
    pub verifier: Verifier,
    pub metrics: Arc<Metrics>,
    pub decisions: Decisions,
    pub refresher: Refresher,
    pub results: mpsc::UnboundedSender<Finished>,
}

impl<E: Engine> Executor<E> {
    pub fn execute(&self, commands: Vec<Command>) {
        for c in commands {
            match c {
                Command::Act(act) => self.act(act),
                Command::Log(line) => decisions::log(&line, &self.metrics, &self.decisions),
                Command::Refresh(id) => self.refresher.refresh(&id),
                Command::Verify(v) => self.verify(v),
            }
        }
    }

    fn act(&self, act: Act) {
        let engine = self.engine.clone();
        let results = self.results.clone();
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
            let _ = results.send(Finished::Acted(Box::new(act), outcome));
        });
    }

    /// Verifies the signatures asked for, one key set after the other (each bounded by the
    /// verifier's timeout), then reports back.
    fn verify(&self, v: Verify) {
        let verifier = self.verifier.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            for keys in &v.keys {
                let outcome = verifier.verify_image(&v.image, &v.digests, keys).await;
                tracing::debug!(id = %v.id, image = %v.image, outcome = %outcome, "signature verified");
            }
            let _ = results.send(Finished::Verified(v.id));
        });
    }

    /// Reports a finished action's side effects that only the executor knows of.
    pub fn finished(&self, act: &Act, outcome: &Outcome) {
        if matches!(outcome, Outcome::Done { .. }) && act.comebacks > 0 {
            self.metrics.recurring.inc();
            tracing::warn!(container = %act.line.container, id = %act.id.get(..12).unwrap_or(&act.id), times = act.comebacks + 1,
                "a denied container with this name keeps coming back (restart policy, orchestrator, or a person)");
        }
    }
}
