//! Engine events, picked leniently out of the event stream's JSON into typed values, and the
//! container as an event shows it (for decisions that cannot wait for an inspect).
//!
//! Docker's and Podman's compat API write events differently; both are read here (checked
//! against Podman 4.3.1's `podman system service`, see docs/podman.md):
//! - removal is `destroy` on Docker, `remove` on Podman: both read as [`Action::Destroy`];
//! - an exit is `die` (Podman's compat endpoint maps its own `died`; its libpod endpoint
//!   does not): both read as [`Action::Die`];
//! - health is `health_status: healthy` on Docker, `health_status` with the value in a
//!   top-level `HealthStatus` field on Podman: both read as [`Action::HealthStatus`];
//! - Podman writes `containerExitCode` and `podId` into every container event's attributes,
//!   over labels of those names, as both write `name` and `image`;
//! - API 1.52+ answers drop the deprecated `status`, `id` and `from`: only `Action`,
//!   `Actor` and the times are relied on.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::engine::container::{Container, Source, State, labels_of};

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Other,
}

/// A container event's action. Anything the engine may add later is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Start,
    Restart,
    Unpause,
    Pause,
    Die,
    Stop,
    Kill,
    /// The engine's `oldName` attribute, with Docker's leading `/` removed.
    Rename {
        old_name: Option<String>,
    },
    Update,
    /// The container is gone: Docker's `destroy`, Podman's `remove`.
    Destroy,
    Oom,
    /// A health check result: Docker's `health_status: healthy`, Podman's `health_status`
    /// with the value in the event's `HealthStatus` field. `status` is that value
    /// (`healthy`, `unhealthy`, `starting`), when the event gives one.
    HealthStatus {
        status: Option<String>,
    },
    /// Anything else, as the engine wrote it (`exec_died`, Podman's `init`, `cleanup`...).
    Other(String),
}

impl Action {
    /// Reads an event's action. `health` is the event's own `HealthStatus` field (Podman),
    /// when it has one.
    pub fn parse(s: &str, attributes: &BTreeMap<String, String>, health: Option<&str>) -> Action {
        match s {
            "create" => Action::Create,
            "start" => Action::Start,
            "restart" => Action::Restart,
            "unpause" => Action::Unpause,
            "pause" => Action::Pause,
            // `died`: Podman's own name, which its libpod endpoint (and a compat endpoint
            // that forgot to map it) sends.
            "die" | "died" => Action::Die,
            "stop" => Action::Stop,
            "kill" => Action::Kill,
            "rename" => Action::Rename {
                old_name: attributes
                    .get("oldName")
                    .map(|n| n.trim_start_matches('/').to_string()),
            },
            "update" => Action::Update,
            "destroy" | "remove" => Action::Destroy,
            "oom" => Action::Oom,
            s if s.starts_with("health_status") => {
                let in_action = s
                    .strip_prefix("health_status")
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(str::trim);
                let status = in_action
                    .or(health)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string);
                Action::HealthStatus { status }
            }
            other => Action::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Restart => "restart",
            Action::Unpause => "unpause",
            Action::Pause => "pause",
            Action::Die => "die",
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Rename { .. } => "rename",
            Action::Update => "update",
            Action::Destroy => "destroy",
            Action::Oom => "oom",
            Action::HealthStatus { .. } => "health_status",
            Action::Other(s) => s,
        }
    }

    /// The state the container is in right after this action, when the action says it
    /// (create → created; start, restart, unpause → running).
    pub fn state_after(&self) -> Option<State> {
        match self {
            Action::Create => Some(State::Created),
            Action::Start | Action::Restart | Action::Unpause => Some(State::Running),
            _ => None,
        }
    }
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub action: Action,
    /// The container's (or image's) ID.
    pub id: String,
    /// For container events: the container's labels, overwritten by the engine's own keys
    /// (`name`, `image`, and per action `oldName`, `exitCode`, `signal`...).
    pub attributes: BTreeMap<String, String>,
    /// The engine's clock, nanoseconds since the epoch.
    pub time_nano: i64,
}

/// Attribute keys the engine writes over container labels in the events dockwarden judges
/// from: a rule on a label with one of these names cannot be decided from the event.
/// Docker writes `name` and `image` (and `oldName` on renames); Podman writes
/// `containerExitCode` and `podId` into every container event too.
const HIDDEN: &[&str] = &["name", "image", "containerExitCode", "podId"];
const HIDDEN_ON_RENAME: &[&str] = &["name", "image", "containerExitCode", "podId", "oldName"];

