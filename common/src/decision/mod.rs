//! The one decision: policy × container facts × who we are → [`Decision`]. Pure, no I/O.
//! Every path calls [`decide`]: the controller's enforcer, its authorization plugin,
//! `check`, and status-api's verdicts, spared flags and metrics. Nothing else decides, and
//! the decision travels as this typed value to every log line, record and answer; its text
//! is made in one place ([`text`]).
//!
//! - dockwarden's own containers are spared whatever the policy says: this process's own
//!   container, and containers of its image whose program is one of dockwarden's (and not
//!   covered by a mount). Anything else in that image is judged like any container.
//! - Rules are tried in order; the first that allows decides. A rule that cannot be settled
//!   on the facts at hand (an event that does not resolve the image, a label not kept) makes
//!   the decision [`Decision::Undecided`] unless an earlier rule already allowed: an answer
//!   from partial facts is given only when full facts could not change it, not even which
//!   rule allows. When full facts cannot be had ([`Container::problem`]), what is known
//!   decides, and a container it does not allow is denied: fail closed.

pub mod record;
mod text;

use std::sync::Arc;

use crate::engine::container::{Container, Source, State};
use crate::policy::judge::PodmanHint;
use crate::policy::reference::Reference;
use crate::policy::{Action, Missing, Mode, PluginJudgement, Policy, Tri};
use crate::power::{Ask, Asks, Profile, Refused};
use crate::provenance::{Failure, KeySet, Outcome, Verifier};

pub use record::{ActionResult, DecisionRecord, Endpoint, EventKind, Trigger};

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

/// What to do about a denied container now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    /// Not live (exited, dead, being removed): nothing to do.
    Nothing,
    /// Act now.
    Now(Action),
    /// Only created, and the action (kill, stop) needs a process: act when it starts.
    AtStart(Action),
}

/// The verdict alone, as logs, metrics, records and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Spare,
    /// Also what a record with a verdict this build does not know reads as.
    #[serde(other)]
    Undecided,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Spare => "spare",
            Verdict::Undecided => "undecided",
        }
    }
}

/// A rule that allowed (or, for an engine plugin, an `engine_plugins` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// 1-based index of the `[[allow]]` rule (or `engine_plugins` entry).
    pub rule: usize,
    /// The rule as written (`allow[2] (image="nginx:*")`).
    pub rule_text: Arc<str>,
    /// The host power it asks for, every one granted by the rule (empty: none, or the
    /// `privileged` profile, which judges identity only).
    pub granted: Vec<Ask>,
    /// Under a `signed_by` rule: the key that verified the signature (its path as written).
    pub signed_by: Option<String>,
}

/// Why a container is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// No rule matches it; on Podman, maybe a rule written for the Docker Hub name.
    NoRule(Option<PodmanHint>),
    /// Its metadata could not be read whole, and what is known does not allow it.
    Unjudgeable(String),
    /// A rule matches its identity but does not grant a power it asks for: the first such
    /// rule, the first power it does not grant (in [`Ask`]'s order), and the grant that
    /// would (TOML).
    Power {
        rule: usize,
        ask: Box<Ask>,
        grant: String,
    },
    /// A rule matches its identity, but what it asks of the host could not be found out
    /// (a volume or joined container that cannot be looked up): nothing is granted on it.
    PowerUnknown { rule: usize, missing: Vec<String> },
    /// An engine plugin that no `engine_plugins` entry allows (`listed`: there are some).
    EnginePlugin { plugin: String, listed: bool },
    /// A rule matches its identity and grants its power but wants a signature by one of its
    /// keys, and verification says why there is none.
    Signature { rule: usize, failure: Failure },
}

/// What the kind of a denial is, as records and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhyKind {
    NoRule,
    Unjudgeable,
    Power,
    EnginePlugin,
    Signature,
    /// What a record with a kind this build does not know reads as.
    #[serde(other)]
    Other,
}

