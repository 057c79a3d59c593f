//! bollard connections for what status-api still asks of the engine through bollard (stats
//! and logs): honour `--docker-host`/`DOCKER_HOST` like the Docker CLI, negotiate the API
//! version down to what the engine speaks, retry with backoff instead of giving up. And
//! who this process is ([`identity`]), learnt through [`crate::engine`].

use std::time::Duration;

use bollard::Docker;

use crate::backoff::Backoff;
use crate::engine::container::ImageFacts;
use crate::engine::{Engine, EngineError};
use crate::error::Error;
use crate::policy::reference::Reference;

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
/// its image ID and the names that image is known by. The container is found by
/// [`crate::identity`] (the root overlay, the cgroup, the mounted per-container files, the
/// pod); under cri-dockerd the mounted files name the pod's sandbox, never taken for ours.
/// Retries until the engine answers: sparing ourselves must never depend on luck.
pub async fn identity<E: Engine>(engine: &E) -> Identity {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let clues = crate::identity::clues(
        &read("/proc/self/mountinfo"),
        &read("/proc/self/cgroup"),
        &read("/etc/hostname"),
        crate::identity::pod_from_env(|k| std::env::var(k).ok()),
    );
    if clues.upper_dir.is_none()
        && clues.cgroup_id.is_none()
        && clues.mounted_ids.is_empty()
        && clues.pod.is_none()
    {
        tracing::info!("not running in a container: no container is spared as dockwarden's own");
        return Identity::default();
    }
    let mut backoff = Backoff::default();
    loop {
        let found = match find_own(engine, &clues).await {
            Ok(Some(choice)) => learn(engine, &choice.id).await.map(|me| Some((me, choice))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match found {
            Ok(Some((me, choice))) => {
                tracing::info!(container = %&choice.id[..choice.id.len().min(12)], found_by = %choice.by,
                    image = me.image_id.as_deref().unwrap_or("?"),
                    "running in a container: this container, and containers of its image running dockwarden's own programs, are never acted on");
                return me;
            }
            Ok(None) => {
                tracing::warn!(clues = ?clues,
                    "running in a container, but which one cannot be told: no container is spared as dockwarden's own");
                return Identity::default();
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "cannot look up our own container yet; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Lists the containers, inspects the shortlisted ones for their upper directory, and
/// picks ours.
async fn find_own<E: Engine>(
    engine: &E,
    clues: &crate::identity::Clues,
) -> Result<Option<crate::identity::Choice>, EngineError> {
    use serde_json::Value;
    let listed = engine.summaries().await?;
    let mut summaries: Vec<crate::identity::Summary> = listed
        .iter()
        .map(|c| crate::identity::Summary {
            id: c.get("Id").and_then(Value::as_str).unwrap_or("").to_string(),
            labels: crate::engine::container::labels_of(c.get("Labels").unwrap_or(&Value::Null)),
            live: crate::engine::container::State::from_engine(
                c.get("State").and_then(Value::as_str).unwrap_or(""),
            )
            .is_live(),
            bind_sources: match c.get("Mounts") {
                Some(Value::Array(m)) => m
                    .iter()
                    .filter(|m| m.get("Type").and_then(Value::as_str) == Some("bind"))
                    .filter_map(|m| m.get("Source").and_then(Value::as_str).map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            },
            upper_dir: None,
        })
        .filter(|s| !s.id.is_empty())
        .collect();
    for id in crate::identity::shortlist(clues, &summaries) {
        match engine.inspect(&id).await {
            Ok(v) => {
                let upper = v
                    .pointer("/GraphDriver/Data/UpperDir")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(s) = summaries.iter_mut().find(|s| s.id == id) {
                    s.upper_dir = upper;
                }
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(crate::identity::choose(clues, &summaries))
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