impl Event {
    /// Reads one event; `None` when it names no actor.
    pub fn from_json(v: &Value) -> Option<Event> {
        let actor = v.get("Actor");
        let id = actor
            .and_then(|a| a.get("ID"))
            .and_then(Value::as_str)
            .or_else(|| v.get("id").and_then(Value::as_str))
            .filter(|s| !s.is_empty())?
            .to_string();
        let attributes = actor
            .and_then(|a| a.get("Attributes"))
            .map(labels_of)
            .unwrap_or_default();
        let kind = match v.get("Type").and_then(Value::as_str).unwrap_or("") {
            "container" => Kind::Container,
            "image" => Kind::Image,
            _ => Kind::Other,
        };
        // `Action` first: API 1.52+ answers (Docker 29, newer Podman) no longer send `status`.
        let action = v
            .get("Action")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| v.get("status").and_then(Value::as_str))
            .unwrap_or("");
        let health = v.get("HealthStatus").and_then(Value::as_str);
        let time_nano = v
            .get("timeNano")
            .and_then(Value::as_i64)
            .or_else(|| {
                v.get("time")
                    .and_then(Value::as_i64)
                    .map(|s| s.saturating_mul(1_000_000_000))
            })
            .unwrap_or(0);
        Some(Event {
            kind,
            action: Action::parse(action, &attributes, health),
            attributes,
            id,
            time_nano,
        })
    }

    /// The container as this event shows it: name and image as given, the other
    /// attributes as labels (minus the keys the engine writes over them), the image not
    /// resolved. `None` when the event does not say the container's state or lacks a name
    /// or an image.
    pub fn container(&self) -> Option<Container> {
        let state = self.action.state_after()?;
        let name = self.attributes.get("name")?.trim_start_matches('/');
        let image = self.attributes.get("image")?;
        if name.is_empty() || image.is_empty() {
            return None;
        }
        let hidden = if matches!(self.action, Action::Rename { .. }) {
            HIDDEN_ON_RENAME
        } else {
            HIDDEN
        };
        let labels = self
            .attributes
            .iter()
            .filter(|(k, _)| !hidden.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Container {
            id: self.id.clone(),
            name: name.to_string(),
            image: image.clone(),
            state,
            labels,
            source: Source::Event,
            hidden_labels: hidden,
            power: crate::power::Power::unknown("an event does not show what it asks of the host"),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_docker_events() {
        let v = json!({"status": "start", "id": "abc", "from": "busybox", "Type": "container",
            "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox", "team": "a"}},
            "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789_i64});
        let e = Event::from_json(&v).unwrap();
        assert_eq!(
            (e.kind, &e.action, e.id.as_str()),
            (Kind::Container, &Action::Start, "abc")
        );
        assert_eq!(e.time_nano, 1_700_000_000_123_456_789);
        let c = e.container().unwrap();
        assert_eq!(
            (c.name.as_str(), c.image.as_str(), c.state),
            ("web", "busybox", State::Running)
        );
        assert_eq!(c.labels.len(), 1);
        assert_eq!(c.source, Source::Event);
        assert!(!c.image_resolved());
    }

    #[test]
    fn renames_keep_the_old_name_and_hide_the_label_it_overwrites() {
        let v = json!({"Type": "container", "Action": "rename",
            "Actor": {"ID": "abc", "Attributes": {"name": "new", "image": "i", "oldName": "/old"}}, "timeNano": 5});
        let e = Event::from_json(&v).unwrap();
        assert_eq!(
            e.action,
            Action::Rename {
                old_name: Some("old".into())
            }
        );
        assert!(
            e.container().is_none(),
            "a rename does not say the state: the inspect decides"
        );
        assert!(HIDDEN_ON_RENAME.contains(&"oldName") && HIDDEN_ON_RENAME.starts_with(HIDDEN));
    }

    #[test]
    fn odd_events_are_read_not_refused() {
        let v =
            json!({"Type": "container", "Action": "health_status: healthy", "Actor": {"ID": "x"}, "time": 3});
        let e = Event::from_json(&v).unwrap();
        assert_eq!(
            (e.action, e.time_nano),
            (
                Action::HealthStatus {
                    status: Some("healthy".into())
                },
                3_000_000_000
            )
        );
        let v = json!({"Type": "network", "Action": "connect", "Actor": {"ID": "n", "Attributes": {"n": 1}}});
        assert_eq!(Event::from_json(&v).unwrap().kind, Kind::Other);
        assert!(Event::from_json(&json!({"Type": "container"})).is_none());
        let v = json!({"Type": "container", "Action": "exec_died", "Actor": {"ID": "x"}});
        assert_eq!(
            Event::from_json(&v).unwrap().action,
            Action::Other("exec_died".into())
        );
    }

    // Podman 4.3.1's compat endpoint (`GET /events`, unversioned), captured from a real
    // `podman system service`: every container event carries the deprecated `status`, `id`
    // and `from`, the labels (`team`), and Podman's own `containerExitCode` and `podId`.
    fn podman(action: &str, extra: Value) -> Value {
        let mut v = json!({"status": action, "id": "f580732fa738", "from": "localhost/dwtest-podman-sleeper:latest",
            "Type": "container", "Action": action,
            "Actor": {"ID": "f580732fa738", "Attributes": {"containerExitCode": "0",
                "image": "localhost/dwtest-podman-sleeper:latest", "name": "dwtest-podman-exp1", "podId": "", "team": "a"}},
            "scope": "local", "time": 1_796_224_674, "timeNano": 1_796_224_674_656_028_791_i64});
        if let (Some(o), Value::Object(extra)) = (v.as_object_mut(), extra) {
            o.extend(extra);
        }
        v
    }

    #[test]
    fn reads_podman_create_and_start_with_its_own_attributes_hidden() {
        let e = Event::from_json(&podman("create", json!({}))).unwrap();
        assert_eq!((e.kind, &e.action), (Kind::Container, &Action::Create));
        let c = e.container().unwrap();
        assert_eq!(
            (c.name.as_str(), c.image.as_str(), c.state),
            (
                "dwtest-podman-exp1",
                "localhost/dwtest-podman-sleeper:latest",
                State::Created
            )
        );
        // Only the real label is a label: Podman's keys overwrite labels of those names,
        // so a rule on a label `podId` or `containerExitCode` waits for the inspect.
        assert_eq!(c.labels, BTreeMap::from([("team".to_string(), "a".to_string())]));
        assert!(c.hidden_labels.contains(&"podId") && c.hidden_labels.contains(&"containerExitCode"));
        let e = Event::from_json(&podman("start", json!({}))).unwrap();
        assert_eq!(e.container().unwrap().state, State::Running);
    }

    #[test]
    fn podman_removal_exit_and_health_read_as_dockers() {
        assert_eq!(
            Event::from_json(&podman("remove", json!({}))).unwrap().action,
            Action::Destroy
        );
        // The compat endpoint maps `died` to `die`; the libpod endpoint does not.
        assert_eq!(
            Event::from_json(&podman("die", json!({}))).unwrap().action,
            Action::Die
        );
        assert_eq!(
            Event::from_json(&podman("died", json!({}))).unwrap().action,
            Action::Die
        );
        let e = Event::from_json(&podman("health_status", json!({"HealthStatus": "unhealthy"}))).unwrap();
        assert_eq!(
            e.action,
            Action::HealthStatus {
                status: Some("unhealthy".into())
            }
        );
        assert_eq!(e.action.as_str(), "health_status");
        assert!(e.container().is_none(), "a health change does not say the state");
        // Docker's form wins over a stray field; an empty value is no value.
        let v = json!({"Type": "container", "Action": "health_status: healthy", "HealthStatus": "x", "Actor": {"ID": "a"}});
        assert_eq!(
            Event::from_json(&v).unwrap().action,
            Action::HealthStatus {
                status: Some("healthy".into())
            }
        );
        let e = Event::from_json(&podman("health_status", json!({"HealthStatus": ""}))).unwrap();
        assert_eq!(e.action, Action::HealthStatus { status: None });
    }

    #[test]
    fn podman_exec_events_and_its_other_actions_are_other() {
        for a in ["exec", "exec_died", "init", "cleanup", "mount", "sync"] {
            let e = Event::from_json(&podman(a, json!({}))).unwrap();
            assert_eq!(e.action, Action::Other(a.into()));
            assert!(e.container().is_none(), "{a} says nothing of the state");
        }
    }

    #[test]
    fn podman_renames_carry_no_old_name() {
        let e = Event::from_json(&podman("rename", json!({}))).unwrap();
        assert_eq!(e.action, Action::Rename { old_name: None });
        assert!(e.container().is_none());
    }

    #[test]
    fn newer_api_versions_without_status_id_and_from_are_read() {
        // API 1.52+: `status`, `id` and `from` are gone (or empty).
        let mut v = podman("start", json!({}));
        let o = v.as_object_mut().unwrap();
        o.remove("status");
        o.remove("id");
        o.remove("from");
        let e = Event::from_json(&v).unwrap();
        assert_eq!((e.id.as_str(), &e.action), ("f580732fa738", &Action::Start));
        let v = json!({"status": "", "id": "", "Type": "container", "Action": "stop", "Actor": {"ID": "b"}, "timeNano": 7});
        let e = Event::from_json(&v).unwrap();
        assert_eq!((e.id.as_str(), &e.action, e.time_nano), ("b", &Action::Stop, 7));
        // Only the deprecated fields (an old engine): still read.
        let v = json!({"status": "destroy", "id": "c", "time": 1});
        assert_eq!(Event::from_json(&v).unwrap().action, Action::Destroy);
    }
}
