//! The one decision: policy × container facts × who we are → [`Decision`]. Pure, no I/O.
//! Every path calls it: the controller's enforcer, its authorization plugin, `check`, and
//! status-api's verdicts, spared flags and metrics. Nothing else decides.
//!
//! - dockwarden's own containers are spared whatever the policy says: this process's own
//!   container, and containers of its image whose program is one of dockwarden's (and not
//!   covered by a mount). Anything else in that image is judged like any container.
//! - A container whose facts cannot settle the policy (an event that does not resolve the
//!   image, labels not kept) is [`Decision::Undecided`]: look again with full facts. When
//!   full facts cannot be had ([`Container::problem`]), it is denied: fail closed.

use crate::engine::container::{Container, State};
use crate::policy::reference::Reference;
use crate::policy::{Action, Judgement, Mode, Policy, Verdict};

/// Paths of dockwarden's programs in its image (the Dockerfiles' `COPY` targets).
pub const PROGRAMS: &[&str] = &["/state-controller", "/status-api"];

/// Who this process is: its container and that container's image, when it runs in one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub container_id: Option<String>,
    /// The image ID of our container.
    pub image_id: Option<String>,
    /// The names our image is known by (normalised `domain/path:tag` and
    /// `domain/path@sha256:…`): an event naming one of them may be ours.
    pub image_names: Vec<String>,
}

/// Why a container is never acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spare {
    /// This process's own container.
    OwnContainer,
    /// A container of dockwarden's image running one of dockwarden's programs.
    OwnProgram,
}

impl Spare {
    pub fn reason(self) -> &'static str {
        match self {
            Spare::OwnContainer => "dockwarden's own container: never acted on",
            Spare::OwnProgram => "dockwarden's image running dockwarden's own program: never acted on",
        }
    }
}

/// What to do about a denied container now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Not live (exited, dead, being removed): nothing to do.
    Nothing,
    /// Act now.
    Now(Action),
    /// Only created, and the action (kill, stop) needs a process: act when it starts.
    AtStart(Action),
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Spare(Spare),
    Allow(Verdict),
    Deny {
        verdict: Verdict,
        /// Set when the container was denied because its metadata could not be read.
        unjudgeable: Option<String>,
        plan: Plan,
        /// Audit mode: log and count, touch nothing.
        audit: bool,
    },
    /// The facts at hand cannot settle it; names what is missing.
    Undecided(&'static str),
}

impl Decision {
    /// `allow`, `deny`, `spare` or `undecided`, as logs and metrics name verdicts.
    pub fn verdict_name(&self) -> &'static str {
        match self {
            Decision::Spare(_) => "spare",
            Decision::Allow(_) => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Undecided(_) => "undecided",
        }
    }

    /// The action to take now, unless audit mode or the container's state defers it.
    pub fn action_now(&self) -> Option<Action> {
        match self {
            Decision::Deny {
                plan: Plan::Now(a),
                audit: false,
                ..
            } => Some(*a),
            _ => None,
        }
    }
}

impl Identity {
    /// Whether `c` is ours to spare; `Unknown` when its facts cannot tell (an event that
    /// names an image that may be ours).
    pub fn spares(&self, c: &Container) -> Result<Option<Spare>, &'static str> {
        if self.container_id.as_deref() == Some(c.id.as_str()) {
            return Ok(Some(Spare::OwnContainer));
        }
        let Some(mine) = self.image_id.as_deref() else {
            return Ok(None);
        };
        if c.image_resolved() {
            let ours = c.image_id == mine && PROGRAMS.contains(&c.path.as_str()) && !c.path_mounted;
            return Ok(ours.then_some(Spare::OwnProgram));
        }
        // Unresolved (an event, or a container whose inspect fails): it may be ours when
        // the reference it was given could name our image.
        let hex = c.image.strip_prefix("sha256:").unwrap_or(&c.image);
        let id_like = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let maybe = (id_like && mine.strip_prefix("sha256:").unwrap_or(mine).starts_with(hex))
            || Reference::parse(&c.image).is_ok_and(|r| {
                r.tagged().is_some_and(|t| self.image_names.contains(&t))
                    || r.digested().is_some_and(|d| self.image_names.contains(&d))
            });
        if maybe {
            Err("whether it runs dockwarden's own program")
        } else {
            Ok(None)
        }
    }
}

