//! bollard connections for what status-api still asks of the engine through bollard (stats
//! and logs): honour `--docker-host`/`DOCKER_HOST` like the Docker CLI, negotiate the API
//! version down to what the engine speaks, retry with backoff instead of giving up. And
//! who this process is ([`identity`]), learnt through [`crate::engine`].

use std::time::Duration;

use bollard::Docker;

use crate::backoff::Backoff;
use crate::container::ImageFacts;
use crate::engine::{Engine, EngineError};
use crate::error::Error;
use crate::reference::Reference;

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

pub use crate::decision::Identity;

/// This process's own container and image, when it runs in a container: the container ID,
/// its image ID and the names that image is known by. Retries until the engine answers:
/// sparing ourselves must never depend on luck.
pub async fn identity<E: Engine>(engine: &E) -> Identity {
    let Some(id) = own_container_id() else {
        tracing::info!("not running in a container: no container is spared as dockwarden's own");
        return Identity::default();
    };
    let mut backoff = Backoff::default();
    loop {
        match learn(engine, &id).await {
            Ok(me) => {
                tracing::info!(container = %&id[..12], image = me.image_id.as_deref().unwrap_or("?"),
                    "running in a container: this container, and containers of its image running dockwarden's own programs, are never acted on");
                return me;
            }
            Err(e) if e.status() == Some(404) => {
                tracing::warn!(container = %id, "own container ID not known to this engine; sparing by ID only");
                return Identity {
                    container_id: Some(id),
                    ..Default::default()
                };
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "cannot inspect own container yet; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn learn<E: Engine>(engine: &E, id: &str) -> Result<Identity, EngineError> {
    let c = engine.inspect(id).await?;
    let image_id = c
        .get("Image")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut names = Vec::new();
    if let Some(image) = &image_id {
        let facts = ImageFacts::from_json(&engine.image(image).await?);
        for n in facts.tags.iter().chain(&facts.digests) {
            if let Ok(r) = Reference::parse(n) {
                names.extend(r.tagged());
                names.extend(r.digested());
            }
        }
    }
    Ok(Identity {
        container_id: Some(id.to_string()),
        image_id,
        image_names: names,
    })
}

/// HTTP status of a Docker API error, if it was an answer from the engine.
pub fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The ID of the container this process runs in, if any, read from `/proc/self/mountinfo`
/// (Docker bind-mounts `/etc/hostname` etc. from `.../containers/<id>/`) with
/// `/proc/self/cgroup` as the fallback (cgroup v1 and systemd-driver paths).
pub fn own_container_id() -> Option<String> {
    let from = |text: &str| text.lines().find_map(container_id_in);
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| from(&t))
        .or_else(|| {
            std::fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|t| from(&t))
        })
}

/// Finds a 64-hex container ID after `containers/`, `docker/` or `docker-` in one line.
fn container_id_in(line: &str) -> Option<String> {
    for marker in ["/containers/", "/docker/", "docker-"] {
        let mut rest = line;
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            if id.len() == 64 {
                return Some(id);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_container_id_in_mountinfo_and_cgroup_lines() {
        let id = "a".repeat(64);
        let mi = format!("612 590 254:0 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4");
        assert_eq!(container_id_in(&mi), Some(id.clone()));
        assert_eq!(
            container_id_in(&format!("0::/system.slice/docker-{id}.scope")),
            Some(id.clone())
        );
        assert_eq!(container_id_in(&format!("12:memory:/docker/{id}")), Some(id));
        assert_eq!(container_id_in("0::/user.slice/session-1.scope"), None);
        assert_eq!(container_id_in("/var/lib/docker/containers/abc/hostname"), None);
    }
}
