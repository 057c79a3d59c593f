//! Command line and environment of `state-controller`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "state-controller",
    version,
    about = "Keeps a Docker host to an allowlist: kills (or stops, or removes) every container the policy does not allow."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a policy file offline and, if Docker answers, show what the controller
    /// would do to the containers there now. Exit 0 when valid, 2 when not.
    Check(CheckArgs),
    /// Probe a running controller's /healthz (for image health checks: the image has no
    /// shell or curl). Exit 0 when healthy.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The allowlist (TOML). Its directory is watched for changes.
    #[arg(long, env = "DOCKWARDEN_ALLOWLIST", global = true)]
    pub allowlist: Option<PathBuf>,
    /// Docker Engine address (unix:///var/run/docker.sock, tcp://host:2375). Default:
    /// DOCKER_HOST, else the local socket.
    #[arg(long, global = true)]
    pub docker_host: Option<String>,
    /// Address of /metrics and /healthz.
    #[arg(long, env = "DOCKWARDEN_METRICS_LISTEN", default_value = common::CONTROLLER_METRICS_ADDR)]
    pub metrics_listen: SocketAddr,
    /// Log format: text (one line per event) or json.
    #[arg(long, env = "DOCKWARDEN_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: common::telemetry::LogFormat,
    /// Govern only containers with this label (KEY=VALUE or KEY), for staged roll-outs
    /// and tests on a shared engine. Unset or empty: every container.
    #[arg(long, env = "DOCKWARDEN_SCOPE", global = true, value_parser = common::informer::parse_label_selector)]
    pub scope: Option<String>,
    /// Serve Docker's authorization-plugin protocol on this unix socket, so the engine asks
    /// before a denied container exists. The plugin's name is the file name without
    /// `.sock`: `/run/docker/plugins/dockwarden.sock` is `--authorization-plugin=dockwarden`.
    #[arg(long, env = "DOCKWARDEN_AUTHZ_SOCKET")]
    pub authz_socket: Option<PathBuf>,
    /// A Docker `config.json` whose `auths` give credentials for the registries that
    /// `signed_by` rules verify signatures in (never logged). Default: anonymous.
    #[arg(long, env = "DOCKWARDEN_REGISTRY_CONFIG", global = true)]
    pub registry_config: Option<PathBuf>,
    /// A PEM bundle of CA certificates for HTTPS registries, besides the system's (the
    /// image has none).
    #[arg(long, env = "DOCKWARDEN_REGISTRY_CA", global = true)]
    pub registry_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only validate the file; do not contact Docker.
    #[arg(long)]
    pub offline: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_run_check_and_healthcheck() {
        let c = Cli::try_parse_from(["sc", "--allowlist", "/p.toml", "--scope", "a=b"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.run.scope.as_deref(), Some("a=b"));
        assert_eq!(c.run.metrics_listen.port(), 9090);
        let c = Cli::try_parse_from(["sc", "check", "--allowlist", "/p.toml"]).unwrap();
        assert!(matches!(c.command, Some(Command::Check(_))));
        assert!(c.run.allowlist.is_some());
        let c = Cli::try_parse_from(["sc", "healthcheck"]).unwrap();
        assert!(matches!(c.command, Some(Command::Healthcheck { .. })));
        assert!(Cli::try_parse_from(["sc", "--scope", "=x"]).is_err());
        assert!(Cli::try_parse_from(["sc", "--scope", " k=x"]).is_err());
        let c = Cli::try_parse_from(["sc", "--scope", ""]).unwrap();
        assert_eq!(
            c.run.scope.as_deref(),
            Some(""),
            "empty: main treats it as unscoped"
        );
        assert!(Cli::try_parse_from(["sc", "--log-format", "xml"]).is_err());
    }
}
