//! `state-controller`: follows the Docker event stream and keeps the host to the allowlist.
//!
//! # Layout
//! - [`config`]: command line and environment.
//! - [`enforcer`]: the state machine (notices, policies and results in; commands out) over
//!   the one decision, [`common::decision::decide`].
//! - [`executor`]: runs the commands against the engine and feeds results back.
//! - [`decisions`]: the decision log (one line per decision, the state list) and the recent
//!   decisions kept for `/decisions`.
//! - [`metrics`]: the Prometheus metrics; [`endpoint`]: `/metrics`, `/healthz` and
//!   `/decisions` on the metrics address.
//! - [`authz`]: the authorization plugin (prevention), on a unix socket, over the same
//!   policy and decision.
//! - [`check`]: the `check` subcommand.
//!
//! [`run`] wires them: the policy reloader, the informer (list + watch), the enforcer loop
//! and the metrics endpoint run side by side; if any of them ends, the process ends with an
//! error so the orchestrator restarts it.

pub mod authz;
pub mod check;
pub mod config;
pub mod decisions;
pub mod endpoint;
pub mod enforcer;
pub mod executor;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::decision::Identity;
use common::engine::{Engine, HttpEngine};
use common::informer::store::Store;
use common::informer::{self, Informer, Notice};
use common::reload::PolicyHandle;
use tokio::sync::mpsc;

use crate::decisions::Decisions;
use crate::endpoint::Endpoint;
use crate::enforcer::Enforcer;
use crate::executor::{Executor, Finished};
use crate::metrics::Metrics;

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub allowlist: PathBuf,
    pub docker_host: Option<String>,
    pub metrics_listen: SocketAddr,
    pub scope: Option<String>,
    /// Serve the authorization-plugin protocol on this unix socket.
    pub authz_socket: Option<PathBuf>,
    /// Registry credentials and CA roots for signature verification.
    pub registry_config: Option<PathBuf>,
    pub registry_ca: Option<PathBuf>,
}

