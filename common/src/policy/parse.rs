//! The policy file: TOML → [`Policy`], refused whole with file:line:column when bad.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use globset::GlobBuilder;
use serde::Deserialize;
use toml::Spanned;

use super::reference::{self, Reference};
use super::{
    Action, Grants, ImageRule, MAX_STOP_TIMEOUT_SECS, Mode, Pattern, Policy, PolicyError, Profile, Rule,
};
use crate::provenance::KeySet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    action: Action,
    stop_timeout_secs: Option<Spanned<u64>>,
    profile: Option<Spanned<Profile>>,
    engine_plugins: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    labels: Option<BTreeMap<String, Spanned<String>>>,
    // Grants of host power (docs/policy.md, "Host power").
    privileged: Option<Spanned<bool>>,
    host_namespaces: Option<Spanned<Vec<Spanned<String>>>>,
    mounts: Option<Spanned<Vec<Spanned<String>>>>,
    capabilities: Option<Spanned<Vec<Spanned<String>>>>,
    devices: Option<Spanned<Vec<Spanned<String>>>>,
    unconfined: Option<Spanned<Vec<Spanned<String>>>>,
    sysctls: Option<Spanned<Vec<Spanned<String>>>>,
    run_as_root: Option<Spanned<bool>>,
    allow_privilege_escalation: Option<Spanned<bool>>,
    /// Public keys (paths relative to the policy file's directory), any of which must have
    /// signed the registry digest the container runs (docs/signatures.md).
    signed_by: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A grant key's entries and how each is added to [`Grants`].
type ListKey<'a> = (
    &'static str,
    &'a Option<Spanned<Vec<Spanned<String>>>>,
    fn(&mut Grants, &str) -> Result<(), String>,
);

impl RawRule {
    /// The grant keys given, with the span of each value: for refusing them where they
    /// mean nothing.
    fn grant_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut keys = Vec::new();
        if let Some(b) = &self.privileged {
            keys.push(("privileged", b.span()));
        }
        for (key, list, _) in self.grant_lists() {
            if let Some(l) = list {
                keys.push((key, l.span()));
            }
        }
        for (key, b) in [
            ("run_as_root", &self.run_as_root),
            ("allow_privilege_escalation", &self.allow_privilege_escalation),
        ] {
            if let Some(b) = b {
                keys.push((key, b.span()));
            }
        }
        keys
    }

    fn grant_lists(&self) -> [ListKey<'_>; 6] {
        [
            (
                "host_namespaces",
                &self.host_namespaces,
                Grants::add_host_namespace,
            ),
            ("mounts", &self.mounts, Grants::add_mount),
            ("capabilities", &self.capabilities, Grants::add_capability),
            ("devices", &self.devices, Grants::add_device),
            ("unconfined", &self.unconfined, Grants::add_unconfined),
            ("sysctls", &self.sysctls, Grants::add_sysctl),
        ]
    }
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
        let profile = raw.profile.map(Spanned::into_inner).unwrap_or_default();
        let mut engine_plugins = Vec::new();
        for (j, p) in raw.engine_plugins.iter().flatten().enumerate() {
            let at = |m: String| invalid(Some(p.span()), format!("engine_plugins[{}]: {m}", j + 1));
            match compile_image(p.get_ref()).map_err(at)? {
                ImageRule::Id(_) => {
                    return Err(at("an engine plugin is named by reference (name[:tag] or name@sha256:...), not by image ID".into()));
                }
                rule => engine_plugins.push(rule),
            }
        }
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
            let signed_by = match &r.signed_by {
                None => None,
                Some(list) if list.get_ref().is_empty() => {
                    return Err(invalid(
                        Some(list.span()),
                        format!(
                            "allow[{}].signed_by: an empty list of keys would verify nothing",
                            i + 1
                        ),
                    ));
                }
                Some(list) => {
                    let paths: Vec<&str> = list.get_ref().iter().map(|p| p.get_ref().as_str()).collect();
                    let base = key_base(origin);
                    Some(KeySet::load(&base, &paths).map_err(|e| {
                        let (j, span) = list
                            .get_ref()
                            .iter()
                            .enumerate()
                            .find(|(_, p)| Some(p.get_ref().as_str()) == e.path())
                            .map_or((0, list.span()), |(j, p)| (j + 1, p.span()));
                        let at = if j > 0 { format!("[{j}]") } else { String::new() };
                        invalid(Some(span), format!("allow[{}].signed_by{at}: {e}", i + 1))
                    })?)
                }
            };
            if name.is_none() && image.is_none() && labels.is_empty() && signed_by.is_none() {
                return Err(invalid(
                    Some(rule_span),
                    format!(
                        "allow[{}]: a rule needs at least one of name, image, labels, signed_by (an empty rule would allow everything)",
                        i + 1
                    ),
                ));
            }
            let grants = compile_grants(&r, profile)
                .map_err(|(span, m)| invalid(Some(span), format!("allow[{}].{m}", i + 1)))?;
            rules.push(Rule {
                index: i + 1,
                line: line_col(text, rule_span.start).0,
                name,
                image,
                labels,
                grants,
                signed_by,
            });
        }
        Ok(Policy {
            mode: raw.mode,
            action: raw.action,
            stop_timeout,
            rules,
            profile,
            engine_plugins,
        })
    }
}

/// A rule's grant keys into [`Grants`]; an error carries the span to point at and the
/// message after `allow[N].` (`mounts[2]: ...`, list entries counted from 1 like rules).
/// Under `privileged` every grant key is refused (nothing is judged, so nothing is
/// granted); `run_as_root` and `allow_privilege_escalation` only mean something under
/// `restricted`.
fn compile_grants(r: &RawRule, profile: Profile) -> Result<Grants, (Range<usize>, String)> {
    for (key, span) in r.grant_keys() {
        if profile == Profile::Privileged {
            return Err((
                span,
                format!(
                    "{key}: grants mean nothing under profile = \"privileged\" (it judges identity only): remove them, or choose profile = \"baseline\" or \"restricted\""
                ),
            ));
        }
        if profile == Profile::Baseline && matches!(key, "run_as_root" | "allow_privilege_escalation") {
            return Err((
                span,
                format!(
                    "{key}: only means something under profile = \"restricted\" (baseline does not judge it)"
                ),
            ));
        }
    }
    let mut g = Grants::default();
    if let Some(b) = &r.privileged {
        g.set_privileged(*b.get_ref());
    }
    for (key, list, add) in r.grant_lists() {
        for (j, entry) in list.iter().flat_map(|l| l.get_ref()).enumerate() {
            add(&mut g, entry.get_ref()).map_err(|m| (entry.span(), format!("{key}[{}]: {m}", j + 1)))?;
        }
    }
    if let Some(b) = &r.run_as_root {
        g.set_run_as_root(*b.get_ref());
    }
    if let Some(b) = &r.allow_privilege_escalation {
        g.set_allow_privilege_escalation(*b.get_ref());
    }
    Ok(g)
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

/// The directory `signed_by` paths are relative to: the policy file's (`origin` is its path
/// when the policy comes from a file; otherwise the working directory).
fn key_base(origin: &str) -> std::path::PathBuf {
    match Path::new(origin).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub(super) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
