//! `state-controller`: follows the Docker event stream and keeps the host to the allowlist.
//!
//! # Layout
//! - [`config`]: command line and environment.
//! - [`enforcer`]: the pure `decide()` and the `Enforcer` that acts on every change.
//! - [`metrics`]: Prometheus metrics, `/metrics` and `/healthz`.
//! - [`check`]: the offline `check` subcommand.
//!
//! [`run`] wires them: the policy reloader, the informer (list + watch), the enforcer and
//! the metrics endpoint run side by side; if any of them ends, the process ends with an
//! error so the orchestrator restarts it.

pub mod check;
pub mod config;
pub mod enforcer;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use common::informer::{self, Informer};
use common::store::Store;
use tokio::sync::mpsc;

use crate::enforcer::Enforcer;
use crate::metrics::{Endpoint, Metrics};

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub allowlist: PathBuf,
    pub docker_host: Option<String>,
    pub metrics_listen: SocketAddr,
    pub scope: Option<String>,
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
    let loaded = policy.current();
    tracing::info!(
        path = %settings.allowlist.display(),
        mode = loaded.policy.mode.as_str(),
        action = loaded.policy.action.as_str(),
        rules = loaded.policy.rules.len(),
        scope = settings.scope.as_deref().unwrap_or("every container"),
        "state-controller starting"
    );
    let listener = tokio::net::TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {} for /metrics", settings.metrics_listen))
        .map_err(Failure::Other)?;

    let store = Store::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let informer = Informer::new(
        informer::Config {
            docker_host: settings.docker_host.clone(),
            label_selector: settings.scope.clone(),
            ..Default::default()
        },
        store.clone(),
    )
    .with_notices(tx);
    let mut docker_rx = informer.docker();
    let metrics = std::sync::Arc::new(Metrics::new());
    let endpoint = Endpoint {
        metrics: metrics.clone(),
        store: store.clone(),
        policy: policy.clone(),
        informer: informer.stats(),
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(metrics::serve(listener, endpoint, async {
        let _ = stop_rx.await;
    }));
    let informer_task = tokio::spawn(informer.run());

    // Learn who we are before judging anyone: never act without knowing what to spare.
    // Notices queue up meanwhile.
    let docker = loop {
        if let Some(d) = docker_rx.borrow_and_update().clone() {
            break d;
        }
        if docker_rx.changed().await.is_err() {
            return Err(Failure::Other(anyhow::anyhow!(
                "the informer stopped before connecting"
            )));
        }
    };
    let me = common::docker::identity(&docker).await;
    let enforcer = Enforcer::new(store, docker_rx, policy, me, metrics);
    let enforcer_task = tokio::spawn(enforcer.run(rx));

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
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    result.map_err(Failure::Other)
}