/// Decides what the policy means for `c`, without I/O.
pub fn decide(policy: &Policy, c: &Container, me: &Identity) -> Decision {
    let spare = me.spares(c);
    if let Ok(Some(s)) = spare {
        return Decision::Spare(s);
    }
    let judgement = policy.judge(c);
    let deny = |reason: String, unjudgeable: Option<String>| Decision::Deny {
        verdict: Verdict {
            allowed: false,
            rule: None,
            reason,
        },
        unjudgeable,
        plan: plan(policy.action, c.state),
        audit: policy.mode == Mode::Audit,
    };
    match (judgement, spare, &c.problem) {
        (Judgement::Allowed { rule, reason }, _, _) => Decision::Allow(Verdict {
            allowed: true,
            rule: Some(rule),
            reason,
        }),
        // Full facts cannot be had: what is known did not allow it.
        (_, _, Some(problem)) => deny(format!("cannot be judged: {problem}"), Some(problem.clone())),
        (Judgement::Unknown { missing }, _, None) => Decision::Undecided(missing),
        (Judgement::Denied { .. }, Err(missing), None) => Decision::Undecided(missing),
        (Judgement::Denied { reason }, Ok(_), None) => deny(reason, None),
    }
}

/// What to do about a denied container in `state` under `action`.
pub fn plan(action: Action, state: State) -> Plan {
    match (action, state) {
        (_, s) if !s.is_live() => Plan::Nothing,
        (Action::Remove, _) => Plan::Now(Action::Remove),
        (a, State::Created) => Plan::AtStart(a),
        (a, _) => Plan::Now(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::container::Source;

    fn container(name: &str, state: State) -> Container {
        Container {
            id: format!("id-{name}"),
            name: name.into(),
            image: "busybox:1".into(),
            image_id: "sha256:abcdef0123".into(),
            state,
            path: "/bin/sleep".into(),
            ..Default::default()
        }
    }

    fn policy(head: &str) -> Policy {
        Policy::parse(&format!("{head}\n[[allow]]\nname = \"ok-*\"\n"), "t").unwrap()
    }

    fn me() -> Identity {
        Identity {
            container_id: Some("id-me".into()),
            image_id: Some("sha256:abcdef0123".into()),
            image_names: vec!["docker.io/library/dockwarden:local".into()],
        }
    }

    #[test]
    fn allowed_containers_are_never_acted_on() {
        for s in [
            State::Created,
            State::Running,
            State::Paused,
            State::Restarting,
            State::Exited,
        ] {
            let d = decide(&policy(""), &container("ok-1", s), &Identity::default());
            assert!(matches!(d, Decision::Allow(_)), "{d:?}");
            assert_eq!(d.action_now(), None);
        }
    }

    #[test]
    fn kill_and_stop_wait_for_start_remove_acts_at_create() {
        let me = Identity::default();
        let plan_of = |head: &str, s| match decide(&policy(head), &container("x", s), &me) {
            Decision::Deny { plan, .. } => plan,
            d => panic!("{d:?}"),
        };
        assert_eq!(
            plan_of("action = \"kill\"", State::Created),
            Plan::AtStart(Action::Kill)
        );
        assert_eq!(
            plan_of("action = \"stop\"", State::Running),
            Plan::Now(Action::Stop)
        );
        assert_eq!(
            plan_of("action = \"remove\"", State::Created),
            Plan::Now(Action::Remove)
        );
        assert_eq!(plan_of("", State::Paused), Plan::Now(Action::Kill));
        assert_eq!(
            plan_of("", State::Unknown),
            Plan::Now(Action::Kill),
            "an unreadable state is live"
        );
        for s in [State::Exited, State::Dead, State::Removing] {
            assert_eq!(plan_of("", s), Plan::Nothing);
        }
    }

    #[test]
    fn audit_mode_marks_denials_as_audit() {
        let d = decide(
            &policy("mode = \"audit\""),
            &container("x", State::Running),
            &Identity::default(),
        );
        assert!(
            matches!(
                d,
                Decision::Deny {
                    audit: true,
                    plan: Plan::Now(Action::Kill),
                    ..
                }
            ),
            "{d:?}"
        );
        assert_eq!(d.action_now(), None);
    }

    #[test]
    fn own_container_and_own_programs_are_spared_nothing_else_of_the_image() {
        let p = policy("");
        let mut own = container("me", State::Running);
        own.id = "id-me".into();
        assert_eq!(decide(&p, &own, &me()), Decision::Spare(Spare::OwnContainer));
        let mut sibling = container("status-api", State::Running);
        sibling.path = "/status-api".into();
        assert_eq!(decide(&p, &sibling, &me()), Decision::Spare(Spare::OwnProgram));
        let mut shell = sibling.clone();
        shell.path = "/bb/busybox".into();
        assert!(
            matches!(decide(&p, &shell, &me()), Decision::Deny { .. }),
            "a shell in our image is judged"
        );
        let mut shadowed = sibling.clone();
        shadowed.path_mounted = true;
        assert!(
            matches!(decide(&p, &shadowed, &me()), Decision::Deny { .. }),
            "a program mounted over ours is not ours"
        );
        let mut other_image = sibling;
        other_image.image_id = "sha256:other".into();
        assert!(matches!(decide(&p, &other_image, &me()), Decision::Deny { .. }));
    }

    #[test]
    fn an_event_naming_our_image_waits_for_the_inspect_others_are_decided_at_once() {
        let p = policy("");
        let mut ev = container("x", State::Created);
        ev.source = Source::Event;
        ev.image_id = String::new();
        ev.image = "dockwarden:local".into();
        assert_eq!(
            decide(&p, &ev, &me()),
            Decision::Undecided("whether it runs dockwarden's own program")
        );
        ev.image = "abcdef".into(); // a prefix of our image ID
        assert!(matches!(decide(&p, &ev, &me()), Decision::Undecided(_)));
        ev.image = "busybox:1".into();
        assert!(matches!(decide(&p, &ev, &me()), Decision::Deny { .. }));
        ev.name = "ok-1".into();
        ev.image = "dockwarden:local".into();
        assert!(
            matches!(decide(&p, &ev, &me()), Decision::Allow(_)),
            "allowed either way"
        );
    }

    #[test]
    fn unjudgeable_containers_are_denied_unless_what_is_known_allows_them() {
        let p = Policy::parse(
            &format!(
                "[[allow]]\nname = \"ok-*\"\n[[allow]]\nimage = \"sha256:{}\"\n",
                "a".repeat(64)
            ),
            "t",
        )
        .unwrap();
        let mut c = container("x", State::Running);
        c.source = Source::List;
        c.problem = Some("inspect failed 6 times: HTTP 500".into());
        match decide(&p, &c, &Identity::default()) {
            Decision::Deny {
                unjudgeable: Some(why),
                verdict,
                plan,
                ..
            } => {
                assert!(why.contains("HTTP 500"));
                assert!(
                    verdict.reason.starts_with("cannot be judged"),
                    "{}",
                    verdict.reason
                );
                assert_eq!(plan, Plan::Now(Action::Kill));
            }
            d => panic!("{d:?}"),
        }
        c.name = "ok-2".into();
        assert!(matches!(decide(&p, &c, &Identity::default()), Decision::Allow(_)));
    }
}
