//! Our own picture of one container, picked leniently out of the engine's JSON (inspect, list,
//! events) so that a field dockwarden does not use can never stop a judgement: unknown enum
//! values stay strings, odd types read as absent. The environment is never copied: it holds
//! secrets.
//!
//! A [`Container`] says how complete it is: built from an inspect (everything known), from
//! an event (name, image as given and labels only: the image is not resolved), or, when the
//! engine's metadata cannot be read after bounded tries, from what the list call shows with
//! [`Container::problem`] saying why the rest is missing (such a container is judged on what
//! is known and denied when that does not settle it: fail closed).
//!
//! Labels are judged whole but stored bounded ([`Container::bounded`]): a container with
//! megabytes of labels must not grow the agents' memory without bound.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::power::{EngineDefaults, Power};

/// Label values longer than this (key + value bytes) are not kept in the stored copy.
pub const LABEL_ENTRY_MAX: usize = 4 << 10;
/// At most this many bytes of labels (keys + values) are kept per stored container.
pub const LABELS_MAX: usize = 64 << 10;

/// Docker's container states, plus `Unknown` for anything else a newer engine or Podman may
/// report (kept as `state_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    #[default]
    Unknown,
}

impl State {
    /// Every state, in the order lists and metrics show them.
    pub const ALL: [State; 8] = [
        State::Created,
        State::Running,
        State::Paused,
        State::Restarting,
        State::Removing,
        State::Exited,
        State::Dead,
        State::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Restarting => "restarting",
            State::Removing => "removing",
            State::Exited => "exited",
            State::Dead => "dead",
            State::Unknown => "unknown",
        }
    }

    /// Parses one of dockwarden's own state names (`running`, `exited`, ...), strictly:
    /// for query parameters and the like.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Reads the state an engine reports (`running`, `exited`, ...), leniently. Podman's
    /// `configured` and `initialized` are containers not yet started: `created`. Stopping
    /// containers still run. Anything else is `Unknown`.
    pub fn from_engine(s: &str) -> State {
        match s.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => State::Created,
            "running" | "stopping" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "removing" => State::Removing,
            "exited" | "stopped" => State::Exited,
            "dead" => State::Dead,
            _ => State::Unknown,
        }
    }

    /// Running, about to run (created, restarting) or frozen while running (paused): the
    /// states the controller governs. A state it cannot read counts as live (fail closed:
    /// acting on a container that is not running is harmless, the engine says 409).
    pub fn is_live(self) -> bool {
        !matches!(self, State::Exited | State::Dead | State::Removing)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published or exposed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub private_port: u16,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// How much of a container's metadata this picture holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From an inspect: the image is resolved (ID, repo tags and digests).
    #[default]
    Inspect,
    /// From an event's attributes: name, image as given and labels; the image is not
    /// resolved, and the attributes hide labels named like the event's own keys.
    Event,
    /// From the list call, because inspect kept failing: see [`Container::problem`].
    List,
}

