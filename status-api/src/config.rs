//! Command line and environment of `status-api`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Threads that serve requests unless `--workers` says otherwise (see the flag).
pub const DEFAULT_WORKERS: usize = 2;

#[derive(Debug, Parser)]
#[command(
    name = "status-api",
    version,
    about = "Reports every container's state, health, resources and allowlist verdict over HTTP \
             (JSON for programs, a web page for browsers)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe a running status-api's /healthz (for image health checks: the image has no
    /// shell or curl). Exit 0 on HTTP 200, 1 otherwise.
    Healthcheck {
        /// Default: http://127.0.0.1:<port of --listen/STATUS_API_LISTEN>/healthz.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to serve on.
    #[arg(long, env = "STATUS_API_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The allowlist (TOML), to report each container's verdict. Its directory is watched
    /// for changes, like the controller does.
    #[arg(long, env = "DOCKWARDEN_ALLOWLIST")]
    pub allowlist: Option<PathBuf>,
    /// Docker Engine address (unix:///var/run/docker.sock, tcp://host:2375). Default:
    /// DOCKER_HOST, else the local socket.
    #[arg(long)]
    pub docker_host: Option<String>,
    /// Bearer token required on every route but /healthz. Prefer the environment variable:
    /// command lines are visible to every user of the host. Empty: no token.
    #[arg(long, env = "STATUS_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Report only containers with this label (KEY=VALUE or KEY), like the controller's
    /// --scope. Unset or empty: every container.
    #[arg(long, env = "DOCKWARDEN_SCOPE", value_parser = common::informer::parse_label_selector)]
    pub scope: Option<String>,
    /// Threads that serve requests. Two by default, one per core of a small node: at 100
    /// containers (53 KB answers) most of a request's time is the kernel copying the answer
    /// into the socket, and one thread served 0.77x of what the build before issues 17-20
    /// (tokio's default, one thread per core) served in the same run; two threads 1.1x.
    /// The slowest answers do not tell the two apart on 2 cores (1,000 containers, gzip,
    /// eight alternating rounds: p99 median 177 ms with two, 150 ms with one, both swinging
    /// between 12 and 544 ms with the machine; docs/status-api-performance.md). More threads
    /// only add memory and contention: the answers are bytes made in advance.
    #[arg(long, env = "STATUS_API_WORKERS", default_value_t = DEFAULT_WORKERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub workers: usize,
    /// Seconds between two rounds of CPU and memory sampling.
    #[arg(long, env = "STATUS_API_STATS_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stats_interval: u64,
    /// The controller's metrics address, to show what it did (its `GET /decisions`), e.g.
    /// http://state-controller:9090. Unset or empty: no decisions on the page.
    #[arg(long, env = "DOCKWARDEN_CONTROLLER_URL")]
    pub controller_url: Option<String>,
    /// Serve /containers/{id}/logs without a token. Logs often carry secrets: the route is
    /// off unless a token is set or this is given (yes/no/1/0/true/false/on/off).
    #[arg(long, env = "DOCKWARDEN_LOGS", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub logs: bool,
    /// Seconds a client has to send a whole request head; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "STATUS_API_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Connections open at once; more wait until one closes.
    #[arg(long, env = "STATUS_API_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// The fleet view's peers: HOST:PORT, a name that resolves to every node's status-api
    /// (Swarm: tasks.status-api:8080; Kubernetes: a headless Service, status-api-peers:8080),
    /// re-resolved every 10 s, or a comma-separated list. Unset or empty: no fleet view
    /// (/fleet answers 404).
    #[arg(long, env = "DOCKWARDEN_PEERS")]
    pub peers: Option<String>,
    /// This node's name in the fleet view. Default: the Docker Engine's name (GET /info).
    /// Swarm: {{.Node.Hostname}}; Kubernetes: spec.nodeName through the downward API.
    #[arg(long, env = "DOCKWARDEN_NODE_NAME")]
    pub node_name: Option<String>,
    /// Seconds each peer has to answer a round (its /node, /containers and /decisions).
    #[arg(long, env = "DOCKWARDEN_PEER_TIMEOUT", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub peer_timeout: u64,
    /// Seconds between two rounds of asking the peers.
    #[arg(long, env = "DOCKWARDEN_FLEET_INTERVAL", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub fleet_interval: u64,
    /// Log format: text (one line per event) or json.
    #[arg(long, env = "DOCKWARDEN_LOG_FORMAT", default_value = "text")]
    pub log_format: common::telemetry::LogFormat,
    /// A Docker `config.json` with credentials for the registries that `signed_by` rules
    /// verify signatures in (as the controller's). Default: anonymous.
    #[arg(long, env = "DOCKWARDEN_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// A PEM bundle of CA certificates for HTTPS registries, besides the system's.
    #[arg(long, env = "DOCKWARDEN_REGISTRY_CA")]
    pub registry_ca: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_serve_and_healthcheck() {
        let c = Cli::try_parse_from(["s"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.serve.listen.port(), 8080);
        assert_eq!(c.serve.stats_interval, 5);
        assert_eq!(c.serve.workers, 2);
        assert_eq!(
            Cli::try_parse_from(["s", "--workers", "4"])
                .unwrap()
                .serve
                .workers,
            4
        );
        assert!(Cli::try_parse_from(["s", "--workers", "0"]).is_err());
        let c = Cli::try_parse_from([
            "s",
            "--listen",
            "127.0.0.1:0",
            "--allowlist",
            "/a.toml",
            "--token",
            "t",
            "--scope",
            "k=v",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.serve.token.as_deref(), Some("t"));
        assert_eq!(c.serve.scope.as_deref(), Some("k=v"));
        assert_eq!(c.serve.log_format, common::telemetry::LogFormat::Json);
        let c = Cli::try_parse_from(["s", "healthcheck", "--url", "http://127.0.0.1:1/healthz"]).unwrap();
        assert!(matches!(c.command, Some(Command::Healthcheck { url: Some(_) })));
        assert!(Cli::try_parse_from(["s", "--listen", "nope"]).is_err());
        assert!(Cli::try_parse_from(["s", "--scope", "=v"]).is_err());
        assert!(Cli::try_parse_from(["s", "--stats-interval", "0"]).is_err());
        assert!(Cli::try_parse_from(["s", "--log-format", "xml"]).is_err());
        assert!(!c_default().serve.logs);
        let c = Cli::try_parse_from([
            "s",
            "--logs",
            "--controller-url",
            "http://c:9090",
            "--max-connections",
            "10",
        ])
        .unwrap();
        assert!(c.serve.logs);
        assert_eq!(c.serve.controller_url.as_deref(), Some("http://c:9090"));
        assert_eq!((c.serve.max_connections, c.serve.header_read_timeout), (10, 10));
        assert!(Cli::try_parse_from(["s", "--header-read-timeout", "0"]).is_err());
        let c = Cli::try_parse_from([
            "s",
            "--peers",
            "tasks.status-api:8080",
            "--node-name",
            "n1",
            "--peer-timeout",
            "5",
        ])
        .unwrap();
        assert_eq!(c.serve.peers.as_deref(), Some("tasks.status-api:8080"));
        assert_eq!(
            (
                c.serve.node_name.as_deref(),
                c.serve.peer_timeout,
                c.serve.fleet_interval
            ),
            (Some("n1"), 5, 2)
        );
        assert!(Cli::try_parse_from(["s", "--peer-timeout", "0"]).is_err());
    }

    fn c_default() -> Cli {
        Cli::try_parse_from(["s"]).unwrap()
    }
}
