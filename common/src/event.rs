//! Engine events, picked leniently out of the event stream's JSON into typed values, and the
//! container as an event shows it (for decisions that cannot wait for an inspect).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::container::{Container, Source, State, labels_of};

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
    Destroy,
    Oom,
    /// `health_status: healthy` and the like.
    HealthStatus,
    Other(String),
}

impl Action {
    pub fn parse(s: &str, attributes: &BTreeMap<String, String>) -> Action {
        match s {
            "create" => Action::Create,
            "start" => Action::Start,
            "restart" => Action::Restart,
            "unpause" => Action::Unpause,
            "pause" => Action::Pause,
            "die" => Action::Die,
            "stop" => Action::Stop,
            "kill" => Action::Kill,
            "rename" => Action::Rename {
                old_name: attributes
                    .get("oldName")
                    .map(|n| n.trim_start_matches('/').to_string()),
            },
            "update" => Action::Update,
            "destroy" => Action::Destroy,
            "oom" => Action::Oom,
            s if s.starts_with("health_status") => Action::HealthStatus,
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
            Action::HealthStatus => "health_status",
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
const HIDDEN: &[&str] = &["name", "image"];
const HIDDEN_ON_RENAME: &[&str] = &["name", "image", "oldName"];

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
        let action = v
            .get("Action")
            .and_then(Value::as_str)
            .or_else(|| v.get("status").and_then(Value::as_str))
            .unwrap_or("");
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
            action: Action::parse(action, &attributes),
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
        assert_eq!(HIDDEN_ON_RENAME, &["name", "image", "oldName"]);
    }

    #[test]
    fn odd_events_are_read_not_refused() {
        let v =
            json!({"Type": "container", "Action": "health_status: healthy", "Actor": {"ID": "x"}, "time": 3});
        let e = Event::from_json(&v).unwrap();
        assert_eq!((e.action, e.time_nano), (Action::HealthStatus, 3_000_000_000));
        let v = json!({"Type": "network", "Action": "connect", "Actor": {"ID": "n", "Attributes": {"n": 1}}});
        assert_eq!(Event::from_json(&v).unwrap().kind, Kind::Other);
        assert!(Event::from_json(&json!({"Type": "container"})).is_none());
        let v = json!({"Type": "container", "Action": "exec_died", "Actor": {"ID": "x"}});
        assert_eq!(
            Event::from_json(&v).unwrap().action,
            Action::Other("exec_died".into())
        );
    }
}
