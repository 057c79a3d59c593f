//! What the policy says of an engine plugin (`docker plugin install|enable|upgrade|set`):
//! managed plugins run with whatever host privileges they declare, and no event path ever
//! sees them, so each must be listed in the top-level `engine_plugins`.

use super::reference::Reference;
use super::{ImageRule, Policy};

/// What `engine_plugins` says of one engine plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginJudgement {
    /// Allowed by entry `entry` (1-based), written so.
    Allowed { entry: usize, written: String },
    /// No entry matches the plugin (normalised); `listed`: the policy lists any at all.
    NotListed { plugin: String, listed: bool },
    /// Not a plugin reference the policy can judge.
    Unreadable(String),
}

impl Policy {
    /// Judges an engine plugin by its reference: the `remote` being pulled or upgraded to,
    /// or the name of an installed plugin (`enable`, `set`, `create`). Pure.
    ///
    /// Entries match like `image` rules: a tag glob matches a reference given by name (no
    /// tag means `:latest`), a digest pin matches a reference pinned to that digest; a
    /// reference pinned by digest is matched by digest only (a tag written beside a digest
    /// says nothing of what is pulled). Names are chosen by whoever builds or names a plugin:
    /// only a digest pin names its content.
    pub fn judge_engine_plugin(&self, reference: &str) -> PluginJudgement {
        let r = match Reference::parse(reference) {
            Ok(r) => r,
            Err(e) => return PluginJudgement::Unreadable(format!("engine plugin {reference:?}: {e}")),
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
                return PluginJudgement::Allowed {
                    entry: i + 1,
                    written: written.clone(),
                };
            }
        }
        PluginJudgement::NotListed {
            plugin: r.to_string(),
            listed: !self.engine_plugins.is_empty(),
        }
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