impl Why {
    pub fn kind(&self) -> WhyKind {
        match self {
            Why::NoRule(_) => WhyKind::NoRule,
            Why::Unjudgeable(_) => WhyKind::Unjudgeable,
            Why::Power { .. } | Why::PowerUnknown { .. } => WhyKind::Power,
            Why::EnginePlugin { .. } => WhyKind::EnginePlugin,
            Why::Signature { .. } => WhyKind::Signature,
        }
    }
}

/// A denial, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub why: Why,
    pub plan: Plan,
    /// Audit mode: log and count, touch nothing.
    pub audit: bool,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Spare(Spare),
    Allow(Allowed),
    Deny(Denied),
    /// The facts at hand cannot settle it; names what is missing.
    Undecided(Missing),
}

impl Decision {
    pub fn verdict(&self) -> Verdict {
        match self {
            Decision::Spare(_) => Verdict::Spare,
            Decision::Allow(_) => Verdict::Allow,
            Decision::Deny(_) => Verdict::Deny,
            Decision::Undecided(_) => Verdict::Undecided,
        }
    }

    /// Allowed to run: a rule allows it, or it is dockwarden's own.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_) | Decision::Spare(_))
    }

    /// The rule that allows it.
    pub fn rule(&self) -> Option<usize> {
        match self {
            Decision::Allow(a) => Some(a.rule),
            _ => None,
        }
    }

    pub fn denied(&self) -> Option<&Denied> {
        match self {
            Decision::Deny(d) => Some(d),
            _ => None,
        }
    }

    /// Denied and live (acted on in enforce mode, running in audit mode).
    pub fn denied_live(&self) -> bool {
        matches!(self, Decision::Deny(d) if d.plan != Plan::Nothing)
    }

    /// The action to take now, unless audit mode or the container's state defers it.
    pub fn action_now(&self) -> Option<Action> {
        match self {
            Decision::Deny(Denied {
                plan: Plan::Now(a),
                audit: false,
                ..
            }) => Some(*a),
            _ => None,
        }
    }
}

impl Identity {
    /// Whether `c` is ours to spare; `Err` when its facts cannot tell (an event that names
    /// an image that may be ours).
    pub fn spares(&self, c: &Container) -> Result<Option<Spare>, Missing> {
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
        if maybe { Err(Missing::OwnProgram) } else { Ok(None) }
    }
}

/// What the decision reads of signatures: the verifier's cache, without I/O. `None`: not
/// known yet (the gate verifies, then decides again).
pub trait Signatures {
    fn lookup(&self, c: &Container, keys: &KeySet) -> Option<Outcome>;
}

impl Signatures for Verifier {
    fn lookup(&self, c: &Container, keys: &KeySet) -> Option<Outcome> {
        self.lookup_image(&c.image, &c.image_digests, keys)
    }
}

/// No verifier: every signature is not known yet (a policy without `signed_by` never asks).
pub struct NoSignatures;

impl Signatures for NoSignatures {
    fn lookup(&self, _: &Container, _: &KeySet) -> Option<Outcome> {
        None
    }
}

/// [`decide_with`] without signatures: for policies without `signed_by` (and tests).
pub fn decide(policy: &Policy, c: &Container, me: &Identity) -> Decision {
    decide_with(policy, c, me, &NoSignatures)
}

