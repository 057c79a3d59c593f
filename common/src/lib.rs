//! dockwarden's shared library: everything both binaries need.
//!
//! # Layout
//! - [`reference`]: image references, normalised the way Docker does (`nginx` is
//!   `docker.io/library/nginx:latest`).
//! - [`policy`]: the TOML allowlist, refused with file:line:column when bad, and what it
//!   says of a container on the facts at hand ([`policy::Policy::judge`]).
//! - [`decision`]: THE decision (policy × container facts × who we are), which every path
//!   calls: the controller's enforcer and authorization plugin, `check`, status-api.
//! - [`reload`]: hot reload of the allowlist from its watched directory, last-good semantics.
//! - [`engine`]: dockwarden's own small Docker API client (lenient JSON, the [`engine::Engine`]
//!   seam); [`container`] and [`event`]: our own pictures of a container and an event,
//!   picked leniently out of the engine's JSON.
//! - [`store`]: the in-memory picture of the host; one writer, many cheap readers.
//! - [`informer`]: list + watch of the engine into the store, with reconnect, replay and
//!   re-list; [`queue`] is its deduplicating work queue.
//! - [`http`]: the hardened HTTP/1.1 server both binaries listen with (header-read
//!   timeout, connection cap, graceful shutdown).
//! - [`probe`]: the `healthcheck` subcommand's HTTP probe (images have no curl).
//! - [`docker`]: bollard connections (status-api's stats and logs), who we are.
//! - [`identity`]: which container is this process's own (plain Docker, Swarm, a Kubernetes
//!   pod under cri-dockerd), from its mount table, cgroup and pod, as pure functions.
//! - [`metrics`]: the informer and policy metrics both binaries export under one set of names.
//! - [`backoff`], [`telemetry`], [`shutdown`], [`error`]: the plumbing both binaries share.

pub mod backoff;
pub mod container;
pub mod decision;
pub mod docker;
pub mod engine;
pub mod error;
pub mod event;
pub mod http;
pub mod identity;
pub mod informer;
pub mod metrics;
pub mod policy;
pub mod probe;
mod queue;
pub mod reference;
pub mod reload;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use error::Error;

/// Label that marks dockwarden's own containers in compose and Kubernetes manifests
/// (informational: sparing is decided by container, image and program, see [`decision`]).
pub const COMPONENT_LABEL: &str = "io.dockwarden.component";
/// Default port of the status API.
pub const STATUS_API_PORT: u16 = 8080;
/// Default address of the controller's metrics and health endpoint.
pub const CONTROLLER_METRICS_ADDR: &str = "0.0.0.0:9090";
