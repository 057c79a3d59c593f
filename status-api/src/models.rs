//! The JSON the API answers with (serde types), and [`verdict`], the one place a
//! container's verdict comes from. Views borrow from the view cache's entries. The container environment is not part
//! of [`common::engine::container::Container`] and so cannot appear here.

use std::collections::BTreeMap;

use common::decision::{Decision, DecisionRecord, WhyKind};
use common::engine::container::{Port, State};
use serde::Serialize;

use crate::resources::{HealthClass, ResourceClass, Sample};
use crate::status::format_seconds;

/// One container, as `GET /containers` lists it and `GET /containers/{id}` returns it. Built
/// from a cached entry of [`crate::views`] (`ContainerView::new` lives there).
#[derive(Debug, Serialize)]
pub struct ContainerView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The reference as given to `docker run`, never rewritten to an ID.
    pub image: &'a str,
    pub image_id: &'a str,
    pub state: State,
    /// Like `docker ps`: "Up 5 minutes", "Exited (137) 2 minutes ago".
    pub status: &'a str,
    pub created: &'a str,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub exit_code: Option<i64>,
    /// Docker's own healthcheck status (`starting`, `healthy`, `unhealthy`), or null when
    /// the image defines no healthcheck.
    pub health: Option<&'a str>,
    /// Docker's healthcheck and the resource figures together, worst first:
    /// stopped, critical, warning, unknown, starting, running, healthy (see
    /// [`HealthClass`]). Only a container whose healthcheck says `healthy` is `healthy`.
    pub health_class: HealthClass,
    /// The figures alone: healthy, warning, critical, stopped, unknown.
    pub resource_class: ResourceClass,
    /// Null until the first sample, and for containers that are not running.
    pub resources: Option<ResourcesView>,
    pub restart_count: i64,
    /// Published ports carry `public_port` (and `ip`); EXPOSE-only ports have neither.
    pub ports: &'a [Port],
    pub labels: &'a BTreeMap<String, String>,
    /// True when labels were left out of the stored copy to bound memory (judgements that
    /// need them inspect the container again). Only present when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub labels_cut: bool,
    /// Why this container's metadata could not be read whole: it is shown with what the
    /// list call gives, and judged (denied unless that allows it) on the same. Only present
    /// then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<&'a str>,
    /// What it asks of the host (privileged, host namespaces, host paths, capabilities...)
    /// under the policy's profile, each as text; the verdict says which rule grants them or
    /// which one does not. Only present when it asks something.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub power: &'a [String],
    /// False when what it asks of the host could not be found out (it is then granted
    /// nothing). Only present then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub power_unknown: bool,
    /// `allowed`, `rule`, `reason`: only when the server runs with `--allowlist`.
    #[serde(flatten)]
    pub verdict: Option<VerdictView>,
    /// The controller's latest decision about this container that acted or would have
    /// acted (with `--controller-url`); absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<&'a DecisionRecord>,
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

/// The allowlist's verdict on a container: the typed decision's fields.
#[derive(Debug, Serialize)]
pub struct VerdictView {
    /// Allowed to run: a rule allows it, or it is dockwarden's own (`spared`).
    pub allowed: bool,
    /// 1-based index of the first `[[allow]]` rule that allows it; null when denied (or
    /// spared).
    pub rule: Option<usize>,
    /// Which rule allows it, why it is denied or spared, or what is not known yet.
    pub reason: String,
    /// True for dockwarden's own containers: the controller never acts on them, whatever
    /// the allowlist says. Only present when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spared: bool,
    /// What kind of denial (`no_rule`, `unjudgeable`, `power`, `signature`, ...). Only
    /// present when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<WhyKind>,
    /// Under a `signed_by` rule: the key that verified its image's signature. Only present
    /// then (a denial's reason says why none did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
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
            sampled_at: jiff::Timestamp::try_from(s.sampled_at)
                .map(format_seconds)
                .unwrap_or_default(),
        }
    }
}

impl From<&Decision> for VerdictView {
    fn from(d: &Decision) -> Self {
        VerdictView {
            allowed: d.allowed(),
            rule: d.rule(),
            reason: d.to_string(),
            spared: matches!(d, Decision::Spare(_)),
            why: d.denied().map(|d| d.why.kind()),
            signed_by: match d {
                Decision::Allow(a) => a.signed_by.clone(),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::decision::{Identity, decide};
    use common::engine::container::Container;
    use common::policy::Policy;

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
        let view = |c: &Container, me: &Identity| VerdictView::from(&decide(&policy, c, me));
        let sibling = view(&container("other", "sha256:dw"), &me);
        assert!(
            sibling.allowed && sibling.rule.is_none() && sibling.spared,
            "{sibling:?}"
        );
        assert_eq!(
            sibling.reason,
            "dockwarden's image running dockwarden's own program: never acted on"
        );
        let json = serde_json::to_value(&sibling).unwrap();
        assert_eq!(json["spared"], true);
        assert!(json.get("why").is_none());
        let stranger = view(&container("y", "sha256:other"), &me);
        assert!(!stranger.allowed);
        let json = serde_json::to_value(&stranger).unwrap();
        assert!(json.get("spared").is_none(), "only present when true: {json}");
        assert_eq!(json["why"], "no_rule");
        let nobody = view(&container("self", "sha256:dw"), &Identity::default());
        assert!(!nobody.allowed, "outside a container nothing is spared");
        let mut shell = container("other", "sha256:dw");
        shell.path = "/bb/busybox".into();
        assert!(!view(&shell, &me).allowed, "anything else in our image is judged");
    }
}