/// Why the controller stopped with an error; `BadPolicy` means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    BadPolicy(common::Error),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Runs the controller until `shutdown` resolves (Ok) or a component fails (Err).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Failure> {
    let (policy, reload_task) = common::reload::start(&settings.allowlist).map_err(Failure::BadPolicy)?;
    // The plugin socket first: an engine configured with this plugin validates it at its
    // own start-up and refuses to start without it, so it must answer before Docker does.
    let authz_listener = match &settings.authz_socket {
        Some(path) => Some(authz::bind(path).map_err(Failure::Other)?),
        None => None,
    };
    let loaded = policy.current();
    let verifier = common::provenance::verifier_from(
        settings.registry_config.as_deref(),
        settings.registry_ca.as_deref(),
    )
    .map_err(|e| Failure::Other(anyhow::anyhow!("signature verification settings: {e}")))?;
    let engine = HttpEngine::new(settings.docker_host.as_deref())
        .context("the Docker host")
        .map_err(Failure::Other)?;
    tracing::info!(
        path = %settings.allowlist.display(),
        mode = loaded.policy.mode.as_str(),
        action = loaded.policy.action.as_str(),
        rules = loaded.policy.rules.len(),
        scope = settings.scope.as_deref().unwrap_or("every container"),
        engine = %engine.endpoint(),
        "state-controller starting"
    );
    let listener = tokio::net::TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {} for /metrics", settings.metrics_listen))
        .map_err(Failure::Other)?;

    let store = Store::new();
    let mut informer = Informer::new(
        informer::Config {
            label_selector: settings.scope.clone(),
            ..Default::default()
        },
        store.clone(),
        engine.clone(),
    );
    let notices = informer.notices();
    let identity: Arc<Mutex<Identity>> = Arc::default();
    let metrics = Arc::new(Metrics::new(&store, &policy, informer.stats(), &verifier));
    let decisions = Decisions::default();
    let endpoint = Endpoint {
        metrics: metrics.clone(),
        store: store.clone(),
        policy: policy.clone(),
        decisions: decisions.clone(),
    };
    let (results_tx, results_rx) = mpsc::unbounded_channel();
    let executor = Executor {
        engine: engine.clone(),
        verifier: verifier.clone(),
        metrics: metrics.clone(),
        decisions,
        refresher: informer.refresher(),
        results: results_tx,
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (authz_stop_tx, authz_stop_rx) = tokio::sync::oneshot::channel::<()>();
    if let (Some(listener), Some(path)) = (authz_listener, &settings.authz_socket) {
        let plugin = Arc::new(authz::Authz {
            policy: policy.clone(),
            store: store.clone(),
            engine: engine.clone(),
            verifier: verifier.clone(),
            identity: identity.clone(),
            metrics: metrics.clone(),
            decisions: executor.decisions.clone(),
        });
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        tracing::info!(socket = %path.display(), plugin = %name,
            "authorization plugin listening: start dockerd with --authorization-plugin={name}");
        tokio::spawn(authz::serve(listener, plugin, async {
            let _ = authz_stop_rx.await;
        }));
    }
    let server = tokio::spawn(endpoint::serve(listener, endpoint, async {
        let _ = stop_rx.await;
    }));
    let informer_task = tokio::spawn(informer.run());
    let enforcer_task = tokio::spawn(enforce(
        engine, store, policy, identity, executor, notices, results_rx,
    ));

    let result = tokio::select! {
        _ = shutdown => Ok(()),
        r = informer_task => Err(anyhow::anyhow!("the informer ended unexpectedly: {r:?}")),
        r = enforcer_task => Err(match r {
            Ok(Ok(())) => anyhow::anyhow!("the enforcer ended unexpectedly"),
            Ok(Err(e)) => e.context("the enforcer failed"),
            Err(e) => anyhow::anyhow!("the enforcer panicked: {e}"),
        }),
        r = reload_task => Err(anyhow::anyhow!("the policy reloader ended unexpectedly: {r:?}")),
    };
    let _ = stop_tx.send(());
    let _ = authz_stop_tx.send(());
    if let Some(path) = &settings.authz_socket {
        let _ = std::fs::remove_file(path);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    result.map_err(Failure::Other)
}

/// The enforcer's loop: learn who we are, then feed it notices, policies, results and the
/// clock (its own deadlines), and hand what it decides to the executor.
async fn enforce<E: Engine>(
    engine: E,
    store: Store,
    policy: PolicyHandle,
    identity: Arc<Mutex<Identity>>,
    executor: Executor<E>,
    mut notices: mpsc::Receiver<Notice>,
    mut results: mpsc::UnboundedReceiver<Finished>,
) -> anyhow::Result<()> {
    // Learn who we are before judging anyone: never act without knowing what to spare.
    // Notices queue up meanwhile (the informer re-lists if they overflow).
    let me = common::identity::discover(&engine).await;
    *identity.lock().unwrap_or_else(|e| e.into_inner()) = me.clone();
    let mut enforcer = Enforcer::new(me).with_signatures(Arc::new(executor.verifier.clone()));
    let mut policy_rx = policy.subscribe();
    policy_rx.mark_unchanged();
    loop {
        let deadline = enforcer.poll_timeout();
        let commands = tokio::select! {
            n = notices.recv() => {
                let Some(n) = n else { anyhow::bail!("the informer stopped sending changes") };
                let loaded = policy.current();
                match &n {
                    Notice::Synced { containers, initial } => {
                        decisions::log_state_list(&store.list(), &loaded, enforcer.identity(), &executor.verifier, *containers, *initial);
                    }
                    Notice::Disconnected { reason } => {
                        tracing::warn!(%reason, "lost the Docker event stream; enforcement resumes after the re-list");
                    }
                    _ => {}
                }
                enforcer.on_notice(n, &loaded, informer::now_nano())
            }
            changed = policy_rx.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the policy reloader stopped");
                }
                let loaded = policy_rx.borrow_and_update().clone();
                // Verified results of the key sets still listed stay (a reload during a
                // registry outage keeps what verified before); the rest are dropped.
                executor.verifier.retain_key_sets(&loaded.policy.key_set_ids());
                let commands = enforcer.on_policy(&loaded, &store.list());
                let (allowed, denied) = enforcer.verdicts();
                tracing::info!(generation = loaded.generation, mode = loaded.policy.mode.as_str(),
                    action = loaded.policy.action.as_str(), allowed, denied, "new policy applied to every live container");
                commands
            }
            r = results.recv() => match r {
                Some(Finished::Acted(act, outcome)) => {
                    executor.finished(&act, &outcome);
                    enforcer.on_result(&act, outcome, Instant::now())
                }
                Some(Finished::Verified(id)) => {
                    enforcer.on_verified(&id, store.get(&id), &policy.current(), informer::now_nano())
                }
                None => anyhow::bail!("the executor's channel closed"),
            },
            () = sleep_until(deadline) => {
                enforcer.on_timeout(Instant::now(), |id| store.get(id), &policy.current(), informer::now_nano())
            }
        };
        executor.execute(commands);
        let m = &executor.metrics;
        *m.tally.lock().unwrap_or_else(|e| e.into_inner()) = enforcer.tally.clone();
        m.tracked.store(enforcer.tracked(), Relaxed);
        m.denied_live.store(enforcer.denied_live(), Relaxed);
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
