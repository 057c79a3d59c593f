//! The engine's own record of what happened to containers: replayed from its history, or
//! recorded live (the engine replays only its last 256 events, of every user of the engine,
//! so a test or bench that makes more than a few dozen containers must read the stream as
//! it happens).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;

use crate::time::{engine_time_arg, now_nano};

/// The engine's record of container events since `since_nano` (until now), filtered.
pub async fn engine_events(
    docker: &Docker,
    since_nano: i64,
    filters: &HashMap<&str, Vec<&str>>,
) -> Vec<EventMessage> {
    let opts = EventsOptionsBuilder::default()
        .since(&engine_time_arg(since_nano))
        .until(&engine_time_arg(now_nano() + 1_000_000))
        .filters(filters)
        .build();
    docker
        .events(Some(opts))
        .filter_map(|e| async move { e.ok() })
        .collect()
        .await
}

/// Actions (`create`, `start`, `kill`, `die`, ...) the engine recorded for one container.
pub async fn actions_of(docker: &Docker, since_nano: i64, id: &str) -> Vec<String> {
    let f = HashMap::from([("container", vec![id])]);
    engine_events(docker, since_nano, &f)
        .await
        .into_iter()
        .filter_map(|e| e.action)
        .collect()
}

/// Container ID -> every (action, engine time in ns) seen for it, in order.
type Seen = Arc<Mutex<HashMap<String, Vec<(String, i64)>>>>;

/// The engine's container events carrying one label, recorded live from the moment it is
/// started (and one second before). When the engine closes the stream (Podman does when it
/// rotates its events file) recording follows on from the last event seen.
pub struct EventLog {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    /// Records container events carrying `label` (`key=value`), from one second ago.
    pub fn start(docker: &Docker, label: &str) -> EventLog {
        Self::start_since(docker, label, now_nano() - 1_000_000_000)
    }

    /// Records container events carrying `label`, from engine time `since` (ns).
    pub fn start_since(docker: &Docker, label: &str, since: i64) -> EventLog {
        let seen: Seen = Arc::default();
        let (docker, label, out) = (docker.clone(), label.to_string(), seen.clone());
        let task = tokio::spawn(async move {
            let filters = HashMap::from([("type", vec!["container"]), ("label", vec![label.as_str()])]);
            let mut since = since;
            let mut latest = since;
            loop {
                let opts = EventsOptionsBuilder::default()
                    .since(&engine_time_arg(since))
                    .filters(&filters)
                    .build();
                let mut events = docker.events(Some(opts));
                while let Some(Ok(e)) = events.next().await {
                    let (Some(id), Some(action), Some(t)) =
                        (e.actor.and_then(|a| a.id), e.action, e.time_nano)
                    else {
                        continue;
                    };
                    // The engine stamps an event before it publishes it: the events of
                    // containers acted on at once arrive slightly out of time order, so
                    // none is dropped for its time; only the exact repeats a resumed
                    // stream replays are.
                    let mut map = out.lock().unwrap_or_else(|p| p.into_inner());
                    let list = map.entry(id).or_default();
                    if !list.iter().any(|(a, at)| *at == t && *a == action) {
                        list.push((action, t));
                    }
                    latest = latest.max(t);
                }
                // Resume a second before the latest event seen, to catch the late-stamped.
                since = latest - 1_000_000_000;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        EventLog { seen, task }
    }

    /// Every (action, engine time in ns) seen for one container, in order of arrival.
    pub fn of(&self, id: &str) -> Vec<(String, i64)> {
        let map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).cloned().unwrap_or_default()
    }

    /// Engine time of the first `action` of a container.
    pub fn first(&self, id: &str, action: &str) -> Option<i64> {
        self.of(id).into_iter().find(|(a, _)| a == action).map(|(_, t)| t)
    }

    /// Whether the container ever had `action` (`kill`, `die`, `destroy`, ...).
    pub fn saw(&self, id: &str, action: &str) -> bool {
        self.first(id, action).is_some()
    }

    /// Everything recorded so far: container ID -> its (action, time) list.
    pub fn snapshot(&self) -> HashMap<String, Vec<(String, i64)>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
