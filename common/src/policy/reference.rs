//! Image references: parse and normalise them the way Docker does (`nginx` is
//! `docker.io/library/nginx:latest`), and tell image IDs apart from names.
//!
//! Written here rather than taken from a crate because the policy side must normalise
//! *patterns* too (`nginx:*`, `ghcr.io/org/*:v1`), which no reference parser accepts, and
//! the grammar needed is small (distribution/reference's `ParseNormalizedNamed`).

use std::fmt;

/// Docker Hub's canonical domain; `index.docker.io` and no domain at all both mean this.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Official images live under `library/` on Docker Hub.
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// A normalised image reference: `domain/path[:tag][@sha256:hex]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `domain/path`, e.g. `docker.io/library/nginx`.
    pub name: String,
    /// Explicit tag; `latest` is filled in only when there is neither a tag nor a digest.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the reference pins a digest.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: &'static str,
}

impl Reference {
    /// Parses and normalises `input` (`nginx`, `nginx:1.27`, `localhost:5000/team/app`,
    /// `ghcr.io/org/app@sha256:…`, `docker.io/library/nginx:1.27`).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let err = |reason| ReferenceError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        if looks_like_image_id(input) {
            return Err(err("this is an image ID, not a name"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(err("digest must be sha256: followed by 64 lowercase hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(err(
                "tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
        let name = normalise_name(name);
        let (domain, path) = name
            .split_once('/')
            .ok_or_else(|| err("missing repository path"))?;
        if !is_domain(domain) {
            return Err(err("bad registry domain"));
        }
        if !path.split('/').all(is_path_component) {
            return Err(err(
                "repository path components must be lowercase [a-z0-9] separated by ., _, __ or -",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { name, tag, digest })
    }

    /// `domain/path:tag`, when the reference has a tag (the form tag rules match).
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name))
    }

    /// `domain/path@sha256:…`, when the reference pins a digest (the form digest rules match).
    pub fn digested(&self) -> Option<String> {
        self.digest.as_ref().map(|d| format!("{}@{d}", self.name))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Splits `name[:tag]`: the tag is after the last `:` that follows the last `/`
/// (so `localhost:5000/app` has no tag).
pub fn split_tag(s: &str) -> (&str, Option<&str>) {
    let after_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[after_slash..].rfind(':') {
        Some(i) => (&s[..after_slash + i], Some(&s[after_slash + i + 1..])),
        None => (s, None),
    }
}

/// Adds Docker's implicit parts to a repository name: `nginx` → `docker.io/library/nginx`,
/// `team/app` → `docker.io/team/app`, `index.docker.io/x` → `docker.io/x`. The first
/// component is a registry domain when it has a `.` or `:` or is `localhost`.
/// Works on patterns too: glob characters are left where they are.
pub fn normalise_name(name: &str) -> String {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            let domain = if first == LEGACY_DEFAULT_DOMAIN {
                DEFAULT_DOMAIN
            } else {
                first
            };
            if domain == DEFAULT_DOMAIN && !rest.contains('/') {
                format!("{domain}/{OFFICIAL_REPO_PREFIX}{rest}")
            } else {
                format!("{domain}/{rest}")
            }
        }
        Some(_) => format!("{DEFAULT_DOMAIN}/{name}"),
        None => format!("{DEFAULT_DOMAIN}/{OFFICIAL_REPO_PREFIX}{name}"),
    }
}

/// `sha256:<64 lowercase hex>`.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Image IDs (`sha256:<hex>`, or 12–64 bare hex digits) parse as names by the reference
/// grammar (`library/<hex>:latest`), so they are recognised first and never matched as names.
pub fn looks_like_image_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (12..=64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn is_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => r.to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_forms_normalise() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(norm("library/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            norm("docker.io/library/nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            norm("index.docker.io/library/nginx:latest"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("team/app:v2"), "docker.io/team/app:v2");
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        assert_eq!(norm("localhost:5000/team/app"), "localhost:5000/team/app:latest");
        assert_eq!(norm("localhost:5000/app:1.0"), "localhost:5000/app:1.0");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(
            norm("registry.example.com:443/a/b/c:x"),
            "registry.example.com:443/a/b/c:x"
        );
        assert_eq!(norm("ghcr.io/org/app"), "ghcr.io/org/app:latest");
    }

    #[test]
    fn digests_are_kept_and_validated() {
        assert_eq!(
            norm(&format!("ghcr.io/org/app@{D}")),
            format!("ghcr.io/org/app@{D}")
        );
        assert_eq!(
            norm(&format!("redis@{D}")),
            format!("docker.io/library/redis@{D}")
        );
        assert_eq!(
            norm(&format!("redis:7@{D}")),
            format!("docker.io/library/redis:7@{D}")
        );
        assert!(norm("redis@sha256:abc").starts_with("ERR"));
        assert!(norm(&format!("redis@{}", D.to_uppercase())).starts_with("ERR"));
        assert!(norm("redis@md5:0123").starts_with("ERR"));
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "a//b",
            "-a/b",
            "ex ample/x",
            "docker.io/",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn image_ids_are_not_names() {
        assert!(looks_like_image_id(D));
        assert!(looks_like_image_id("0123456789ab"));
        assert!(!looks_like_image_id("nginx"));
        assert!(!looks_like_image_id("deadbeef"));
        assert!(Reference::parse(D).is_err());
        assert!(Reference::parse("0123456789ab").is_err());
    }

    #[test]
    fn split_tag_ignores_registry_port() {
        assert_eq!(split_tag("localhost:5000/app"), ("localhost:5000/app", None));
        assert_eq!(
            split_tag("localhost:5000/app:v1"),
            ("localhost:5000/app", Some("v1"))
        );
        assert_eq!(split_tag("nginx:*"), ("nginx", Some("*")));
    }

    #[test]
    fn path_components() {
        assert!(is_path_component("a__b"));
        assert!(is_path_component("a---b.c_d"));
        assert!(!is_path_component("a___b"));
        assert!(!is_path_component("a..b"));
        assert!(!is_path_component("_a"));
    }
}
