//! dockwarden's status API: every container's state, health, resources and allowlist verdict,
//! as JSON for programs and a web page for browsers, and what the controller did. Every
//! answer comes from the informer's in-memory picture of the host (list + watch), rendered
//! at most once per change and per second ([`views`]): a request costs no Docker call and,
//! for the unfiltered list, no rendering. Only `/containers/{id}/logs` asks the engine,
//! bounded, and it is off unless a token is set or `--logs` is given.
//!
//! # Layout
//! - [`config`]: the command line and environment (clap).
//! - [`routes`]: the route table (templates); [`filters`]: warp path filters per route, then
//!   token, method and handler in one function, and the security headers; [`handlers`]:
//!   the work behind each route.
//! - [`views`]: the view cache (snapshots, per-container entries); [`reply`]: cached bodies
//!   with ETag and gzip; [`models`]: the JSON types and the verdict; [`html`]: the page
//!   (maud); [`errors`]: JSON `{"error","message"}`.
//! - [`query`]: strict query parameters (filters, `tail`, `container`); [`auth`]: the token.
//! - [`resources`]: background CPU/memory sampling and health classes; [`status`]:
//!   Docker-like status text from the parsed times.
//! - [`decisions`]: the controller's decisions, fetched in the background;
//!   [`policy_file`]: whether the policy file on disk was refused.
//! - [`stream`]: streamed bodies (the logs) under warp; [`metrics`]: `/metrics`.
//! - [`fleet`]: the fleet view (`--peers`): every node's containers, decisions and policy,
//!   asked of the peers in the background and merged; and `GET /node`, what peers ask.
//!
//! The server is [`common::http`]'s hardened HTTP/1.1 server (header-read timeout,
//! connection cap, graceful shutdown). Tests drive [`filters::routes`] with
//! `warp::test::request()` and the real server through [`bind`] + [`Server::run`] on
//! `127.0.0.1:0`.

pub mod auth;
pub mod config;
pub mod decisions;
pub mod errors;
pub mod filters;
pub mod fleet;
pub mod handlers;
pub mod html;
pub mod metrics;
pub mod models;
pub mod policy_file;
pub mod query;
pub mod reply;
pub mod resources;
pub mod routes;
pub mod status;
pub mod stream;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use common::decision::Identity;
use common::engine::HttpEngine;
use common::engine::container::Container;
use common::http::Limits;
use common::informer::store::Store;
use common::informer::{self, Informer};
use common::provenance::{KeySet, Verifier};
use common::reload::PolicyHandle;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

pub use filters::routes;

use crate::auth::Token;
use crate::decisions::Decisions;
use crate::metrics::Metrics;
use crate::policy_file::FileStatus;
use crate::resources::Resources;
use crate::views::Views;

/// Logs requests streamed at once (each holds at most `handlers::LOG_QUEUE` chunks); more
/// wait, within the logs timeout.
pub const LOG_CONCURRENCY: usize = 16;

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
    /// A request head must arrive within this time (also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait until one closes.
    pub max_connections: usize,
    /// The controller's metrics address (`http://host:9090`), for `/decisions`.
    pub controller_url: Option<String>,
    /// Serve `/containers/{id}/logs` even without a token.
    pub logs: bool,
    /// Registry credentials and CA roots for the signatures `signed_by` rules verify.
    pub registry_config: Option<PathBuf>,
    pub registry_ca: Option<PathBuf>,
    /// `--peers`: the fleet view's peers (`host:port[,...]`, each resolved to every address);
    /// unset or empty: no fleet view.
    pub peers: Option<String>,
    /// `--node-name`: this node's name in the fleet view (default: the engine's name).
    pub node_name: Option<String>,
    /// Each peer must answer within this time.
    pub peer_timeout: Duration,
    /// Time between two rounds of asking the peers.
    pub fleet_interval: Duration,
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
            shutdown_grace: Limits::default().shutdown_grace,
            header_read_timeout: Limits::default().header_read_timeout,
            max_connections: Limits::default().max_connections,
            controller_url: None,
            logs: false,
            registry_config: None,
            registry_ca: None,
            peers: None,
            node_name: None,
            peer_timeout: fleet::Settings::default().peer_timeout,
            fleet_interval: fleet::Settings::default().interval,
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
    /// The signatures `signed_by` rules want: the cache verdicts read, filled in the
    /// background ([`AppState::verify_in_background`]).
    pub verifier: Verifier,
    /// Containers whose signature is being verified now.
    verifying: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// CPU and memory figures, kept by the background sampler.
    pub resources: Resources,
    /// The engine, for the logs route (and the resource sampler).
    pub engine: HttpEngine,
    pub metrics: Metrics,
    pub token: Option<Token>,
    /// Whether `/containers/{id}/logs` answers: a token is set, or `--logs` was given.
    pub logs_enabled: bool,
    /// Bounds concurrent logs requests (the one route that calls Docker).
    pub log_permits: Arc<Semaphore>,
    /// The rendered picture, rebuilt at most once per change and per second.
    pub views: Views,
    /// What the controller did (with `--controller-url`).
    pub decisions: Decisions,
    /// Whether the policy file on disk is refused.
    pub policy_file: FileStatus,
    /// The HTTP server's connection counters.
    pub http: Arc<common::http::Stats>,
    /// The fleet view (off without `--peers`) and this node's name.
    pub fleet: fleet::Fleet,
    /// This process's container and image, once known (their containers are spared, as
    /// the controller spares them), with a version that moves when it is learnt.
    identity: Arc<RwLock<(Identity, u64)>>,
}

