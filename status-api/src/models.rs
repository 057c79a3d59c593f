//! The JSON the API answers with (serde types). Views borrow from the store's containers, so
//! a listing copies nothing but the computed fields. The container environment is not part
//! of [`common::container::Container`] and so cannot appear here.

use std::collections::BTreeMap;
use std::time::SystemTime;

use common::container::{Container, Port, State};
use common::decision::{Decision, Identity, decide};
use common::policy::{Policy, Verdict};
use serde::Serialize;

use crate::resources::{HealthClass, Sample};
use crate::status::{format_rfc3339, status_text};

/// `GET /containers`.
#[derive(Debug, Serialize)]
pub struct ContainerList<'a> {
    pub containers: Vec<ContainerView<'a>>,
    pub count: usize,
    /// False while the picture is not synced with Docker (starting, or disconnected).
    pub synced: bool,
}

/// One container, as `GET /containers` lists it and `GET /containers/{id}` returns it.
#[derive(Debug, Serialize)]
pub struct ContainerView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The reference as given to `docker run`, never rewritten to an ID.
    pub image: &'a str,
    pub image_id: &'a str,
    pub state: State,
    /// Like `docker ps`: "Up 5 minutes", "Exited (137) 2 minutes ago".
    pub status: String,
    pub created: &'a str,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub exit_code: Option<i64>,
    /// Docker's own healthcheck status (`starting`, `healthy`, `unhealthy`), or null when
    /// the image defines no healthcheck.
    pub health: Option<&'a str>,
    /// healthy, warning, critical (CPU or memory), stopped, unknown (no figures yet).
    pub health_class: HealthClass,
    /// Null until the first sample, and for containers that are not running.
    pub resources: Option<ResourcesView>,
    pub restart_count: i64,
    pub ports: &'a [Port],
    pub labels: &'a BTreeMap<String, String>,
    /// `allowed`, `rule`, `reason`: only when the server runs with `--allowlist`.
    #[serde(flatten)]
    pub verdict: Option<VerdictView>,
}

/// Resource figures of a running container.
#[derive(Debug, Serialize)]
pub struct ResourcesView {
    /// `docker stats` semantics: 100 = one CPU busy; null until two samples exist.
    pub cpu_percent: Option<f64>,
    pub online_cpus: u32,
    pub memory_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
    pub sampled_at: String,
}

/// The allowlist's verdict on a container.
#[derive(Debug, Serialize)]
pub struct VerdictView {
    pub allowed: bool,
    /// 1-based index of the first `[[allow]]` rule that allows it; null when denied (or
    /// spared).
    pub rule: Option<usize>,
    pub reason: String,
    /// True for dockwarden's own containers that no rule allows: the controller never acts
    /// on its own image, so they count as allowed. Only present when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spared: bool,
}

/// The verdict as the controller acts on it, from the one decision
/// ([`common::decision::decide`]): dockwarden's own containers are spared (reported as
/// allowed, `spared: true`); a container whose stored facts cannot settle the policy is
/// reported as not allowed, with the reason saying what is not known yet.
pub fn verdict(policy: &Policy, c: &Container, me: &Identity) -> Verdict {
    match decide(policy, c, me) {
        Decision::Allow(v) => v,
        Decision::Spare(s) => Verdict {
            allowed: true,
            rule: None,
            reason: format!("{SPARED}: {}", s.reason()),
        },
        Decision::Deny { verdict, .. } => verdict,
        Decision::Undecided(missing) => Verdict {
            allowed: false,
            rule: None,
            reason: format!("undecided: {missing} not known yet (being inspected again)"),
        },
    }
}

/// The reason given for a spared container starts with this.
pub const SPARED: &str = "spared: never acted on whatever the allowlist says";

/// Every error: `{"error": "<code>", "message": "<what and why>"}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub message: &'a str,
    /// For 409: the IDs an ambiguous prefix matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<&'a [String]>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub status: &'static str,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl From<&Sample> for ResourcesView {
    fn from(s: &Sample) -> Self {
        ResourcesView {
            cpu_percent: s.cpu_percent.map(round2),
            online_cpus: s.online_cpus,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            memory_percent: s.memory_percent().map(round2),
            sampled_at: format_rfc3339(s.sampled_at),
        }
    }
}

impl From<Verdict> for VerdictView {
    fn from(v: Verdict) -> Self {
        VerdictView {
            spared: v.allowed && v.rule.is_none() && v.reason.starts_with(SPARED),
            allowed: v.allowed,
            rule: v.rule,
            reason: v.reason,
        }
    }
}

impl<'a> ContainerView<'a> {
    /// Builds the view at `now`; figures only count for a running container.
    pub fn new(c: &'a Container, sample: Option<&Sample>, verdict: Option<Verdict>, now: SystemTime) -> Self {
        let sample = sample.filter(|_| c.state == State::Running);
        ContainerView {
            id: &c.id,
            name: &c.name,
            image: &c.image,
            image_id: &c.image_id,
            state: c.state,
            status: status_text(c, now),
            created: &c.created,
            started_at: c.started_at.as_deref(),
            finished_at: c.finished_at.as_deref(),
            exit_code: c.exit_code,
            health: c.health.as_deref(),
            health_class: HealthClass::of(c.state, sample),
            resources: sample.map(ResourcesView::from),
            restart_count: c.restart_count,
            ports: &c.ports,
            labels: &c.labels,
            verdict: verdict.map(VerdictView::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, image_id: &str) -> Container {
        Container {
            id: id.into(),
            name: "x".into(),
            image: "dockwarden:local".into(),
            image_id: image_id.into(),
            state: State::Running,
            path: "/status-api".into(),
            ..Default::default()
        }
    }

    #[test]
    fn own_containers_are_spared_like_the_controller_spares_them() {
        let policy = Policy::parse("[[allow]]\nname = \"web-*\"\n", "t").unwrap();
        let me = Identity {
            container_id: Some("self".into()),
            image_id: Some("sha256:dw".into()),
            image_names: vec![],
        };
        let sibling = verdict(&policy, &container("other", "sha256:dw"), &me);
        assert!(sibling.allowed && sibling.rule.is_none(), "{sibling:?}");
        let view = VerdictView::from(sibling);
        assert!(view.spared);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["spared"], true);
        let stranger = verdict(&policy, &container("y", "sha256:other"), &me);
        assert!(!stranger.allowed);
        let json = serde_json::to_value(VerdictView::from(stranger)).unwrap();
        assert!(json.get("spared").is_none(), "only present when true: {json}");
        let nobody = verdict(&policy, &container("self", "sha256:dw"), &Identity::default());
        assert!(!nobody.allowed, "outside a container nothing is spared");
        let mut shell = container("other", "sha256:dw");
        shell.path = "/bb/busybox".into();
        assert!(
            !verdict(&policy, &shell, &me).allowed,
            "anything else in our image is judged"
        );
    }
}
