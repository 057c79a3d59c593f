//! The allowlist: `allowlist.toml` parsed into a [`Policy`], and the pure decision
//! [`Policy::evaluate`] that both binaries use. A bad file is refused whole, with its
//! file, line and column; nothing is guessed.
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

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

use crate::container::Container;
use crate::reference::{self, Reference};

/// Longest `stop_timeout_secs` accepted; a longer stop is better written as `kill`.
pub const MAX_STOP_TIMEOUT_SECS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Act on denied containers.
    #[default]
    Enforce,
    /// Log and count what would be done, touch nothing.
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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

/// The outcome of [`Policy::evaluate`] for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// 1-based index of the first rule that allows the container.
    pub rule: Option<usize>,
    /// Human-readable: the matching rule, or why nothing matched.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    action: Action,
    stop_timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    allow: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    labels: Option<BTreeMap<String, Spanned<String>>>,
}

impl Policy {
    /// Reads and parses a policy file. The error names the file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// Parses policy text; `origin` names it in errors (a path, usually).
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
            PolicyError::Invalid {
                path: origin.to_string(),
                line,
                column,
                message,
            }
        };
        if text.trim().is_empty() {
            return Err(invalid(
                None,
                "the policy is empty: refusing it (an empty allowlist would deny every container)".into(),
            ));
        }
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| invalid(e.span(), e.message().trim().to_string()))?;
        let stop_timeout = match raw.stop_timeout_secs {
            Some(s) if *s.get_ref() > MAX_STOP_TIMEOUT_SECS => {
                return Err(invalid(
                    Some(s.span()),
                    format!("stop_timeout_secs must be at most {MAX_STOP_TIMEOUT_SECS}"),
                ));
            }
            Some(s) => Duration::from_secs(s.into_inner()),
            None => Duration::from_secs(10),
        };
        if raw.allow.is_empty() {
            return Err(invalid(
                None,
                "no [[allow]] rule: refusing a policy that would deny every container".into(),
            ));
        }
        let mut rules = Vec::with_capacity(raw.allow.len());
        for (i, spanned) in raw.allow.into_iter().enumerate() {
            let rule_span = spanned.span();
            let r = spanned.into_inner();
            let field = |s: &Spanned<String>, what: &str, f: &dyn Fn(&str) -> Result<(), String>| {
                f(s.get_ref()).map_err(|m| invalid(Some(s.span()), format!("allow[{}].{what}: {m}", i + 1)))
            };
            let name = match &r.name {
                Some(n) => {
                    field(n, "name", &check_name)?;
                    Some(
                        compile(n.get_ref())
                            .map_err(|m| invalid(Some(n.span()), format!("allow[{}].name: {m}", i + 1)))?,
                    )
                }
                None => None,
            };
            let image = match &r.image {
                Some(img) => Some(
                    compile_image(img.get_ref())
                        .map_err(|m| invalid(Some(img.span()), format!("allow[{}].image: {m}", i + 1)))?,
                ),
                None => None,
            };
            let mut labels = Vec::new();
            for (key, value) in r.labels.iter().flatten() {
                if key.is_empty() {
                    return Err(invalid(
                        Some(value.span()),
                        format!("allow[{}].labels: empty label key", i + 1),
                    ));
                }
                let p = compile(value.get_ref()).map_err(|m| {
                    invalid(Some(value.span()), format!("allow[{}].labels.{key}: {m}", i + 1))
                })?;
                labels.push((key.clone(), p));
            }
            if name.is_none() && image.is_none() && labels.is_empty() {
                return Err(invalid(
                    Some(rule_span),
                    format!(
                        "allow[{}]: a rule needs at least one of name, image, labels (an empty rule would allow everything)",
                        i + 1
                    ),
                ));
            }
            rules.push(Rule {
                index: i + 1,
                line: line_col(text, rule_span.start).0,
                name,
                image,
                labels,
            });
        }
        Ok(Policy {
            mode: raw.mode,
            action: raw.action,
            stop_timeout,
            rules,
        })
    }

    /// Judges `c` on the facts it holds. Pure: no I/O, same answer for the same inputs.
    ///
    /// Rules are tried in order; the first that matches allows. A rule that cannot be
    /// settled on these facts (the image is not resolved yet, a label is hidden or was not
    /// kept) makes the answer [`Judgement::Unknown`] unless an earlier rule already
    /// matched: an answer from partial facts is given only when full facts could not change
    /// it, not even which rule allows.
    pub fn judge(&self, c: &Container) -> Judgement {
        for r in &self.rules {
            match r.check(c) {
                Tri::Yes => {
                    return Judgement::Allowed {
                        rule: r.index,
                        reason: format!("allowed by {r}"),
                    };
                }
                Tri::No => {}
                Tri::Unknown(missing) => return Judgement::Unknown { missing },
            }
        }
        Judgement::Denied {
            reason: self.denial_reason(c),
        }
    }

    /// Why nothing allows `c`. Podman names images built or imported on the host
    /// `localhost/NAME:TAG` where Docker says `NAME:TAG`, which reads as Docker Hub's
    /// `docker.io/library/NAME:TAG`: two different repositories, and a rule for the one never
    /// allows the other (a Hub rule must not let anyone who can build an image here name it
    /// past the policy). A rule that would allow the container under the Hub name was most
    /// likely written for it: the reason says which, and what to write instead.
    fn denial_reason(&self, c: &Container) -> String {
        let Some(hub) = hub_twin(&c.image) else {
            return NO_RULE.to_string();
        };
        let twin = Container {
            image: hub.clone(),
            ..c.clone()
        };
        let Some(r) = self.rules.iter().find(|r| r.check(&twin) == Tri::Yes) else {
            return NO_RULE.to_string();
        };
        let fix = match &r.image {
            Some(ImageRule::Tag { written, .. }) if !written.contains('/') => {
                format!("write image = \"localhost/{written}\"")
            }
            _ => "write the rule's image with localhost/".to_string(),
        };
        format!(
            "{NO_RULE}: {r} allows {hub}, not Podman's local {}; {fix} (docs/podman.md)",
            c.image
        )
    }

    /// [`Policy::judge`] as a yes/no verdict; an undecided judgement is not an allow.
    pub fn evaluate(&self, c: &Container) -> Verdict {
        match self.judge(c) {
            Judgement::Allowed { rule, reason } => Verdict {
                allowed: true,
                rule: Some(rule),
                reason,
            },
            Judgement::Denied { reason } => Verdict {
                allowed: false,
                rule: None,
                reason,
            },
            Judgement::Unknown { missing } => Verdict {
                allowed: false,
                rule: None,
                reason: format!("undecided: {missing} not known"),
            },
        }
    }
}

