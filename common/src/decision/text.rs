//! The one place a decision becomes text: the reason a log line, a record, an API answer,
//! the plugin's refusal and `check` give, and what would be done about it.

use std::fmt;

use super::{Allowed, Decision, Denied, Plan, Spare, Why};
use crate::policy::NO_RULE;

impl Spare {
    pub fn as_str(self) -> &'static str {
        match self {
            Spare::OwnContainer => "dockwarden's own container: never acted on",
            Spare::OwnProgram => "dockwarden's image running dockwarden's own program: never acted on",
        }
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allowed by {}", self.rule_text)?;
        if let Some(key) = &self.signed_by {
            write!(f, ", signed by {key}")?;
        }
        for (i, a) in self.granted.iter().enumerate() {
            f.write_str(if i == 0 { ", which grants " } else { "; " })?;
            a.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NoRule(None) => f.write_str(NO_RULE),
            Why::NoRule(Some(h)) => write!(
                f,
                "{NO_RULE}: {} allows {}, not Podman's local {}; {} (docs/podman.md)",
                h.rule, h.hub, h.local, h.fix
            ),
            Why::Unjudgeable(problem) => write!(f, "cannot be judged: {problem}"),
            Why::Power { rule, ask, grant } => {
                write!(f, "{ask} (allow[{rule}] matches it but does not grant {grant})")
            }
            Why::PowerUnknown { rule, missing } => write!(
                f,
                "what it asks of the host is not known ({}): allow[{rule}] matches it but grants nothing unknown",
                missing.join("; ")
            ),
            Why::EnginePlugin {
                plugin,
                listed: false,
            } => {
                write!(f, "engine plugin {plugin}: the policy lists no engine_plugins")
            }
            Why::EnginePlugin { plugin, listed: true } => {
                write!(f, "engine plugin {plugin}: no engine_plugins entry allows it")
            }
            Why::Signature { rule, failure } => {
                write!(
                    f,
                    "{failure} (allow[{rule}] matches it but wants a signature by one of its keys)"
                )
            }
        }
    }
}

/// The reason: which rule allows it, why it is denied or spared, or what is not known yet.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Spare(s) => f.write_str(s.as_str()),
            Decision::Allow(a) => a.fmt(f),
            Decision::Deny(d) => d.why.fmt(f),
            Decision::Undecided(m) => write!(f, "undecided: {} not known yet", m.as_str()),
        }
    }
}

impl Decision {
    /// What would be done about it now, and why: `check`'s last column.
    pub fn consequence(&self) -> String {
        match self {
            Decision::Spare(_) | Decision::Allow(_) => format!("nothing: {self}"),
            Decision::Undecided(m) => format!("decided when {} is known", m.as_str()),
            Decision::Deny(Denied { why, plan, audit }) => match (plan, audit) {
                (Plan::Nothing, _) => format!("nothing (not running): {why}"),
                (_, true) => format!("log only (audit mode): {why}"),
                (Plan::Now(a), false) => format!("{}: {why}", a.as_str()),
                (Plan::AtStart(a), false) => format!("{} when it starts: {why}", a.as_str()),
            },
        }
    }
}