/// What [`AppState::new`] takes besides the picture's sources.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub token: Option<Token>,
    /// Signature verification (a verifier without credentials or extra roots by default).
    pub verifier: Option<Verifier>,
    /// `--logs`: serve the logs route without a token.
    pub logs: bool,
    pub controller_url: Option<String>,
    pub fleet: fleet::Settings,
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
        engine: HttpEngine,
        informer_stats: Arc<informer::Stats>,
        opts: Options,
    ) -> AppState {
        let resources = Resources::default();
        let identity: Arc<RwLock<(Identity, u64)>> = Arc::default();
        let http = Arc::<common::http::Stats>::default();
        let metrics = Metrics::new(metrics::Sources {
            store: store.clone(),
            informer: informer_stats,
            policy: policy.clone(),
            resources: resources.stats.clone(),
            http: http.clone(),
        });
        let fleet = fleet::Fleet::new(opts.fleet, opts.token.as_ref().map(Token::expose));
        AppState(Arc::new(Shared {
            store,
            policy,
            verifier: opts.verifier.unwrap_or_else(|| Verifier::new(Default::default())),
            verifying: Arc::default(),
            resources,
            engine,
            metrics,
            logs_enabled: opts.logs || opts.token.is_some(),
            token: opts.token,
            log_permits: Arc::new(Semaphore::new(LOG_CONCURRENCY)),
            views: Views::new(html::render_list),
            decisions: Decisions::new(opts.controller_url),
            policy_file: FileStatus::default(),
            fleet,
            http,
            identity,
        }))
    }

    /// Whose containers are spared (default: none, until known), and the version of that.
    pub fn identity_versioned(&self) -> (Identity, u64) {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_identity(&self, me: Identity) {
        {
            let mut cur = self.identity.write().unwrap_or_else(|e| e.into_inner());
            cur.0 = me;
            cur.1 += 1;
        }
        self.views.touch();
    }

    /// Verifies, in the background, the signatures a container's decision waits for; the
    /// view cache is rebuilt when they are known. One verification per container at a time.
    pub fn verify_in_background(&self, c: &Container, keys: Vec<KeySet>) {
        if keys.is_empty() {
            return;
        }
        {
            let mut v = self.verifying.lock().unwrap_or_else(|e| e.into_inner());
            if !v.insert(c.id.clone()) {
                return;
            }
        }
        let state = self.clone();
        let (id, image, digests) = (c.id.clone(), c.image.clone(), c.image_digests.clone());
        tokio::spawn(async move {
            for k in &keys {
                state.verifier.verify_image(&image, &digests, k).await;
            }
            state
                .verifying
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            state.views.touch();
        });
    }

    /// Learns this process's own container and image (retrying until the engine answers).
    async fn learn_identity(self, engine: HttpEngine) {
        self.set_identity(common::identity::discover(&engine).await);
    }
}

