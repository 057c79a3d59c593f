//! `status-api` binary: parse arguments, set up logging, hand off to the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use status_api::config::{Cli, Command};

/// Exit code for a missing or invalid allowlist, as the controller uses.
const EXIT_BAD_POLICY: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A runtime of `--workers` threads (two by default; the snapshot builds run on tokio's
    // blocking pool): see the flag's documentation for why.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.serve.workers)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(serve(cli)),
        Err(e) => {
            eprintln!("status-api: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> ExitCode {
    if let Some(Command::Healthcheck { url }) = cli.command {
        let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/healthz", cli.serve.listen.port()));
        return common::http::probe::healthcheck(&url).await;
    }
    let args = cli.serve;
    common::telemetry::init(args.log_format);
    let config = status_api::Config {
        listen: args.listen,
        allowlist: args.allowlist,
        docker_host: args.docker_host,
        token: args.token,
        scope: args.scope.filter(|s| !s.is_empty()),
        stats_interval: Duration::from_secs(args.stats_interval),
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        controller_url: args.controller_url.filter(|u| !u.is_empty()),
        logs: args.logs,
        registry_config: args.registry_config.filter(|p| !p.as_os_str().is_empty()),
        registry_ca: args.registry_ca.filter(|p| !p.as_os_str().is_empty()),
        peers: args.peers.filter(|p| !p.is_empty()),
        node_name: args.node_name.filter(|n| !n.is_empty()),
        peer_timeout: Duration::from_secs(args.peer_timeout),
        fleet_interval: Duration::from_secs(args.fleet_interval),
        ..Default::default()
    };
    match status_api::run(config, common::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if matches!(e.downcast_ref::<common::Error>(), Some(common::Error::Policy(_))) => {
            tracing::error!(error = %e, "refusing to start without a valid allowlist");
            ExitCode::from(EXIT_BAD_POLICY)
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "status-api stopped");
            ExitCode::FAILURE
        }
    }
}