/// Why nothing allows a container.
pub const NO_RULE: &str = "no [[allow]] rule matches";

/// The Docker Hub name Docker would give a Podman-local image: `localhost/app:1` →
/// `docker.io/library/app:1`. `None` for anything not `localhost/` or pinned by digest.
fn hub_twin(image: &str) -> Option<String> {
    let r = Reference::parse(image).ok()?;
    let path = r.name.strip_prefix("localhost/")?;
    if r.digest.is_some() {
        return None;
    }
    Some(format!(
        "{}:{}",
        reference::normalise_name(path),
        r.tag.as_deref()?
    ))
}

/// What the policy says about a container on the facts at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Allowed {
        rule: usize,
        reason: String,
    },
    Denied {
        reason: String,
    },
    /// The facts at hand cannot settle it; `missing` names what is lacking.
    Unknown {
        missing: &'static str,
    },
}

/// A match that may not be decidable on partial facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    /// Undecidable; names what is missing.
    Unknown(&'static str),
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
    /// Whether any rule looks at label `key`.
    pub fn uses_label_key(&self, key: &str) -> bool {
        self.rules.iter().any(|r| r.labels.iter().any(|(k, _)| k == key))
    }
}

impl Rule {
    /// Every field given must match.
    pub fn check(&self, c: &Container) -> Tri {
        let name = self
            .name
            .as_ref()
            .map_or(Tri::Yes, |p| Tri::of(p.matcher.is_match(&c.name)));
        name.and(|| self.image.as_ref().map_or(Tri::Yes, |i| i.check(c)))
            .and(|| {
                self.labels
                    .iter()
                    .fold(Tri::Yes, |acc, (k, p)| acc.and(|| label_check(c, k, p)))
            })
    }
}