/// Everything dockwarden knows about one container. `Default` is for tests and examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The reference as given to `docker run` (`Config.Image`), never rewritten to an ID.
    pub image: String,
    /// The image's ID (`sha256:…`) once resolved; empty when not known.
    pub image_id: String,
    pub state: State,
    /// RFC 3339, as Docker reports it.
    pub created: String,
    /// RFC 3339; absent when the container never started.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    /// Docker's own healthcheck status (`starting`, `healthy`, `unhealthy`), when it has one.
    pub health: Option<String>,
    pub restart_count: i64,
    pub ports: Vec<Port>,
    pub labels: BTreeMap<String, String>,
    /// The image's repo tags (`nginx:1.27`): digest-free names the image is known by here.
    pub image_tags: Vec<String>,
    /// The image's repo digests (`nginx@sha256:…`): what digest rules match. Images built
    /// or imported locally have none.
    pub image_digests: Vec<String>,
    /// The program the container runs (inspect's `Path`): dockwarden spares containers of
    /// its own image only when they run one of its own programs.
    #[serde(skip)]
    pub path: String,
    /// Whether a mount covers `path`: then the program is not the image's.
    #[serde(skip)]
    pub path_mounted: bool,
    /// `Config.Tty`: its log is raw bytes, not stdout/stderr frames.
    #[serde(skip)]
    pub tty: bool,
    /// `GraphDriver.Data.UpperDir`: how a process finds its own container
    /// ([`crate::identity`]).
    #[serde(skip)]
    pub upper_dir: Option<String>,
    /// What it asks of the host ([`crate::power`]): read from an inspect, resolved by the
    /// informer; unknown when seen through an event or the list only. `Default` (tests,
    /// examples) asks nothing.
    #[serde(skip)]
    pub power: Power,
    /// How much of this is known.
    #[serde(skip)]
    pub source: Source,
    /// The name is not known yet (a Swarm service's tasks are named when they are made):
    /// name rules cannot settle it.
    #[serde(skip)]
    pub name_unknown: bool,
    /// Label keys the source could not show (an event's attributes overwrite labels named
    /// `name`, `image`, and on renames `oldName`).
    #[serde(skip)]
    pub hidden_labels: &'static [&'static str],
    /// True when labels were left out of this copy to bound memory ([`Container::bounded`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub labels_cut: bool,
    /// Why this container's metadata could not be read whole (it is judged on what is
    /// known, and denied when that does not settle it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What an image inspect tells: the ID, the names it is known by, and its user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub id: String,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    /// `Config.User` (empty: root): who a container runs as when its request sets no user.
    pub user: String,
}

impl ImageFacts {
    pub fn from_json(v: &Value) -> ImageFacts {
        ImageFacts {
            id: str_at(v, &["Id"]).to_string(),
            tags: strings_at(v, "RepoTags"),
            digests: strings_at(v, "RepoDigests"),
            user: str_at(v, &["Config", "User"]).to_string(),
        }
    }
}

/// Why an inspect answer cannot be judged as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inspect of container {id} lacks {field}")]
pub struct Incomplete {
    pub id: String,
    pub field: &'static str,
}

/// A field of the engine's JSON, by path; `Value::Null` when absent.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// A string field; "" when absent or not a string.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

