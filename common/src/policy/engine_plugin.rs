//! What the policy says of an engine plugin (`docker plugin install|enable|upgrade|set`):
//! managed plugins run with whatever host privileges they declare, and no event path ever
//! sees them, so each must be listed in the top-level `engine_plugins`.

use super::reference::Reference;
use super::{ImageRule, Judgement, Policy};

impl Policy {
    /// Judges an engine plugin by its reference: the `remote` being pulled or upgraded to,
    /// or the name of an installed plugin (`enable`, `set`, `create`). Pure.
    ///
    /// Entries match like `image` rules: a tag glob matches a reference given by name (no
    /// tag means `:latest`), a digest pin matches a reference pinned to that digest; a
    /// reference pinned by digest is matched by digest only (a tag written beside a digest
    /// says nothing of what is pulled). Names are chosen by whoever builds or names a plugin:
    /// only a digest pin names its content.
    pub fn judge_engine_plugin(&self, reference: &str) -> Judgement {
        let r = match Reference::parse(reference) {
            Ok(r) => r,
            Err(e) => {
                return Judgement::Denied {
                    reason: format!("engine plugin: {e}"),
                };
            }
        };
        for (i, rule) in self.engine_plugins.iter().enumerate() {
            let (matched, written) = match rule {
                ImageRule::Tag { written, pattern } => (
                    r.digest.is_none() && r.tagged().is_some_and(|t| pattern.matcher.is_match(&t)),
                    written,
                ),
                ImageRule::Digest { written, normalised } => {
                    (r.digested().as_deref() == Some(normalised.as_str()), written)
                }
                ImageRule::Id(written) => (false, written),
            };
            if matched {
                return Judgement::Allowed {
                    rule: i + 1,
                    reason: format!(
                        "engine plugin {r} allowed by engine_plugins[{}] = {written:?}",
                        i + 1
                    ),
                };
            }
        }
        let reason = if self.engine_plugins.is_empty() {
            format!("engine plugin {r}: the policy lists no engine_plugins")
        } else {
            format!("engine plugin {r}: no engine_plugins entry matches")
        };
        Judgement::Denied { reason }
    }

    /// The `engine_plugins` entries as written.
    pub fn engine_plugins(&self) -> Vec<&str> {
        self.engine_plugins
            .iter()
            .map(|r| match r {
                ImageRule::Tag { written, .. } | ImageRule::Digest { written, .. } => written.as_str(),
                ImageRule::Id(id) => id.as_str(),
            })
            .collect()
    }
}
