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
use bollard::Docker;
use common::informer::{self, Informer};
use common::store::Store;
use tokio::sync::mpsc;

use crate::enforcer::{Enforcer, Identity};
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
    let me = identity(&docker).await;
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

/// This process's own container and image, when it runs in a container. Retries until the
/// engine answers: sparing ourselves must never depend on luck.
pub async fn identity(docker: &Docker) -> Identity {
    let Some(id) = common::docker::own_container_id() else {
        tracing::info!("not running in a container: no container is spared as dockwarden's own");
        return Identity::default();
    };
    let mut backoff = common::backoff::Backoff::default();
    loop {
        match docker.inspect_container(&id, None).await {
            Ok(c) => {
                let image_id = c.image;
                tracing::info!(container = %&id[..12], image = image_id.as_deref().unwrap_or("?"),
                    "running in a container: containers of this image are dockwarden's own and are never acted on");
                return Identity {
                    container_id: Some(id),
                    image_id,
                };
            }
            Err(e) if common::docker::status_code(&e) == Some(404) => {
                tracing::warn!(container = %id, "own container ID not known to this engine; sparing by ID only");
                return Identity {
                    container_id: Some(id),
                    image_id: None,
                };
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "cannot inspect own container yet; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
