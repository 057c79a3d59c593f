//! A scripted engine for tests (feature `test-util`): containers and images as the engine's
//! JSON (decoded by the same functions as the real engine's answers, [`super::decode`]),
//! failures on demand (pings, inspects that fail or find the engine gone), event streams the
//! test feeds and cuts, and a record of the actions asked. For faults the real engine cannot
//! produce on demand; the real-engine tests prove the whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::container::Summary;
use super::container::{Container, ImageFacts};
use super::event::Event;
use super::{Engine, EngineError, decode};
use crate::power::{EngineDefaults, VolumeFacts};

/// What the fake holds; tests change it through [`FakeEngine::state`].
#[derive(Default)]
pub struct FakeState {
    /// Inspect answers by ID or name.
    pub containers: BTreeMap<String, Value>,
    /// Image inspect answers by ID or reference.
    pub images: HashMap<String, Value>,
    /// An image not in `images` answers as tagged `busybox:1` (else 404).
    pub any_image: bool,
    /// Pings to fail before answering.
    pub ping_failures: u32,
    /// IDs whose inspect always fails with HTTP 500.
    pub broken: Vec<String>,
    /// IDs whose inspect finds the engine unreachable (it is restarting).
    pub unreachable: Vec<String>,
    /// Every events subscription: (since, filters).
    pub subscriptions: Vec<(String, Value)>,
    /// Senders of the open container-event streams.
    pub streams: Vec<mpsc::UnboundedSender<Result<Value, EngineError>>>,
    /// List calls so far.
    pub lists: u32,
    /// Actions asked: (`kill` | `stop` | `remove`, ID).
    pub actions: Vec<(&'static str, String)>,
    /// Volume inspect answers by name.
    pub volumes: HashMap<String, Value>,
    /// What `GET /info` would tell.
    pub defaults: EngineDefaults,
    /// Installed engine plugins: name → the reference it was pulled from.
    pub plugins: HashMap<String, String>,
    /// How long each container inspect takes (the engine's round trip; none by default). A
    /// test whose consumer must run between two answers sets it: an instant fake answers a
    /// whole re-list in one burst, which no engine does.
    pub inspect_delay: Option<std::time::Duration>,
}

#[derive(Clone, Default)]
pub struct FakeEngine(Arc<Mutex<FakeState>>);

/// An error status the engine could answer.
pub fn status(code: u16) -> EngineError {
    EngineError::Status {
        what: "fake".into(),
        peer: "the fake engine".into(),
        status: code,
        message: "scripted".into(),
    }
}

/// A running container's inspect answer, as Engine 20.10 writes it (with fields the
/// decoders do not use).
pub fn inspect_json(id: &str, name: &str) -> Value {
    json!({
        "Id": id, "Name": format!("/{name}"), "Image": "sha256:img", "Path": "/bin/sleep",
        "Created": "2026-12-01T00:00:00Z",
        "State": {"Status": "running", "StartedAt": "2026-12-01T00:00:01Z"},
        "Config": {"Image": "busybox:1", "Labels": {"team": "a"}},
        "HostConfig": {"Isolation": "Default"}
    })
}

impl FakeEngine {
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    /// Adds a running container named `name`.
    pub fn add(&self, id: &str, name: &str) {
        self.state().containers.insert(id.into(), inspect_json(id, name));
    }

    /// Sends a container event to every open container stream.
    pub fn event(&self, id: &str, action: &str, name: &str, t: i64) {
        self.raw(json!({"Type": "container", "Action": action, "timeNano": t,
            "Actor": {"ID": id, "Attributes": {"name": name, "image": "busybox:1"}}}));
    }

    /// Sends one event, as the engine wrote it, to every open container stream.
    pub fn raw(&self, v: Value) {
        for tx in &self.state().streams {
            let _ = tx.send(Ok(v.clone()));
        }
    }

    /// Ends every open stream, as an engine restart does.
    pub fn cut(&self) {
        self.state().streams.clear();
    }
}

impl Engine for FakeEngine {
    async fn ping(&self) -> Result<(), EngineError> {
        let mut s = self.state();
        if s.ping_failures > 0 {
            s.ping_failures -= 1;
            return Err(status(503));
        }
        Ok(())
    }

    async fn list(&self, _label: Option<&str>) -> Result<Vec<String>, EngineError> {
        let mut s = self.state();
        s.lists += 1;
        Ok(s.containers
            .iter()
            .filter(|(k, v)| v.get("Id").and_then(Value::as_str) == Some(k.as_str()))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn summaries(&self) -> Result<Vec<Summary>, EngineError> {
        Ok(vec![])
    }

    async fn summary(&self, id: &str) -> Result<Option<Container>, EngineError> {
        let s = self.state();
        let list = s
            .containers
            .get(id)
            .map(|c| {
                vec![json!({"Id": id, "Names": [c["Name"].clone()], "Image": c["Config"]["Image"].clone(),
                   "ImageID": c["Image"].clone(), "State": "running", "Labels": c["Config"]["Labels"].clone()})]
            })
            .unwrap_or_default();
        decode::summary(Value::Array(list), id)
    }

    async fn inspect(&self, id: &str) -> Result<Container, EngineError> {
        let delay = self.state().inspect_delay;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let s = self.state();
        if s.broken.iter().any(|b| b == id) {
            return Err(status(500));
        }
        if s.unreachable.iter().any(|b| b == id) {
            return Err(EngineError::Connect {
                what: "fake".into(),
                peer: "the fake engine".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        decode::inspect(s.containers.get(id).ok_or_else(|| status(404))?, &s.defaults)
    }

    async fn volume(&self, name: &str) -> Result<Option<VolumeFacts>, EngineError> {
        Ok(self.state().volumes.get(name).map(decode::volume))
    }

    async fn defaults(&self) -> Result<EngineDefaults, EngineError> {
        Ok(self.state().defaults)
    }

    async fn plugin(&self, name: &str) -> Result<Option<String>, EngineError> {
        Ok(self.state().plugins.get(name).cloned())
    }

    async fn image(&self, id: &str) -> Result<ImageFacts, EngineError> {
        let s = self.state();
        match s.images.get(id) {
            Some(v) => Ok(decode::image(v)),
            None if s.any_image => Ok(decode::image(
                &json!({"Id": id, "RepoTags": ["busybox:1"], "RepoDigests": []}),
            )),
            None => Err(status(404)),
        }
    }

    fn events(&self, since: &str, filters: &Value) -> BoxStream<'static, Result<Event, EngineError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = self.state();
        s.subscriptions.push((since.to_string(), filters.clone()));
        if filters["type"][0] == "container" {
            s.streams.push(tx);
        } else {
            // Image streams stay open and silent: leak the sender into the state.
            std::mem::forget(tx);
        }
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
            .filter_map(|v| std::future::ready(decode::event(v)))
            .boxed()
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.state().actions.push(("kill", id.to_string()));
        Ok(())
    }

    async fn stop(&self, id: &str, _secs: u64) -> Result<(), EngineError> {
        self.state().actions.push(("stop", id.to_string()));
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.state().actions.push(("remove", id.to_string()));
        Ok(())
    }
}