/// Decides what the policy means for `c`, without I/O.
///
/// A rule allows `c` when it matches its identity, grants every power it asks of the host
/// under the policy's profile (`privileged`: identity alone), and, where it says
/// `signed_by`, one of its keys signed the registry digest `c` runs. A container seen only
/// through an event shows no power: when a rule matches its identity, the decision waits
/// for the inspect ([`Missing::Power`]); a signature not verified yet waits too
/// ([`Missing::Signature`], see [`signatures_to_verify`]). When no rule allows, the denial
/// names the first rule that matched the identity and what it lacked, else that no rule
/// matches.
pub fn decide_with(policy: &Policy, c: &Container, me: &Identity, sigs: &dyn Signatures) -> Decision {
    let spare = me.spares(c);
    if let Ok(Some(s)) = spare {
        return Decision::Spare(s);
    }
    let mut unknown = None;
    let mut failure = None;
    let mut asks: Option<Asks> = None;
    for r in &policy.rules {
        match r.identity(c) {
            Tri::No => continue,
            Tri::Unknown(m) => {
                unknown = Some(m);
                break;
            }
            Tri::Yes => {}
        }
        let granted = if policy.profile == Profile::Privileged {
            Vec::new()
        } else {
            let asks = asks.get_or_insert_with(|| c.power.asks(policy.profile));
            if !asks.is_known() && c.source == Source::Event {
                unknown = Some(Missing::Power);
                break;
            }
            match r.grants.check(asks) {
                Ok(()) => asks.asks.clone(),
                Err(Refused::Ungranted { ask, grant }) => {
                    failure.get_or_insert(Why::Power {
                        rule: r.index,
                        ask,
                        grant,
                    });
                    continue;
                }
                Err(Refused::Unknown { missing }) => {
                    failure.get_or_insert(Why::PowerUnknown {
                        rule: r.index,
                        missing,
                    });
                    continue;
                }
            }
        };
        let signed_by = match &r.signed_by {
            None => None,
            Some(_) if !c.image_resolved() => {
                unknown = Some(Missing::Image);
                break;
            }
            Some(keys) => match sigs.lookup(c, keys) {
                None => {
                    unknown = Some(Missing::Signature);
                    break;
                }
                Some(Outcome::Verified(v)) => Some(v.key),
                Some(Outcome::Failed(f)) => {
                    failure.get_or_insert(Why::Signature {
                        rule: r.index,
                        failure: f,
                    });
                    continue;
                }
            },
        };
        return Decision::Allow(Allowed {
            rule: r.index,
            rule_text: r.to_string().into(),
            granted,
            signed_by,
        });
    }
    let deny = |why| {
        Decision::Deny(Denied {
            why,
            plan: plan(policy.action, c.state),
            audit: policy.mode == Mode::Audit,
        })
    };
    match (unknown, spare, &c.problem) {
        // Full facts cannot be had: what is known did not allow it.
        (_, _, Some(problem)) => deny(Why::Unjudgeable(problem.clone())),
        (Some(m), _, None) | (None, Err(m), None) => Decision::Undecided(m),
        (None, Ok(_), None) => deny(failure.unwrap_or_else(|| Why::NoRule(policy.podman_hint(c)))),
    }
}

/// The key sets whose verification of `c` would let the decision go on: those of the rules
/// that match its identity and want a signature not known yet. A gate verifies them
/// (bounded by the verifier's timeout) and decides again.
pub fn signatures_to_verify<'p>(policy: &'p Policy, c: &Container, sigs: &dyn Signatures) -> Vec<&'p KeySet> {
    if !c.image_resolved() {
        return Vec::new();
    }
    let mut out: Vec<&KeySet> = Vec::new();
    for r in &policy.rules {
        if r.identity(c) != Tri::Yes {
            continue;
        }
        if let Some(keys) = &r.signed_by
            && sigs.lookup(c, keys).is_none()
            && !out.iter().any(|k| k.id() == keys.id())
        {
            out.push(keys);
        }
    }
    out
}

