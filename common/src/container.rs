//! Our own picture of one container, converted from bollard's models at the edge so the rest
//! of the code never sees their `Option`s. The environment is never copied: it holds secrets.

use std::collections::BTreeMap;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use serde::Serialize;

/// Docker's container states, plus `Unknown` for anything a newer engine may report.
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

    /// Parses the lowercase name Docker uses (`running`, `exited`, ...).
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "removing" => State::Removing,
            "exited" => State::Exited,
            "dead" => State::Dead,
            "unknown" => State::Unknown,
            _ => return None,
        })
    }

    /// Running, or about to run (created, restarting) or frozen while running (paused):
    /// the states the controller governs. Exited and dead containers are left alone.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            State::Created | State::Running | State::Paused | State::Restarting
        )
    }

    fn from_bollard(s: Option<ContainerStateStatusEnum>) -> State {
        match s {
            Some(ContainerStateStatusEnum::CREATED) => State::Created,
            Some(ContainerStateStatusEnum::RUNNING) => State::Running,
            Some(ContainerStateStatusEnum::PAUSED) => State::Paused,
            Some(ContainerStateStatusEnum::RESTARTING) => State::Restarting,
            Some(ContainerStateStatusEnum::REMOVING) => State::Removing,
            Some(ContainerStateStatusEnum::EXITED) => State::Exited,
            Some(ContainerStateStatusEnum::DEAD) => State::Dead,
            _ => State::Unknown,
        }
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

/// Everything dockwarden knows about one container. Built from `inspect` (plus the image's
/// repo tags and digests), never from the list summary, so every field means the same thing
/// whichever way the container entered the picture. `Default` is for tests and examples:
/// the informer only builds containers through [`Container::from_inspect`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The reference as given to `docker run` (`Config.Image`), never rewritten to an ID.
    pub image: String,
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
}

/// What the informer learns about an image once and caches by image ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub tags: Vec<String>,
    pub digests: Vec<String>,
}

/// Why an inspect answer cannot become a [`Container`] yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inspect of container {id} lacks {field}")]
pub struct Incomplete {
    pub id: String,
    pub field: &'static str,
}

impl Container {
    /// Converts an inspect answer. Fields the decision depends on (id, name, image, image
    /// ID, state) must be present: a container is never judged on missing metadata.
    pub fn from_inspect(c: ContainerInspectResponse, image: &ImageFacts) -> Result<Container, Incomplete> {
        let id = c.id.unwrap_or_default();
        let missing = |field| Incomplete {
            id: id.clone(),
            field,
        };
        if id.is_empty() {
            return Err(missing("Id"));
        }
        let name = c.name.filter(|n| !n.is_empty()).ok_or_else(|| missing("Name"))?;
        let config = c.config.ok_or_else(|| missing("Config"))?;
        let image_ref = config
            .image
            .filter(|i| !i.is_empty())
            .ok_or_else(|| missing("Config.Image"))?;
        let image_id = c
            .image
            .filter(|i| !i.is_empty())
            .ok_or_else(|| missing("Image"))?;
        let state = c.state.ok_or_else(|| missing("State"))?;
        let status = State::from_bollard(state.status);
        let health = state.health.and_then(|h| h.status).and_then(|s| match s {
            HealthStatusEnum::STARTING => Some("starting".to_string()),
            HealthStatusEnum::HEALTHY => Some("healthy".to_string()),
            HealthStatusEnum::UNHEALTHY => Some("unhealthy".to_string()),
            HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
        });
        let mut ports = Vec::new();
        if let Some(map) = c.network_settings.and_then(|n| n.ports) {
            for (key, bindings) in map {
                let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
                let Ok(private_port) = port.parse::<u16>() else {
                    continue;
                };
                let bindings = bindings.unwrap_or_default();
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
                        public_port: b.host_port.and_then(|p| p.parse().ok()),
                        ip: b.host_ip.filter(|ip| !ip.is_empty()),
                    });
                }
            }
        }
        ports.sort_by(|a, b| {
            (a.private_port, &a.protocol, a.public_port).cmp(&(b.private_port, &b.protocol, b.public_port))
        });
        Ok(Container {
            name: name.trim_start_matches('/').to_string(),
            image: image_ref,
            image_id,
            state: status,
            created: c.created.unwrap_or_default(),
            started_at: state.started_at.filter(|s| !s.starts_with("0001-")),
            finished_at: state.finished_at.filter(|s| !s.starts_with("0001-")),
            exit_code: state.exit_code,
            health,
            restart_count: c.restart_count.unwrap_or(0),
            ports,
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            image_tags: image.tags.clone(),
            image_digests: image.digests.clone(),
            id,
        })
    }

    /// The first 12 characters of the ID, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState, NetworkSettings, PortBinding};
    use std::collections::HashMap;

    fn inspect() -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("0123456789abcdef".into()),
            name: Some("/web-1".into()),
            image: Some("sha256:aaaa".into()),
            created: Some("2026-11-24T10:00:00Z".into()),
            state: Some(ContainerState {
                status: Some(ContainerStateStatusEnum::RUNNING),
                started_at: Some("2026-11-24T10:00:01Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                image: Some("nginx:1.27".into()),
                env: Some(vec!["SECRET=hunter2".into()]),
                labels: Some(HashMap::from([("team".into(), "web".into())])),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                ports: Some(HashMap::from([
                    (
                        "80/tcp".into(),
                        Some(vec![PortBinding {
                            host_ip: Some("0.0.0.0".into()),
                            host_port: Some("8081".into()),
                        }]),
                    ),
                    ("9000/udp".into(), None),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converts_inspect_without_env() {
        let c = Container::from_inspect(inspect(), &ImageFacts::default()).unwrap();
        assert_eq!(c.name, "web-1");
        assert_eq!(c.image, "nginx:1.27");
        assert_eq!(c.state, State::Running);
        assert_eq!(c.finished_at, None);
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].public_port, Some(8081));
        assert_eq!(c.ports[1].protocol, "udp");
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("hunter2"), "environment leaked: {json}");
    }

    #[test]
    fn refuses_missing_decision_fields() {
        let mut i = inspect();
        i.config.as_mut().unwrap().image = None;
        let e = Container::from_inspect(i, &ImageFacts::default()).unwrap_err();
        assert_eq!(e.field, "Config.Image");
        let mut i = inspect();
        i.name = None;
        assert!(Container::from_inspect(i, &ImageFacts::default()).is_err());
    }
}
