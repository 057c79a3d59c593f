//! dockwarden's shared library: everything both binaries need.
//!
//! # Layout
//! - [`decision`]: THE decision (policy × container facts × who we are), which every path
//!   calls: the controller's enforcer and authorization plugin, `check`, status-api.
//! - [`policy`]: the TOML allowlist ([`policy::parse`]: refused with file:line:column when
//!   bad), what its rules say of a container on the facts at hand ([`policy::judge`]), and
//!   image references normalised the way Docker does ([`policy::reference`]).
//! - [`power`]: host power: what a container asks of the host (privileged, host namespaces,
//!   host paths, capabilities, devices, unconfined options, sysctls), read alike from a
//!   create body, an exec, a service or an inspect, and how a rule's grants judge it under
//!   the policy's profile.
//! - [`reload`]: hot reload of the allowlist from its watched directory, last-good semantics.
//! - [`engine`]: the Docker Engine API over the one HTTP client (the [`engine::Engine`]
//!   seam), and our own pictures of a container ([`engine::container`]) and an event
//!   ([`engine::event`]), picked leniently out of the engine's JSON.
//! - [`informer`]: list + watch of the engine into the [`informer::store`] (the in-memory
//!   picture of the host: one writer, many cheap readers), with reconnect, replay and
//!   re-list; its inspect workers and deduplicating work queue.
//! - [`http`]: the one HTTP client ([`http::client`]), the hardened HTTP/1.1 server both
//!   binaries listen with ([`http::server`]), the `healthcheck` probe ([`http::probe`]).
//! - [`identity`]: which container is this process's own (plain Docker, Swarm, a Kubernetes
//!   pod under cri-dockerd), from its mount table, cgroup and pod ([`identity::discover`]).
//! - [`metrics`]: the informer and policy metrics both binaries export under one set of names.
//! - [`provenance`]: cosign key-pair signatures of registry digests: keys, the registry
//!   client, verification as cosign stores signatures, and the cached [`provenance::Verifier`].
//! - [`backoff`], [`telemetry`], [`shutdown`], [`error`]: the plumbing both binaries share.

pub mod backoff;
pub mod decision;
pub mod engine;
pub mod error;
pub mod http;
pub mod identity;
pub mod informer;
pub mod metrics;
pub mod policy;
pub mod power;
pub mod provenance;
pub mod reload;
pub mod shutdown;
pub mod telemetry;

pub use error::Error;

/// Label that marks dockwarden's own containers in compose and Kubernetes manifests
/// (informational: sparing is decided by container, image and program, see [`decision`]).
pub const COMPONENT_LABEL: &str = "io.dockwarden.component";
/// Default port of the status API.
pub const STATUS_API_PORT: u16 = 8080;
/// Default address of the controller's metrics and health endpoint.
pub const CONTROLLER_METRICS_ADDR: &str = "0.0.0.0:9090";