/// Decides an engine plugin's install, enable or upgrade (`reference`: the plugin being
/// pulled or upgraded to, or an installed plugin's name) by the policy's `engine_plugins`.
pub fn decide_engine_plugin(policy: &Policy, reference: &str) -> Decision {
    let deny = |why| {
        Decision::Deny(Denied {
            why,
            plan: Plan::Nothing,
            audit: policy.mode == Mode::Audit,
        })
    };
    match policy.judge_engine_plugin(reference) {
        PluginJudgement::Allowed { entry, written } => Decision::Allow(Allowed {
            rule: entry,
            rule_text: format!("engine_plugins[{entry}] = {written:?}").into(),
            granted: Vec::new(),
            signed_by: None,
        }),
        PluginJudgement::NotListed { plugin, listed } => deny(Why::EnginePlugin { plugin, listed }),
        PluginJudgement::Unreadable(why) => deny(Why::Unjudgeable(why)),
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
            Decision::Deny(d) => d.plan,
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
                Decision::Deny(Denied {
                    audit: true,
                    plan: Plan::Now(Action::Kill),
                    ..
                })
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
            matches!(decide(&p, &shell, &me()), Decision::Deny(_)),
            "a shell in our image is judged"
        );
        let mut shadowed = sibling.clone();
        shadowed.path_mounted = true;
        assert!(
            matches!(decide(&p, &shadowed, &me()), Decision::Deny(_)),
            "a program mounted over ours is not ours"
        );
        let mut other_image = sibling;
        other_image.image_id = "sha256:other".into();
        assert!(matches!(decide(&p, &other_image, &me()), Decision::Deny(_)));
    }

    #[test]
    fn an_event_naming_our_image_waits_for_the_inspect_others_are_decided_at_once() {
        let p = policy("");
        let mut ev = container("x", State::Created);
        ev.source = Source::Event;
        ev.image_id = String::new();
        ev.image = "dockwarden:local".into();
        assert_eq!(decide(&p, &ev, &me()), Decision::Undecided(Missing::OwnProgram));
        ev.image = "abcdef".into(); // a prefix of our image ID
        assert!(matches!(decide(&p, &ev, &me()), Decision::Undecided(_)));
        ev.image = "busybox:1".into();
        assert!(matches!(decide(&p, &ev, &me()), Decision::Deny(_)));
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
        let d = decide(&p, &c, &Identity::default());
        match &d {
            Decision::Deny(Denied {
                why: Why::Unjudgeable(why),
                plan,
                ..
            }) => {
                assert!(why.contains("HTTP 500"));
                assert_eq!(*plan, Plan::Now(Action::Kill));
            }
            d => panic!("{d:?}"),
        }
        assert!(d.to_string().starts_with("cannot be judged"), "{d}");
        c.name = "ok-2".into();
        assert!(matches!(decide(&p, &c, &Identity::default()), Decision::Allow(_)));
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn the_text_of_each_decision() {
        let p = Policy::parse("[[allow]]\nname = \"ok-*\"\n", "t").unwrap();
        let c = |name: &str| Container {
            id: format!("id-{name}"),
            name: name.into(),
            image: "busybox:1".into(),
            image_id: "sha256:1".into(),
            state: State::Running,
            ..Default::default()
        };
        let me = Identity::default();
        let allow = decide(&p, &c("ok-1"), &me);
        assert_eq!(allow.to_string(), "allowed by allow[1] (name=\"ok-*\")");
        assert_eq!(
            allow.consequence(),
            "nothing: allowed by allow[1] (name=\"ok-*\")"
        );
        let deny = decide(&p, &c("x"), &me);
        assert_eq!(deny.to_string(), "no [[allow]] rule matches");
        assert_eq!(deny.consequence(), "kill: no [[allow]] rule matches");
        let spare = Decision::Spare(Spare::OwnContainer);
        assert_eq!(spare.to_string(), "dockwarden's own container: never acted on");
        assert_eq!(
            Decision::Undecided(Missing::Image).to_string(),
            "undecided: the image (not resolved yet) not known yet"
        );
    }
}

#[cfg(test)]
mod power_tests {
    use super::*;
    use crate::power::{HostConfigSpec, Namespace, Power, User};

    fn asking(pid_host: bool, binds: &[&str]) -> Power {
        let spec = HostConfigSpec {
            pid_mode: if pid_host { "host".into() } else { String::new() },
            binds: binds.iter().map(|b| b.to_string()).collect(),
            ..Default::default()
        };
        Power::from_host_config(&spec, User::Set(String::new()))
    }

