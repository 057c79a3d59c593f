//! dockwarden's status API: every container's state, health, resources and allowlist verdict,
//! as JSON for programs and a web page for browsers. Every answer comes from the informer's
//! in-memory picture of the host (list + watch), so a request costs no Docker call; only
//! `/containers/{id}/logs` asks the engine, bounded.
//!
//! # Layout
//! - [`config`]: the command line and environment (clap).
//! - [`filters`]: the route tree, one function per route; [`handlers`]: the work behind
//!   them; [`models`]: the JSON types; [`html`]: the page for browsers; [`errors`]: the one
//!   rejection type and `recover` (JSON `{"error","message"}`).
//! - [`query`]: strict query parameters (filters, `tail`); [`auth`]: the bearer token.
//! - [`resources`]: background CPU/memory sampling and health classes;
//!   [`status`]: Docker-like status text from the stored times.
//! - [`metrics`]: `/metrics` (OpenMetrics text).
//!
//! Tests drive [`filters::routes`] with `warp::test::request()` and the real server through
//! [`bind`] + [`Server::run`] on `127.0.0.1:0`.

pub mod auth;
pub mod config;
pub mod errors;
pub mod filters;
pub mod handlers;
pub mod html;
pub mod metrics;
pub mod models;
pub mod query;
pub mod resources;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use bollard::Docker;
use common::docker::Identity;
use common::engine::HttpEngine;
use common::informer::{self, Informer};
use common::reload::PolicyHandle;
use common::store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use filters::routes;

use crate::auth::Token;
use crate::metrics::Metrics;
use crate::resources::Resources;

/// Logs requests served at once; more wait (within the logs timeout).
pub const LOG_CONCURRENCY: usize = 4;

/// What the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub allowlist: Option<PathBuf>,
    pub docker_host: Option<String>,
    pub token: Option<String>,
    /// Label selector limiting the containers reported (`None`: all).
    pub scope: Option<String>,
    pub stats_interval: Duration,
    /// How long in-flight requests may take to finish after the shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], common::STATUS_API_PORT)),
            allowlist: None,
            docker_host: None,
            token: None,
            scope: None,
            stats_interval: Duration::from_secs(5),
            // Under `docker stop`'s default 10 s before SIGKILL, with room to spare.
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Shared state of the handlers; clone freely.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    /// The picture of the host, kept by the informer.
    pub store: Store,
    /// The allowlist in force, when the server runs with one.
    pub policy: Option<PolicyHandle>,
    /// CPU and memory figures, kept by the background sampler.
    pub resources: Resources,
    /// The informer's current Docker client, for the logs route.
    pub docker: watch::Receiver<Option<Docker>>,
    pub metrics: Metrics,
    pub token: Option<Token>,
    /// Bounds concurrent logs requests (the one route that calls Docker).
    pub log_permits: Semaphore,
    /// This process's container and image, once known: their containers are spared, as
    /// the controller spares them.
    identity: Arc<RwLock<Identity>>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: Store,
        policy: Option<PolicyHandle>,
        docker: watch::Receiver<Option<Docker>>,
        informer_stats: Arc<informer::Stats>,
        token: Option<Token>,
    ) -> AppState {
        let resources = Resources::default();
        let identity: Arc<RwLock<Identity>> = Arc::default();
        let metrics = Metrics::new(metrics::Sources {
            store: store.clone(),
            informer: informer_stats,
            policy: policy.clone(),
            resources: resources.stats.clone(),
            identity: identity.clone(),
        });
        AppState(Arc::new(Shared {
            store,
            policy,
            resources,
            docker,
            metrics,
            token,
            log_permits: Semaphore::new(LOG_CONCURRENCY),
            identity,
        }))
    }

    /// Whose containers are spared (default: none, until known).
    pub fn identity(&self) -> Identity {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_identity(&self, me: Identity) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = me;
    }

    /// Learns this process's own container and image (retrying until the engine answers).
    async fn learn_identity(self, engine: HttpEngine) {
        self.set_identity(common::docker::identity(&engine).await);
    }
}

