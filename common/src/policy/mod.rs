//! The allowlist: `allowlist.toml` parsed into a [`Policy`] ([`parse`]), and what each rule
//! says of a container's identity ([`judge`]); the decision over all rules and every fact
//! is [`crate::decision`]. A bad file is refused whole, with its file, line and column;
//! nothing is guessed.
//!
//! Semantics (also in docs/policy.md):
//! - A container is allowed when ANY `[[allow]]` rule matches; within one rule EVERY field
//!   given must match. A rule with no field is refused, and so is a file with no rule (an
//!   empty or truncated file must never read as "deny everything").
//! - `name` and label values are whole-string, case-sensitive globs: `*` (any run of
//!   characters, `/` included), `?`, `[...]`/`[!...]`, `{a,b}`, `\` escapes.
//! - `image` is normalised like Docker does before it is globbed: `nginx:*` is
//!   `docker.io/library/nginx:*`; no tag means `:latest`. When the first path component is
//!   itself a wildcard (`*:*`, `*/app:*`) the pattern is matched as written against the
//!   normalised reference. `name@sha256:<hex>` pins a repo digest (the strong form);
//!   `sha256:<64 hex>` pins a local image ID.
//! - Host power (docs/policy.md, "Host power"): the top-level `profile` (`baseline` by
//!   default, `restricted`, `privileged`) says what a container may ask of the host unless
//!   the rule that allows it grants more ([`Rule::grants`], judged by [`crate::power`]);
//!   `engine_plugins` lists the engine plugins that may be installed, enabled or upgraded
//!   ([`Policy::judge_engine_plugin`]).
//! - `signed_by = ["keys/ci.pub", ...]` (docs/signatures.md): one of the listed public keys
//!   must have signed the registry digest the container runs ([`crate::provenance`]); a
//!   rule may say only this ("anything our CI signed").

mod engine_plugin;

pub use engine_plugin::PluginJudgement;
pub mod judge;
mod parse;
pub mod reference;

use std::fmt;
use std::time::Duration;

use globset::GlobMatcher;
use serde::Deserialize;

use crate::power::{Grants, Profile};
use crate::provenance::KeySet;

/// Longest `stop_timeout_secs` accepted; a longer stop is better written as `kill`.
pub const MAX_STOP_TIMEOUT_SECS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Act on denied containers.
    #[default]
    Enforce,
    /// Log and count what would be done, touch nothing.
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// SIGKILL: the container stays, stopped, for inspection.
    #[default]
    Kill,
    /// SIGTERM, then SIGKILL after `stop_timeout_secs`.
    Stop,
    /// Force-remove: the container is gone, and when caught at `create` it never runs.
    Remove,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Remove => "remove",
        }
    }
}

/// A refused policy file. `Invalid` always carries a position so an operator can go straight
/// to the mistake.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: cannot read the policy: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A validated allowlist.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub action: Action,
    pub stop_timeout: Duration,
    pub rules: Vec<Rule>,
    /// How much host power rules may grant (`profile = ...`, `baseline` when not given).
    pub profile: Profile,
    /// `engine_plugins = [...]`: the managed engine plugins that may be installed, enabled
    /// or upgraded (judged with [`Policy::judge_engine_plugin`]); none when not given.
    /// Each entry a reference glob (normalised like `image`) or a digest pin.
    engine_plugins: Vec<ImageRule>,
}

/// One `[[allow]]` entry, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based position among the `[[allow]]` entries, as logs and the API show it.
    pub index: usize,
    /// Line of the `[[allow]]` header in the file.
    pub line: usize,
    name: Option<Pattern>,
    image: Option<ImageRule>,
    labels: Vec<(String, Pattern)>,
    /// The host power this rule grants beyond what the policy's profile allows (its grant
    /// keys; empty when it has none).
    pub grants: Grants,
    /// `signed_by`: the keys any of which must have signed the registry digest it runs.
    pub signed_by: Option<KeySet>,
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

#[derive(Debug, Clone)]
enum ImageRule {
    /// Glob over the normalised `domain/path:tag`.
    Tag { written: String, pattern: Pattern },
    /// Exact normalised `domain/path@sha256:…`, matched against the image's repo digests.
    Digest { written: String, normalised: String },
    /// Exact local image ID `sha256:…`.
    Id(String),
}

/// Why nothing allows a container.
pub const NO_RULE: &str = "no [[allow]] rule matches";

/// What the facts at hand lack to settle the policy: a container seen only through an event,
/// or a stored copy that left something out. Judged again when full facts come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The image is not resolved yet (ID, repo tags and digests).
    Image,
    /// A label the event's attributes hide (they overwrite labels named like their keys).
    HiddenLabel,
    /// A label left out of a bounded stored copy.
    CutLabel,
    /// Whether it runs dockwarden's own program (an event naming our image).
    OwnProgram,
    /// What it asks of the host (an event shows none of it).
    Power,
    /// Its name (a service's tasks are named when they are made).
    Name,
    /// Whether a listed key signed its image (being verified).
    Signature,
}

impl Missing {
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Image => "the image (not resolved yet)",
            Missing::HiddenLabel => "a label the event does not show",
            Missing::CutLabel => "a label left out of the stored copy",
            Missing::OwnProgram => "whether it runs dockwarden's own program",
            Missing::Power => "what it asks of the host",
            Missing::Name => "its name",
            Missing::Signature => "its image's signature",
        }
    }
}

/// A match that may not be decidable on partial facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    /// Undecidable; names what is missing.
    Unknown(Missing),
}

impl Tri {
    fn of(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    /// Conjunction: one `No` settles it, else one `Unknown` leaves it open.
    fn and(self, next: impl FnOnce() -> Tri) -> Tri {
        match self {
            Tri::No => Tri::No,
            Tri::Yes => next(),
            Tri::Unknown(m) => match next() {
                Tri::No => Tri::No,
                _ => Tri::Unknown(m),
            },
        }
    }
}

impl Policy {
    /// The key sets the rules' `signed_by` name (for keeping their verified results).
    pub fn key_set_ids(&self) -> Vec<crate::provenance::KeySetId> {
        self.rules
            .iter()
            .filter_map(|r| r.signed_by.as_ref().map(KeySet::id))
            .collect()
    }

    /// Whether any rule looks at label `key`.
    pub fn uses_label_key(&self, key: &str) -> bool {
        self.rules.iter().any(|r| r.labels.iter().any(|(k, _)| k == key))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allow[{}]", self.index)?;
        let mut sep = " (";
        if let Some(n) = &self.name {
            write!(f, "{sep}name={:?}", n.text)?;
            sep = ", ";
        }
        if let Some(i) = &self.image {
            let written = match i {
                ImageRule::Tag { written, .. } | ImageRule::Digest { written, .. } => written,
                ImageRule::Id(id) => id,
            };
            write!(f, "{sep}image={written:?}")?;
            sep = ", ";
        }
        for (k, p) in &self.labels {
            write!(f, "{sep}label {k}={:?}", p.text)?;
            sep = ", ";
        }
        if let Some(keys) = &self.signed_by {
            write!(f, "{sep}signed_by={:?}", keys.paths())?;
            sep = ", ";
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
