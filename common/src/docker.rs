//! bollard connections for what status-api still asks of the engine through bollard (stats
//! and logs): honour `--docker-host`/`DOCKER_HOST` like the Docker CLI, negotiate the API
//! version down to what the engine speaks, retry with backoff instead of giving up.

use std::time::Duration;

use bollard::Docker;

use crate::backoff::Backoff;
use crate::error::Error;

/// How long a request may wait for the engine's response headers. Streams (events, logs)
/// are not cut by it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects once: `host` (`unix:///path`, `tcp://h:p`, `http://h:p`) or, when `None`,
/// `DOCKER_HOST` or the default socket. Then pings and negotiates the API version.
pub async fn connect(host: Option<&str>) -> Result<Docker, Error> {
    let docker = match host {
        Some(h) => Docker::connect_with_host(h),
        None => Docker::connect_with_defaults(),
    }
    .map_err(|e| Error::docker("connect", e))?
    .with_timeout(REQUEST_TIMEOUT);
    // Negotiate before anything clones the client: clones keep the old version.
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| Error::docker("negotiate API version", e))?;
    docker.ping().await.map_err(|e| Error::docker("ping", e))?;
    Ok(docker)
}

/// Connects, retrying with backoff and logging every failed try, until it succeeds.
/// Never gives up: an agent on a host must outlive a restarting daemon.
pub async fn connect_with_retry(host: Option<&str>) -> Docker {
    let mut backoff = Backoff::default();
    let mut attempt = 1u64;
    loop {
        match connect(host).await {
            Ok(d) => {
                tracing::info!(api_version = %d.client_version(), attempt, "connected to the Docker Engine");
                return d;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "Docker Engine unreachable");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// A bollard client connected in the background (retrying until the engine answers), for
/// the calls status-api makes through bollard (stats, logs). `None` until connected.
pub fn connect_in_background(host: Option<String>) -> tokio::sync::watch::Receiver<Option<Docker>> {
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let docker = connect_with_retry(host.as_deref()).await;
        let _ = tx.send(Some(docker));
        // Keep the sender alive so receivers never see the channel closed.
        tx.closed().await;
    });
    rx
}

/// HTTP status of a Docker API error, if it was an answer from the engine.
pub fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