fn label_check(c: &Container, key: &str, p: &Pattern) -> Tri {
    if c.hidden_labels.contains(&key) {
        return Tri::Unknown("a label the event does not show");
    }
    match c.labels.get(key) {
        Some(v) => Tri::of(p.matcher.is_match(v)),
        None if c.labels_cut => Tri::Unknown("a label left out of the stored copy"),
        None => Tri::No,
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
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

const UNRESOLVED: &str = "the image (not resolved yet)";

/// How the engine reads the image reference a container was created with.
enum Given<'a> {
    /// A name, maybe with a tag: `nginx:1.27`. Tag rules match it as written.
    Name(Reference),
    /// `name[:tag]@sha256:…`: the engine runs the digest, whatever the tag says.
    Digested(Reference),
    /// `sha256:<64 hex>` or a bare hex string, which the engine takes for an image ID (or
    /// its prefix) when no image has that name: only the resolved image tells which.
    IdLike(&'a str),
    /// Not a valid reference: only the resolved image's names can match.
    Invalid,
}

fn given(image: &str) -> Given<'_> {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Given::IdLike(hex);
    }
    match Reference::parse(image) {
        Ok(r) if r.digest.is_some() => Given::Digested(r),
        Ok(r) => Given::Name(r),
        Err(_) => Given::Invalid,
    }
}

/// Whether the container's image was picked by ID (prefix) rather than by name: only the
/// resolved image ID tells (a bare hex string is a name when an image has that name).
fn picked_by_id(c: &Container, hex: &str) -> bool {
    c.image_id
        .strip_prefix("sha256:")
        .unwrap_or(&c.image_id)
        .starts_with(hex)
}

impl ImageRule {
    fn check(&self, c: &Container) -> Tri {
        let resolved = c.image_resolved();
        match self {
            ImageRule::Id(id) => {
                if resolved {
                    Tri::of(c.image_id == *id)
                } else if c.image.strip_prefix("sha256:").is_some_and(|h| h.len() == 64)
                    && reference::is_digest(&c.image)
                {
                    // A full ID names exactly one image, resolved or not.
                    Tri::of(c.image == *id)
                } else {
                    Tri::Unknown(UNRESOLVED)
                }
            }
            ImageRule::Tag { pattern, .. } => {
                let by_tags = || {
                    if resolved {
                        Tri::of(
                            c.image_tags
                                .iter()
                                .filter_map(|t| Reference::parse(t).ok()?.tagged())
                                .any(|t| pattern.matcher.is_match(&t)),
                        )
                    } else {
                        Tri::Unknown(UNRESOLVED)
                    }
                };
                match given(&c.image) {
                    Given::Name(r) => Tri::of(r.tagged().is_some_and(|t| pattern.matcher.is_match(&t))),
                    Given::IdLike(hex) if resolved && !picked_by_id(c, hex) => {
                        // A bare hex string that named an image: match it as a name.
                        Tri::of(
                            Reference::parse(&c.image)
                                .ok()
                                .and_then(|r| r.tagged())
                                .is_some_and(|t| pattern.matcher.is_match(&t)),
                        )
                    }
                    Given::IdLike(_) | Given::Digested(_) | Given::Invalid => by_tags(),
                }
            }
            ImageRule::Digest { normalised, .. } => {
                if let Given::Digested(r) = given(&c.image)
                    && r.digested().as_deref() == Some(normalised.as_str())
                {
                    return Tri::Yes;
                }
                if resolved {
                    Tri::of(
                        c.image_digests
                            .iter()
                            .filter_map(|d| Reference::parse(d).ok()?.digested())
                            .any(|d| d == *normalised),
                    )
                } else {
                    Tri::Unknown(UNRESOLVED)
                }
            }
        }
    }
}

