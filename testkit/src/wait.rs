//! Waits on things the tests can observe (a container's state, a condition polled), in
//! place of fixed sleeps.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::{SCOPE_LABEL, Scope};

/// Polls `f` every 20 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks that `f` stays true for all of `period` (polled every 20 ms); fails on the first
/// time it is not. For "nothing happens" checks: they end as soon as something does.
pub async fn stays<F, Fut>(period: Duration, what: &str, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < deadline {
        if !f().await {
            bail!("{what}: no longer true");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The state (`running`, `exited`, ...) of a container, or `None` if it does not exist.
pub async fn state_of(docker: &Docker, id: &str) -> Option<String> {
    let c = docker.inspect_container(id, None).await.ok()?;
    c.state.and_then(|s| s.status).map(|s| s.to_string())
}

/// Waits until the container's state is `want` (`None`: gone).
pub async fn wait_state(docker: &Docker, id: &str, want: Option<&str>, within: Duration) -> Result<()> {
    eventually(within, &format!("{id} to be {want:?}"), || async {
        (state_of(docker, id).await.as_deref() == want).then_some(())
    })
    .await
}

/// Every container of a scope: ID -> (name without the scope prefix, state).
pub async fn scope_states(docker: &Docker, scope: &Scope) -> HashMap<String, (String, String)> {
    let label = format!("{SCOPE_LABEL}={}", scope.id);
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let prefix = format!("/{}-", scope.id);
    docker
        .list_containers(Some(opts))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches(&prefix).to_string();
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            Some((c.id?, (name, state)))
        })
        .collect()
}

/// Waits until no container among `ids` is running (or restarting, or paused); returns the
/// names of those still running at `timeout`.
pub async fn wait_none_running(
    docker: &Docker,
    scope: &Scope,
    ids: &[String],
    timeout: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let states = scope_states(docker, scope).await;
        let running: Vec<String> = ids
            .iter()
            .filter_map(|id| states.get(id))
            .filter(|(_, s)| matches!(s.as_str(), "running" | "restarting" | "paused"))
            .map(|(n, _)| n.clone())
            .collect();
        if running.is_empty() || tokio::time::Instant::now() > deadline {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that every container of `ids` (of `scope`) stays `running` for all of `period`.
pub async fn stays_running(docker: &Docker, scope: &Scope, ids: &[&str], period: Duration) -> Result<()> {
    stays(period, "every allowed container running", || async {
        let states = scope_states(docker, scope).await;
        ids.iter()
            .all(|id| states.get(*id).is_some_and(|(_, s)| s == "running"))
    })
    .await
}
