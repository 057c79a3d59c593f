//! `state-controller` binary: parse arguments, set up logging, hand off to the library.

use std::process::ExitCode;

use clap::Parser;
use state_controller::check::EXIT_BAD_POLICY;
use state_controller::config::{Cli, Command};
use state_controller::{Failure, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    common::telemetry::init(cli.run.log_format);
    let scope = cli.run.scope.filter(|s| !s.is_empty());
    match cli.command {
        Some(Command::Healthcheck { url }) => common::http::probe::healthcheck(&url).await,
        Some(Command::Check(args)) => {
            let Some(path) = cli.run.allowlist else {
                eprintln!("check needs --allowlist PATH (or DOCKWARDEN_ALLOWLIST)");
                return ExitCode::from(EXIT_BAD_POLICY);
            };
            let verifier = match common::provenance::verifier_from(
                cli.run.registry_config.as_deref(),
                cli.run.registry_ca.as_deref(),
            ) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("signature verification settings: {e}");
                    return ExitCode::FAILURE;
                }
            };
            state_controller::check::run(
                &path,
                cli.run.docker_host.as_deref(),
                scope.as_deref(),
                args.offline,
                &verifier,
            )
            .await
        }
        None => {
            let Some(allowlist) = cli.run.allowlist else {
                tracing::error!("no policy: pass --allowlist PATH (or set DOCKWARDEN_ALLOWLIST)");
                return ExitCode::from(EXIT_BAD_POLICY);
            };
            let settings = Settings {
                allowlist,
                docker_host: cli.run.docker_host,
                metrics_listen: cli.run.metrics_listen,
                scope,
                authz_socket: cli.run.authz_socket.filter(|p| !p.as_os_str().is_empty()),
                registry_config: cli.run.registry_config.filter(|p| !p.as_os_str().is_empty()),
                registry_ca: cli.run.registry_ca.filter(|p| !p.as_os_str().is_empty()),
            };
            match state_controller::run(settings, common::shutdown::signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(Failure::BadPolicy(e)) => {
                    tracing::error!(error = %e, "refusing to start without a valid policy");
                    ExitCode::from(EXIT_BAD_POLICY)
                }
                Err(Failure::Other(e)) => {
                    tracing::error!(error = format!("{e:#}"), "state-controller stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