fn opt_str(v: &Value, path: &[&str]) -> Option<String> {
    Some(str_at(v, path))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn strings_at(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty() && *s != "<none>:<none>" && *s != "<none>@<none>")
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A JSON object of labels; non-string values are kept as their JSON text.
pub fn labels_of(v: &Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// An RFC 3339 time, unless it is Go's zero time (Docker's "never").
fn time_at(v: &Value, path: &[&str]) -> Option<String> {
    opt_str(v, path).filter(|s| !s.starts_with("0001-"))
}

impl Container {
    /// Converts an inspect answer. The fields a decision depends on (ID, name, the image
    /// as given, the image ID, the state) must be there: a container is never judged on
    /// missing metadata, the caller retries and in the end reports it unjudgeable.
    pub fn from_inspect(
        v: &Value,
        image: Option<&ImageFacts>,
        engine: &EngineDefaults,
    ) -> Result<Container, Incomplete> {
        let id = str_at(v, &["Id"]).to_string();
        let missing = |field| Incomplete {
            id: id.clone(),
            field,
        };
        if id.is_empty() {
            return Err(missing("Id"));
        }
        let name = str_at(v, &["Name"]).trim_start_matches('/');
        if name.is_empty() {
            return Err(missing("Name"));
        }
        let image_ref = str_at(v, &["Config", "Image"]);
        if image_ref.is_empty() {
            return Err(missing("Config.Image"));
        }
        let image_id = str_at(v, &["Image"]);
        if image_id.is_empty() {
            return Err(missing("Image"));
        }
        let state = at(v, &["State"]);
        let status = str_at(state, &["Status"]);
        if status.is_empty() {
            return Err(missing("State.Status"));
        }
        let health = match str_at(state, &["Health", "Status"]) {
            "" | "none" => None,
            s => Some(s.to_string()),
        };
        let path = str_at(v, &["Path"]).to_string();
        let path_mounted = match at(v, &["Mounts"]) {
            Value::Array(mounts) => mounts.iter().any(|m| {
                let dest = str_at(m, &["Destination"]);
                !dest.is_empty()
                    && (path == dest || path.starts_with(&format!("{}/", dest.trim_end_matches('/'))))
            }),
            _ => false,
        };
        let (tags, digests) = match image {
            Some(f) => (f.tags.clone(), f.digests.clone()),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Container {
            name: name.to_string(),
            image: image_ref.to_string(),
            image_id: image_id.to_string(),
            state: State::from_engine(status),
            created: str_at(v, &["Created"]).to_string(),
            started_at: time_at(state, &["StartedAt"]),
            finished_at: time_at(state, &["FinishedAt"]),
            exit_code: at(state, &["ExitCode"]).as_i64(),
            health,
            restart_count: at(v, &["RestartCount"]).as_i64().unwrap_or(0),
            ports: ports_of(at(v, &["NetworkSettings", "Ports"])),
            labels: labels_of(at(v, &["Config", "Labels"])),
            image_tags: tags,
            image_digests: digests,
            path,
            path_mounted,
            tty: at(v, &["Config", "Tty"]).as_bool().unwrap_or(false),
            upper_dir: opt_str(v, &["GraphDriver", "Data", "UpperDir"]),
            power: crate::power::from_inspect(v, image.map(|i| i.user.as_str()), engine),
            source: Source::Inspect,
            name_unknown: false,
            hidden_labels: &[],
            labels_cut: false,
            problem: None,
            id,
        })
    }

    /// What a list entry (`GET /containers/json`) shows, for a container whose inspect
    /// keeps failing (the caller sets [`Container::problem`]). The image is not resolved.
    pub fn from_summary(v: &Value) -> Container {
        let name = match v.get("Names") {
            Some(Value::Array(n)) => n.first().and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        Container {
            id: str_at(v, &["Id"]).to_string(),
            name: name.trim_start_matches('/').to_string(),
            image: str_at(v, &["Image"]).to_string(),
            image_id: str_at(v, &["ImageID"]).to_string(),
            state: State::from_engine(str_at(v, &["State"])),
            labels: labels_of(at(v, &["Labels"])),
            source: Source::List,
            power: Power::unknown("the list does not show what it asks of the host"),
            ..Default::default()
        }
    }

    /// With the names its image is known by (an image inspect's tags and digests).
    pub fn with_image(mut self, image: &ImageFacts) -> Container {
        self.image_tags = image.tags.clone();
        self.image_digests = image.digests.clone();
        self
    }

    /// A bounded copy for storing: labels that do not fit ([`LABEL_ENTRY_MAX`],
    /// [`LABELS_MAX`]) are left out and `labels_cut` says so. A judgement that needs a
    /// label this copy lacks comes out undecided, and the container is inspected again.
    pub fn bounded(&self) -> Container {
        let mut total = 0;
        let mut cut = self.labels_cut;
        let mut labels = BTreeMap::new();
        for (k, v) in &self.labels {
            let size = k.len() + v.len();
            if size > LABEL_ENTRY_MAX || total + size > LABELS_MAX {
                cut = true;
                continue;
            }
            total += size;
            labels.insert(k.clone(), v.clone());
        }
        Container {
            labels,
            labels_cut: cut,
            ..self.clone_without_labels()
        }
    }

    /// Whether [`Container::bounded`] would change anything.
    pub fn is_bounded(&self) -> bool {
        let mut total = 0;
        for (k, v) in &self.labels {
            let size = k.len() + v.len();
            if size > LABEL_ENTRY_MAX {
                return false;
            }
            total += size;
        }
        total <= LABELS_MAX
    }

    fn clone_without_labels(&self) -> Container {
        Container {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            state: self.state,
            created: self.created.clone(),
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            exit_code: self.exit_code,
            health: self.health.clone(),
            restart_count: self.restart_count,
            ports: self.ports.clone(),
            labels: BTreeMap::new(),
            image_tags: self.image_tags.clone(),
            image_digests: self.image_digests.clone(),
            path: self.path.clone(),
            path_mounted: self.path_mounted,
            tty: self.tty,
            upper_dir: self.upper_dir.clone(),
            power: self.power.clone(),
            source: self.source,
            name_unknown: self.name_unknown,
            hidden_labels: self.hidden_labels,
            labels_cut: self.labels_cut,
            problem: self.problem.clone(),
        }
    }

    /// Whether the image is resolved (ID, repo tags and digests known).
    pub fn image_resolved(&self) -> bool {
        self.source == Source::Inspect && !self.image_id.is_empty()
    }

    /// The first 12 characters of the ID, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

/// `NetworkSettings.Ports`: `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8081"}] | null}`.
fn ports_of(v: &Value) -> Vec<Port> {
    let Value::Object(map) = v else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for (key, bindings) in map {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(private_port) = port.parse::<u16>() else {
            continue;
        };
        let bindings: &[Value] = match bindings {
            Value::Array(b) => b,
            _ => &[],
        };
        if bindings.is_empty() {
            ports.push(Port {
                private_port,
                protocol: proto.to_string(),
                public_port: None,
                ip: None,
            });
        }
        for b in bindings {
            ports.push(Port {
                private_port,
                protocol: proto.to_string(),
                public_port: str_at(b, &["HostPort"]).parse().ok(),
                ip: opt_str(b, &["HostIp"]),
            });
        }
    }
    ports.sort_by(|a, b| {
        (a.private_port, &a.protocol, a.public_port, &a.ip).cmp(&(
            b.private_port,
            &b.protocol,
            b.public_port,
            &b.ip,
        ))
    });
    ports
}

/// A container as the engine lists it: `GET /containers/json` gives all but `upper_dir`,
/// which only `GET /containers/{id}/json` has (`GraphDriver.Data.UpperDir`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Full 64-hex ID.
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// `State` is none of `exited`, `dead`, `removing`: running, or `created`/`restarting`
    /// (a process that has just started can find its container still listed as `created`).
    /// Earlier attempts of a pod's container are exited and must not count.
    pub live: bool,
    /// `Mounts[].Source` of the bind mounts.
    pub bind_sources: Vec<String>,
    /// `GraphDriver.Data.UpperDir`, when inspected.
    pub upper_dir: Option<String>,
}

impl Summary {
    /// A list entry (`GET /containers/json?all=1`), leniently; an empty ID when it has none.
    pub fn from_json(c: &serde_json::Value) -> Summary {
        use serde_json::Value;
        let str_of = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        Summary {
            id: str_of("Id").to_string(),
            labels: labels_of(c.get("Labels").unwrap_or(&Value::Null)),
            live: State::from_engine(str_of("State")).is_live(),
            bind_sources: match c.get("Mounts") {
                Some(Value::Array(m)) => m
                    .iter()
                    .filter(|m| m.get("Type").and_then(Value::as_str) == Some("bind"))
                    .filter_map(|m| m.get("Source").and_then(Value::as_str).map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            },
            upper_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inspect() -> Value {
        json!({
            "Id": "0123456789abcdef",
            "Name": "/web-1",
            "Image": "sha256:aaaa",
            "Created": "2026-11-24T10:00:00Z",
            "Path": "/bin/web",
            "State": {"Status": "running", "StartedAt": "2026-11-24T10:00:01Z",
                      "FinishedAt": "0001-01-01T00:00:00Z", "ExitCode": 0},
            "Config": {"Image": "nginx:1.27", "Env": ["SECRET=hunter2"], "Labels": {"team": "web"}},
            "NetworkSettings": {"Ports": {
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8081"}],
                "9000/udp": null
            }},
            // Fields bollard's models refuse, which must not matter here:
            "HostConfig": {"Isolation": "Default", "RestartPolicy": {"Name": "sometimes"}},
            "Mounts": [{"Type": "weird", "Destination": "/data"}]
        })
    }

    #[test]
    fn converts_inspect_without_env_and_whatever_the_unused_fields_hold() {
        let c = Container::from_inspect(&inspect(), None, &EngineDefaults::default()).unwrap();
        assert_eq!(c.name, "web-1");
        assert_eq!(c.image, "nginx:1.27");
        assert_eq!(c.state, State::Running);
        assert_eq!(c.finished_at, None);
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].public_port, Some(8081));
        assert_eq!(c.ports[1].protocol, "udp");
        assert_eq!(c.path, "/bin/web");
        assert!(!c.path_mounted);
        assert!(c.image_resolved());
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("hunter2"), "environment leaked: {json}");
    }

    #[test]
    fn refuses_missing_decision_fields() {
        for (ptr, field) in [
            ("/Config/Image", "Config.Image"),
            ("/Name", "Name"),
            ("/Image", "Image"),
            ("/State/Status", "State.Status"),
        ] {
            let mut i = inspect();
            *i.pointer_mut(ptr).unwrap() = Value::Null;
            let e = Container::from_inspect(&i, None, &EngineDefaults::default()).unwrap_err();
            assert_eq!(e.field, field);
        }
    }

    #[test]
    fn unknown_states_are_kept_live() {
        let mut i = inspect();
        *i.pointer_mut("/State/Status").unwrap() = json!("hibernating");
        let c = Container::from_inspect(&i, None, &EngineDefaults::default()).unwrap();
        assert_eq!(c.state, State::Unknown);
        assert!(c.state.is_live());
        assert!(!State::Exited.is_live());
        assert_eq!(State::from_engine("configured"), State::Created);
        assert_eq!(State::parse("running"), Some(State::Running));
        assert_eq!(State::parse("Running"), None);
    }

    #[test]
    fn a_mount_over_the_program_is_noticed() {
        let mut i = inspect();
        *i.pointer_mut("/Mounts").unwrap() = json!([{"Destination": "/bin"}]);
        assert!(
            Container::from_inspect(&i, None, &EngineDefaults::default())
                .unwrap()
                .path_mounted
        );
        *i.pointer_mut("/Mounts").unwrap() = json!([{"Destination": "/bin/web"}]);
        assert!(
            Container::from_inspect(&i, None, &EngineDefaults::default())
                .unwrap()
                .path_mounted
        );
        *i.pointer_mut("/Mounts").unwrap() = json!([{"Destination": "/bin/we"}]);
        assert!(
            !Container::from_inspect(&i, None, &EngineDefaults::default())
                .unwrap()
                .path_mounted
        );
    }

    #[test]
    fn bounded_copies_drop_what_does_not_fit_and_say_so() {
        let mut c = Container::from_inspect(&inspect(), None, &EngineDefaults::default()).unwrap();
        assert!(c.is_bounded());
        c.labels.insert("big".into(), "x".repeat(LABEL_ENTRY_MAX));
        for i in 0..100 {
            c.labels.insert(format!("k{i:03}"), "y".repeat(1000));
        }
        assert!(!c.is_bounded());
        let b = c.bounded();
        assert!(b.labels_cut);
        assert!(!b.labels.contains_key("big"));
        assert_eq!(b.labels.get("team").map(String::as_str), Some("web"));
        let kept: usize = b.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(kept <= LABELS_MAX, "{kept}");
        assert!(b.labels.len() > 50);
    }

    #[test]
    fn summaries_carry_what_the_list_shows() {
        let s = json!({"Id": "abc", "Names": ["/x"], "Image": "busybox", "ImageID": "sha256:1",
                       "State": "running", "Labels": {"a": "b"}, "Ports": [{"Type": "sctp?"}]});
        let mut c = Container::from_summary(&s);
        c.problem = Some("inspect failed".into());
        assert_eq!(
            (c.name.as_str(), c.state, c.source),
            ("x", State::Running, Source::List)
        );
        assert!(!c.image_resolved());
        assert_eq!(c.problem.as_deref(), Some("inspect failed"));
    }
}
