//! dockwarden's shared library: everything both binaries need.
//!
//! # Layout
//! - [`reference`]: image references, normalised the way Docker does (`nginx` is
//!   `docker.io/library/nginx:latest`).
//! - [`policy`]: the TOML allowlist, refused with file:line:column when bad, and the pure
//!   decision [`policy::Policy::evaluate`].
//! - [`reload`]: hot reload of the allowlist from its watched directory, last-good semantics.
//! - [`container`]: our own picture of one container, converted from bollard at the edge.
//! - [`store`]: the in-memory picture of the host; one writer, many cheap readers.
//! - [`informer`]: list + watch of the engine into the store, with reconnect, replay and
//!   re-list; [`queue`] is its deduplicating work queue.
//! - [`http`]: the hardened HTTP/1.1 server both binaries listen with (header-read
//!   timeout, connection cap, graceful shutdown).
//! - [`probe`]: the `healthcheck` subcommand's HTTP probe (images have no curl).
//! - [`docker`]: connecting (`DOCKER_HOST`, version negotiation, retry), own container ID.
//! - [`backoff`], [`telemetry`], [`shutdown`], [`error`]: the plumbing both binaries share.

pub mod backoff;
pub mod container;
pub mod docker;
pub mod error;
pub mod http;
pub mod informer;
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
/// (informational: sparing is decided by image, see the controller).
pub const COMPONENT_LABEL: &str = "io.dockwarden.component";
/// Default port of the status API.
pub const STATUS_API_PORT: u16 = 8080;
/// Default address of the controller's metrics and health endpoint.
pub const CONTROLLER_METRICS_ADDR: &str = "0.0.0.0:9090";
