//! HTTP, both ways: [`server`] is the hardened HTTP/1.1 server both binaries listen with
//! (header-read timeout, connection cap, graceful shutdown); [`probe`] is the `healthcheck`
//! subcommand's request; [`tls`] holds the client's settings for HTTPS peers (registries).

pub mod client;
pub mod probe;
pub mod server;
pub mod tls;

pub use server::{Limits, Stats, serve, serve_warp};