fn check_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("empty pattern".into());
    }
    if n.starts_with('/') {
        return Err("write names without Docker's leading '/'".into());
    }
    Ok(())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn compile(text: &str) -> Result<Pattern, String> {
    let glob = GlobBuilder::new(text)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("bad glob {text:?}: {}", e.kind()))?;
    Ok(Pattern {
        text: text.to_string(),
        matcher: glob.compile_matcher(),
    })
}

/// Compiles an `image` field: digest pin, image-ID pin, or (normalised) tag glob.
fn compile_image(written: &str) -> Result<ImageRule, String> {
    if written.is_empty() {
        return Err("empty pattern".into());
    }
    if let Some((name, digest)) = written.split_once('@') {
        if !reference::is_digest(digest) {
            return Err("a digest must be sha256: followed by 64 lowercase hex digits".into());
        }
        if has_glob(name) {
            return Err("a digest rule names one repository: no wildcards before '@'".into());
        }
        let r = Reference::parse(written).map_err(|e| e.reason.to_string())?;
        let normalised = r.digested().ok_or("a digest rule needs a digest")?;
        return Ok(ImageRule::Digest {
            written: written.to_string(),
            normalised,
        });
    }
    if written.starts_with("sha256:") {
        if reference::is_digest(written) {
            return Ok(ImageRule::Id(written.to_string()));
        }
        return Err("an image ID must be sha256: followed by 64 lowercase hex digits".into());
    }
    let (name, tag) = reference::split_tag(written);
    let tag = tag.unwrap_or("latest");
    if tag.is_empty() || name.is_empty() {
        return Err("expected [registry/]repository[:tag]".into());
    }
    let first_is_glob = has_glob(name.split('/').next().unwrap_or(name));
    let full = if first_is_glob {
        format!("{name}:{tag}")
    } else {
        if !has_glob(name) {
            // A literal name must be a valid reference, so typos surface now, not as misses.
            Reference::parse(name).map_err(|e| e.reason.to_string())?;
        }
        format!("{}:{tag}", reference::normalise_name(name))
    };
    let pattern = compile(&full)?;
    Ok(ImageRule::Tag {
        written: written.to_string(),
        pattern,
    })
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::State;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn container(name: &str, image: &str) -> Container {
        Container {
            id: "c0ffee".into(),
            name: name.into(),
            image: image.into(),
            image_id: format!("sha256:{}", "f".repeat(64)),
            state: State::Running,
            ..Default::default()
        }
    }

    fn policy(rules: &str) -> Policy {
        Policy::parse(rules, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str) -> String {
        match Policy::parse(text, "allowlist.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn allowed(p: &Policy, c: &Container) -> bool {
        p.evaluate(c).allowed
    }

    #[test]
    fn design_example_parses_and_matches() {
        let p = policy(&format!(
            r#"
mode = "enforce"
action = "kill"
stop_timeout_secs = 10

[[allow]]
name = "web-*"
[[allow]]
image = "nginx:*"
[[allow]]
image = "redis@sha256:{HEX}"
[[allow]]
labels = {{ "com.example.team" = "platform" }}
"#
        ));
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.action, Action::Kill);
        assert_eq!(p.stop_timeout, Duration::from_secs(10));
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[0].line, 6);

        let v = p.evaluate(&container("web-1", "busybox"));
        assert_eq!((v.allowed, v.rule), (true, Some(1)));
        assert!(v.reason.contains("name=\"web-*\""), "{}", v.reason);
        // nginx:* matches nginx:1.27, nginx:latest, docker.io/library/nginx:1.27
        for img in [
            "nginx:1.27",
            "nginx:latest",
            "nginx",
            "docker.io/library/nginx:1.27",
            "library/nginx:1",
        ] {
            assert_eq!(p.evaluate(&container("x", img)).rule, Some(2), "{img}");
        }
        assert!(!allowed(&p, &container("x", "nginxx:1")));
        assert!(!allowed(&p, &container("x", "ghcr.io/nginx:1")));
        assert!(!allowed(&p, &container("x", "evil/nginx:1")));
        // digest pin matches the given digest and the image's repo digests
        assert!(allowed(&p, &container("x", &format!("redis@sha256:{HEX}"))));
        let mut tagged = container("x", "redis:7");
        assert!(!allowed(&p, &tagged));
        tagged.image_digests = vec![format!("redis@sha256:{HEX}")];
        assert_eq!(p.evaluate(&tagged).rule, Some(3));
        let mut wrong = container("x", "redis:7");
        wrong.image_digests = vec![format!("redis@sha256:{}", "e".repeat(64))];
        assert!(!allowed(&p, &wrong));
        // labels
        let mut l = container("x", "busybox");
        l.labels.insert("com.example.team".into(), "platform".into());
        assert_eq!(p.evaluate(&l).rule, Some(4));
        l.labels.insert("com.example.team".into(), "platform2".into());
        assert!(!allowed(&p, &l));
        let v = p.evaluate(&container("db", "postgres:16"));
        assert!(!v.allowed);
        assert_eq!(v.reason, "no [[allow]] rule matches");
    }

    #[test]
    fn defaults_are_enforce_kill_ten_seconds() {
        let p = policy("[[allow]]\nname = \"a\"\n");
        assert_eq!(
            (p.mode, p.action, p.stop_timeout),
            (Mode::Enforce, Action::Kill, Duration::from_secs(10))
        );
        let p = policy("mode = \"audit\"\naction = \"remove\"\n[[allow]]\nname = \"a\"\n");
        assert_eq!((p.mode, p.action), (Mode::Audit, Action::Remove));
        assert_eq!(
            policy("action = \"stop\"\n[[allow]]\nname = \"a\"\n").action,
            Action::Stop
        );
    }

    #[test]
    fn every_field_of_a_rule_must_match() {
        let p = policy(
            "[[allow]]\nname = \"api-*\"\nimage = \"ghcr.io/org/api:*\"\nlabels = { tier = \"b*\" }\n",
        );
        let mut c = container("api-1", "ghcr.io/org/api:v3");
        assert!(!allowed(&p, &c), "label missing");
        c.labels.insert("tier".into(), "backend".into());
        assert!(allowed(&p, &c));
        c.name = "web-1".into();
        assert!(!allowed(&p, &c), "name differs");
        c.name = "api-1".into();
        c.image = "ghcr.io/org/web:v3".into();
        assert!(!allowed(&p, &c), "image differs");
    }

    #[test]
    fn no_tag_means_latest_on_both_sides() {
        let p = policy("[[allow]]\nimage = \"ghcr.io/org/app\"\n");
        assert!(allowed(&p, &container("x", "ghcr.io/org/app")));
        assert!(allowed(&p, &container("x", "ghcr.io/org/app:latest")));
        assert!(!allowed(&p, &container("x", "ghcr.io/org/app:v1")));
        let p = policy("[[allow]]\nimage = \"ghcr.io/org/api:*\"\n");
        assert!(allowed(&p, &container("x", "ghcr.io/org/api")));
    }

    #[test]
    fn registry_ports_and_localhost() {
        let p = policy(
            "[[allow]]\nimage = \"localhost:5000/team/app\"\n[[allow]]\nimage = \"registry.local:5000/*:v?\"\n",
        );
        assert!(allowed(&p, &container("x", "localhost:5000/team/app")));
        assert!(allowed(&p, &container("x", "localhost:5000/team/app:latest")));
        assert!(!allowed(&p, &container("x", "localhost:5001/team/app")));
        assert!(!allowed(&p, &container("x", "team/app")));
        assert!(allowed(&p, &container("x", "registry.local:5000/a/b:v1")));
        assert!(!allowed(&p, &container("x", "registry.local:5000/a/b:v10")));
    }

    #[test]
    fn wildcard_first_component_is_matched_as_written() {
        let p = policy("[[allow]]\nimage = \"*:*\"\n");
        assert!(allowed(&p, &container("x", "anything/at/all:1")));
        assert!(
            !allowed(&p, &container("x", &format!("redis@sha256:{HEX}"))),
            "digest-only refs have no tag"
        );
        let p = policy("[[allow]]\nimage = \"*/library/busybox:*\"\n");
        assert!(allowed(&p, &container("x", "busybox:1")));
    }

    #[test]
    fn image_ids_never_match_as_names_but_their_tags_do() {
        let p = policy("[[allow]]\nimage = \"nginx:*\"\n");
        let mut c = container("x", &format!("sha256:{HEX}"));
        c.image_id = format!("sha256:{HEX}");
        assert!(!allowed(&p, &c));
        c.image_tags = vec!["nginx:1.27".into()];
        assert!(allowed(&p, &c));
        // A short ID (any length, as `docker run 2149f0` takes it) that the engine resolved
        // by ID prefix is judged by the image's tags, never as library/<hex>:latest ...
        let mut short = container("x", "0123456789ab");
        short.image_id = format!("sha256:{HEX}");
        let star = policy("[[allow]]\nimage = \"*\"\n");
        assert!(!allowed(&star, &short));
        for prefix in ["0123", "01234567", "sha256:0123"] {
            short.image = prefix.into();
            short.image_tags = vec!["nginx:1.27".into()];
            assert!(
                allowed(&p, &short),
                "{prefix}: allowed by the tag of the image it names"
            );
            short.image_tags.clear();
            assert!(!allowed(&p, &short), "{prefix}");
        }
        // ... but a hex string that named an image (no ID has that prefix) is a name.
        let mut named = container("x", "cafe");
        named.image_id = format!("sha256:{HEX}");
        assert!(allowed(&policy("[[allow]]\nimage = \"cafe\"\n"), &named));
        // Not resolved yet (from an event): undecidable, never guessed.
        named.source = crate::container::Source::Event;
        assert!(matches!(star.judge(&named), Judgement::Unknown { .. }));
    }

    #[test]
    fn a_digest_beside_a_tag_is_judged_by_the_digest_the_engine_runs() {
        let p = policy(&format!(
            "[[allow]]\nimage = \"nginx:1.27\"\n[[allow]]\nimage = \"redis@sha256:{HEX}\"\n"
        ));
        let evil = format!("nginx:1.27@sha256:{}", "e".repeat(64));
        let mut c = container("x", &evil);
        c.image_tags = vec![];
        assert!(!allowed(&p, &c), "the tag written beside a digest means nothing");
        c.image_tags = vec!["nginx:1.27".into()];
        assert!(
            allowed(&p, &c),
            "the image the digest names is tagged nginx:1.27 here"
        );
        let c = container("x", &format!("redis:7@sha256:{HEX}"));
        assert_eq!(p.evaluate(&c).rule, Some(2));
        let mut unresolved = container("x", &evil);
        unresolved.source = crate::container::Source::Event;
        assert!(matches!(p.judge(&unresolved), Judgement::Unknown { .. }));
    }

    #[test]
    fn partial_facts_decide_only_what_full_facts_could_not_change() {
        let p = policy(
            "[[allow]]\nname = \"web-*\"\n[[allow]]\nlabels = { name = \"x\" }\n[[allow]]\nimage = \"nginx:*\"\n",
        );
        let mut ev = container("web-1", "busybox");
        ev.source = crate::container::Source::Event;
        ev.hidden_labels = &["name", "image"];
        assert_eq!(
            p.judge(&ev),
            Judgement::Allowed {
                rule: 1,
                reason: p.evaluate(&container("web-1", "b")).reason
            }
        );
        ev.name = "db".into();
        assert!(
            matches!(p.judge(&ev), Judgement::Unknown { .. }),
            "rule 2 reads a label the event hides"
        );
        ev.hidden_labels = &[];
        assert_eq!(
            p.judge(&ev),
            Judgement::Denied {
                reason: NO_RULE.into()
            }
        );
        ev.labels_cut = true;
        assert!(
            matches!(p.judge(&ev), Judgement::Unknown { .. }),
            "a label left out of a bounded copy"
        );
        ev.labels.insert("name".into(), "x".into());
        assert!(matches!(p.judge(&ev), Judgement::Allowed { rule: 2, .. }));
    }

    #[test]
    fn image_id_pin() {
        let p = policy(&format!("[[allow]]\nimage = \"sha256:{}\"\n", "f".repeat(64)));
        assert!(allowed(&p, &container("x", "whatever:1")));
        let p = policy(&format!("[[allow]]\nimage = \"sha256:{HEX}\"\n"));
        assert!(!allowed(&p, &container("x", "whatever:1")));
    }

    #[test]
    fn globs_are_whole_string_and_case_sensitive() {
        let p = policy(
            "[[allow]]\nname = \"web-?\"\n[[allow]]\nname = \"db-[0-9]\"\n[[allow]]\nname = \"x[!a]\"\n",
        );
        assert!(allowed(&p, &container("web-1", "i")));
        assert!(!allowed(&p, &container("web-12", "i")));
        assert!(!allowed(&p, &container("my-web-1", "i")));
        assert!(!allowed(&p, &container("WEB-1", "i")));
        assert!(allowed(&p, &container("db-7", "i")));
        assert!(!allowed(&p, &container("db-x", "i")));
        assert!(allowed(&p, &container("xb", "i")));
        assert!(!allowed(&p, &container("xa", "i")));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = error("[[allow]]\nname = \"web-*\"\ncolour = \"red\"\n");
        assert!(e.starts_with("allowlist.toml:3:1: "), "{e}");
        assert!(e.contains("colour"), "{e}");

        let e = error("[[allow]]\nname = \"web-[\"\n");
        assert!(
            e.starts_with("allowlist.toml:2:8: allow[1].name: bad glob"),
            "{e}"
        );

        let e = error("mode = \"enforce\"\n[[allow]]\n\n[[allow]]\nname = \"x\"\n");
        assert!(
            e.starts_with("allowlist.toml:2:1: allow[1]: a rule needs at least one"),
            "{e}"
        );

        let e = error("[[allow]]\nlabels = {}\n");
        assert!(e.contains("a rule needs at least one"), "{e}");

        let e = error(&format!("[[allow]]\nimage = \"redis@sha256:{}\"\n", &HEX[..63]));
        assert!(
            e.starts_with("allowlist.toml:2:9: allow[1].image: a digest must be"),
            "{e}"
        );

        let e = error("[[allow]]\nimage = \"Nginx:1\"\n");
        assert!(e.contains("allow[1].image"), "{e}");

        let e = error(
            "[[allow]]\nimage = \"red*@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n",
        );
        assert!(e.contains("no wildcards before '@'"), "{e}");

        let e = error("mode = \"loud\"\n[[allow]]\nname = \"a\"\n");
        assert!(e.starts_with("allowlist.toml:1:8: "), "{e}");
        assert!(e.contains("enforce"), "{e}");

        let e = error("action = \"nuke\"\n[[allow]]\nname = \"a\"\n");
        assert!(e.contains("kill"), "{e}");

        let e = error("stop_timeout_secs = 9999\n[[allow]]\nname = \"a\"\n");
        assert!(
            e.starts_with("allowlist.toml:1:21: stop_timeout_secs must be at most"),
            "{e}"
        );

        let e = error("[[allow]]\nname = \"/web\"\n");
        assert!(e.contains("leading '/'"), "{e}");

        let e = error("[[allow]]\nlabels = { tier = \"[\" }\n");
        assert!(e.contains("allow[1].labels.tier: bad glob"), "{e}");
    }

    #[test]
    fn bad_toml_empty_files_and_no_rules_are_refused() {
        assert!(error("[[allow]\nname = 1").starts_with("allowlist.toml:1:"));
        assert!(error("").contains("empty"));
        assert!(error("  \n# only a comment\n").contains("no [[allow]] rule"));
        assert!(error("mode = \"enforce\"\n").contains("no [[allow]] rule"));
        assert!(error("[[allow]]\nname = 5\n").starts_with("allowlist.toml:2:8:"));
        assert!(error("[allow]\nname = \"a\"\n").starts_with("allowlist.toml:"));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé\nx", 9), (3, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    /// How rules read Podman's names for local images (docs/podman.md): `localhost/` is a
    /// registry of its own, not Docker Hub.
    #[test]
    fn podman_local_images_are_localhost_not_docker_hub() {
        let p = policy(
            r#"
[[allow]]
image = "localhost/app:*"
[[allow]]
name = "hub-*"
image = "tool:*"
[[allow]]
image = "*/sidecar:*"
"#,
        );
        // As Podman names an image it built or imported (`podman build -t app`).
        assert!(allowed(&p, &container("x", "localhost/app:latest")));
        assert!(allowed(&p, &container("x", "localhost/app")));
        // Docker Hub's app is another repository, and so is another local path.
        assert!(!allowed(&p, &container("x", "app:1")));
        assert!(!allowed(&p, &container("x", "docker.io/library/app:1")));
        assert!(!allowed(&p, &container("x", "localhost/team/app:1")));
        // A glob over the registry matches both, by choice.
        assert!(allowed(&p, &container("x", "localhost/sidecar:v1")));
        assert!(allowed(&p, &container("x", "docker.io/library/sidecar:v1")));

        // A rule for the Hub name never allows the local image, and the reason says how to
        // write the rule that would.
        let v = p.evaluate(&container("hub-1", "localhost/tool:2"));
        assert!(!v.allowed);
        assert!(v.reason.starts_with(NO_RULE), "{}", v.reason);
        assert!(
            v.reason.contains("allow[2]")
                && v.reason.contains("docker.io/library/tool:2")
                && v.reason.contains(r#"write image = "localhost/tool:*""#),
            "{}",
            v.reason
        );
        // ...only when that rule's other fields hold too.
        let v = p.evaluate(&container("other", "localhost/tool:2"));
        assert_eq!(v.reason, NO_RULE);
        assert_eq!(
            p.evaluate(&container("hub-1", "ghcr.io/x/tool:2")).reason,
            NO_RULE
        );
    }

    #[test]
    fn hub_twins_of_podman_names() {
        assert_eq!(
            hub_twin("localhost/app:1").as_deref(),
            Some("docker.io/library/app:1")
        );
        assert_eq!(
            hub_twin("localhost/app").as_deref(),
            Some("docker.io/library/app:latest")
        );
        assert_eq!(
            hub_twin("localhost/team/app:v").as_deref(),
            Some("docker.io/team/app:v")
        );
        assert_eq!(hub_twin("app:1"), None);
        assert_eq!(hub_twin("localhost:5000/app:1"), None);
        assert_eq!(hub_twin(&format!("localhost/app@sha256:{HEX}")), None);
    }
}