/// A bound, not yet running server: its policy is loaded and its port is known.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    informer: Informer<HttpEngine>,
    engine: HttpEngine,
    /// The informer's notices: each one that changes the picture moves the view cache on.
    notices: mpsc::Receiver<informer::Notice>,
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
    let mut informer = Informer::new(
        informer::Config {
            label_selector: config.scope.clone(),
            ..Default::default()
        },
        store.clone(),
        engine.clone(),
    );
    let notices = informer.notices();
    let verifier =
        common::provenance::verifier_from(config.registry_config.as_deref(), config.registry_ca.as_deref())
            .map_err(|e| anyhow!("signature verification settings: {e}"))?;
    let peers =
        fleet::discovery::Peers::parse(config.peers.as_deref().unwrap_or("")).map_err(|e| anyhow!(e))?;
    let opts = Options {
        verifier: Some(verifier),
        token: config.token.as_deref().and_then(Token::new),
        logs: config.logs,
        controller_url: config.controller_url.clone().filter(|u| !u.is_empty()),
        fleet: fleet::Settings {
            peers,
            node_name: config.node_name.clone().filter(|n| !n.is_empty()),
            peer_timeout: config.peer_timeout,
            interval: config.fleet_interval,
        },
    };
    let state = AppState::new(store, policy, engine.clone(), informer.stats(), opts);
    Ok(Server {
        listener,
        state,
        informer,
        engine,
        notices,
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
            mut notices,
            reload,
            config,
        } = self;
        let addr = listener.local_addr().context("reading the bound address")?;
        let mut informer_task = tokio::spawn(informer.run());
        let mut sampler_task = tokio::spawn(state.resources.clone().run(
            state.store.clone(),
            state.engine.clone(),
            config.stats_interval,
        ));
        let identity_task = tokio::spawn(state.clone().learn_identity(engine.clone()));
        let views_task = tokio::spawn(Views::refresh(state.clone()));
        let node_name_task = tokio::spawn(state.fleet.clone().learn_node_name(engine.clone()));
        let fleet_task = tokio::spawn(state.fleet.clone().run(state.clone()));
        let notices_state = state.clone();
        let notices_task = tokio::spawn(async move {
            while let Some(n) = notices.recv().await {
                // A container added, changed or removed moves the store's version, which the
                // view cache reads; an update that changed nothing (a re-list) moves nothing.
                use informer::Notice::{Event, Removed, Updated};
                if !matches!(n, Event { .. } | Updated(_) | Removed(_)) {
                    notices_state.views.touch();
                }
            }
        });
        let decisions_task = config
            .controller_url
            .clone()
            .filter(|u| !u.is_empty())
            .map(|url| tokio::spawn(state.decisions.clone().run(url)));
        let policy_file_task = state
            .policy
            .clone()
            .map(|p| tokio::spawn(state.policy_file.clone().watch(p)));
        let mut reload_task = reload;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let limits = Limits {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            shutdown_grace: config.shutdown_grace,
        };
        let service = stream::Streaming(hyper_util::service::TowerToHyperService::new(warp::service(
            filters::routes(state.clone()),
        )));
        let server = common::http::serve(listener, service, limits, state.http.clone(), async move {
            let _ = stop_rx.await;
        });
        tracing::info!(
            %addr,
            allowlist = config.allowlist.as_ref().map(|p| p.display().to_string()),
            scope = config.scope.as_deref(),
            token = state.token.is_some(),
            logs_route = state.logs_enabled,
            controller = config.controller_url.as_deref(),
            peers = config.peers.as_deref().filter(|p| !p.is_empty()),
            node_name = config.node_name.as_deref(),
            header_read_timeout_ms = config.header_read_timeout.as_millis() as u64,
            max_connections = config.max_connections,
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
            // The server lets in-flight requests finish within the grace period.
            let _ = stop_tx.send(());
            server.await;
        }
        informer_task.abort();
        sampler_task.abort();
        identity_task.abort();
        views_task.abort();
        node_name_task.abort();
        fleet_task.abort();
        notices_task.abort();
        for t in [decisions_task, policy_file_task, reload_task]
            .into_iter()
            .flatten()
        {
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