/// A bound, not yet running server: its policy is loaded and its port is known.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    informer: Informer<HttpEngine>,
    engine: HttpEngine,
    reload: Option<tokio::task::JoinHandle<()>>,
    config: Config,
}

/// Loads the allowlist (a bad one is an error: the caller exits 2), binds the listener (a
/// taken port is an error, not a panic) and prepares the informer.
pub async fn bind(config: Config) -> anyhow::Result<Server> {
    let (policy, reload) = match &config.allowlist {
        Some(path) => {
            let (handle, task) = common::reload::start(path)?;
            (Some(handle), Some(task))
        }
        None => (None, None),
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let store = Store::new();
    let engine = HttpEngine::new(config.docker_host.as_deref()).context("the Docker host")?;
    let informer = Informer::new(
        informer::Config {
            label_selector: config.scope.clone(),
            ..Default::default()
        },
        store.clone(),
        engine.clone(),
    );
    let token = config.token.as_deref().and_then(Token::new);
    let docker = common::docker::connect_in_background(config.docker_host.clone());
    let state = AppState::new(store, policy, docker, informer.stats(), token);
    Ok(Server {
        listener,
        state,
        informer,
        engine,
        reload,
        config,
    })
}

/// [`bind`], then [`Server::run`] until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    bind(config).await?.run(shutdown).await
}

impl Server {
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("reading the bound address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish within the grace period and returns. A background task that ends on its own
    /// (informer, sampler, policy watcher) is an error, so an orchestrator restarts us.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            listener,
            state,
            informer,
            engine,
            reload,
            config,
        } = self;
        let addr = listener.local_addr().context("reading the bound address")?;
        let mut informer_task = tokio::spawn(informer.run());
        let mut sampler_task = tokio::spawn(state.resources.clone().run(
            state.store.clone(),
            state.docker.clone(),
            config.stats_interval,
        ));
        let identity_task = tokio::spawn(state.clone().learn_identity(engine));
        let mut reload_task = reload;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = warp::serve(filters::routes(state.clone()))
            .incoming(listener)
            .graceful(async move {
                let _ = stop_rx.await;
            })
            .run();
        tracing::info!(
            %addr,
            allowlist = config.allowlist.as_ref().map(|p| p.display().to_string()),
            scope = config.scope.as_deref(),
            token = state.token.is_some(),
            "status-api listening"
        );
        if state.token.is_none() {
            tracing::info!("no token: every route is open to whoever reaches {addr}");
        }
        tokio::pin!(server);
        tokio::pin!(shutdown);
        let mut server_done = false;
        let outcome = tokio::select! {
            _ = &mut shutdown => Ok(()),
            _ = &mut server => {
                server_done = true;
                Err(anyhow!("the HTTP server stopped on its own"))
            }
            r = &mut informer_task => Err(anyhow!("the informer stopped: {}", ended(r))),
            r = &mut sampler_task => Err(anyhow!("the resource sampler stopped: {}", ended(r))),
            r = async { match reload_task.as_mut() { Some(t) => t.await, None => std::future::pending().await } } => {
                Err(anyhow!("the policy watcher stopped: {}", ended(r)))
            }
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "shutting down");
        }
        if !server_done {
            tracing::info!(
                grace_ms = config.shutdown_grace.as_millis() as u64,
                "no longer accepting connections; letting in-flight requests finish"
            );
            let _ = stop_tx.send(());
            match tokio::time::timeout(config.shutdown_grace, &mut server).await {
                Ok(()) => tracing::info!("all connections closed"),
                Err(_) => tracing::warn!("grace period over; dropping the remaining connections"),
            }
        }
        informer_task.abort();
        sampler_task.abort();
        identity_task.abort();
        if let Some(t) = reload_task {
            t.abort();
        }
        outcome
    }
}

fn ended(r: Result<(), tokio::task::JoinError>) -> String {
    match r {
        Ok(()) => "it returned".to_string(),
        Err(e) if e.is_panic() => "it panicked".to_string(),
        Err(e) => e.to_string(),
    }
}