    fn app(power: Power) -> Container {
        Container {
            id: "c1".into(),
            name: "app-1".into(),
            image: "app:1".into(),
            image_id: "sha256:1".into(),
            state: State::Running,
            power,
            ..Default::default()
        }
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text, "t").unwrap()
    }

    #[test]
    fn a_rule_allows_only_the_power_it_grants() {
        let me = Identity::default();
        let p = policy("[[allow]]\nimage = \"app:*\"\n");
        let d = decide(&p, &app(asking(true, &[])), &me);
        match &d {
            Decision::Deny(Denied {
                why: Why::Power { rule: 1, ask, grant },
                plan: Plan::Now(Action::Kill),
                audit: false,
            }) => {
                assert_eq!(**ask, Ask::HostNamespace(Namespace::Pid));
                assert_eq!(grant, r#"host_namespaces = ["pid"]"#);
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            d.to_string(),
            r#"host pid namespace (allow[1] matches it but does not grant host_namespaces = ["pid"])"#
        );
        assert_eq!(d.denied().map(|d| d.why.kind()), Some(WhyKind::Power));
        assert!(
            decide(&p, &app(asking(false, &[])), &me).allowed(),
            "asks nothing"
        );

        let granted = policy("[[allow]]\nimage = \"app:*\"\nhost_namespaces = [\"pid\"]\n");
        let d = decide(&granted, &app(asking(true, &[])), &me);
        assert_eq!(d.rule(), Some(1));
        assert!(
            d.to_string().ends_with(", which grants host pid namespace"),
            "{d}"
        );
        // Exactly the grant: a bind is another power.
        let d = decide(&granted, &app(asking(true, &["/:/host"])), &me);
        assert!(
            matches!(
                &d,
                Decision::Deny(Denied {
                    why: Why::Power { .. },
                    ..
                })
            ),
            "{d:?}"
        );
    }

    #[test]
    fn the_first_rule_that_grants_allows_and_the_first_that_matched_is_named_otherwise() {
        let me = Identity::default();
        let p =
            policy("[[allow]]\nimage = \"app:*\"\n[[allow]]\nname = \"app-*\"\nmounts = [\"/var/log/**\"]\n");
        let d = decide(&p, &app(asking(false, &["/var/log:/logs:ro"])), &me);
        assert_eq!(d.rule(), Some(2));
        let d = decide(&p, &app(asking(false, &["/etc:/etc"])), &me);
        match d {
            Decision::Deny(Denied {
                why: Why::Power { rule: 1, .. },
                ..
            }) => {}
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn events_wait_for_the_inspect_when_power_could_decide_and_not_otherwise() {
        let me = Identity::default();
        let p = policy("[[allow]]\nname = \"app-*\"\n");
        let mut ev = app(Power::unknown("an event does not show what it asks of the host"));
        ev.source = Source::Event;
        assert_eq!(decide(&p, &ev, &me), Decision::Undecided(Missing::Power));
        ev.name = "stranger".into();
        assert!(
            matches!(decide(&p, &ev, &me), Decision::Deny(_)),
            "no rule matches whatever it asks: decided at once"
        );
        // An inspect whose power cannot be found out is denied, not waited for.
        let mut inspected = app(Power::unknown("volume v not resolved"));
        inspected.source = Source::Inspect;
        match decide(&p, &inspected, &me) {
            Decision::Deny(Denied {
                why: Why::PowerUnknown { rule: 1, missing },
                ..
            }) => assert!(missing[0].contains("volume v")),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn the_privileged_profile_judges_identity_only_and_audit_only_logs() {
        let me = Identity::default();
        let p = policy("profile = \"privileged\"\n[[allow]]\nimage = \"app:*\"\n");
        assert!(decide(&p, &app(asking(true, &["/:/host"])), &me).allowed());
        let p = policy("mode = \"audit\"\n[[allow]]\nimage = \"app:*\"\n");
        let d = decide(&p, &app(asking(true, &[])), &me);
        assert!(matches!(d, Decision::Deny(Denied { audit: true, .. })));
        assert_eq!(d.action_now(), None);
    }

    #[test]
    fn engine_plugins_are_decided_by_their_list() {
        let p = policy("engine_plugins = [\"vieux/sshfs:*\"]\n[[allow]]\nname = \"a\"\n");
        let d = decide_engine_plugin(&p, "vieux/sshfs:latest");
        assert_eq!(d.rule(), Some(1));
        assert_eq!(d.to_string(), r#"allowed by engine_plugins[1] = "vieux/sshfs:*""#);
        let d = decide_engine_plugin(&p, "evil/sshfs");
        assert_eq!(d.denied().map(|d| d.why.kind()), Some(WhyKind::EnginePlugin));
        assert!(d.to_string().contains("no engine_plugins entry allows it"), "{d}");
    }
}
