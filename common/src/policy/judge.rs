//! What a rule says of one container's identity (name, image, labels) on the facts at hand,
//! and the Podman hint for a denial. Pure: no I/O. The decision over all rules and all facts
//! (identity, power, provenance) is [`crate::decision::decide`].

use super::reference::{self, Reference};
use super::{ImageRule, Missing, Pattern, Policy, Rule, Tri};
use crate::engine::container::Container;

/// A rule that would allow a Podman-local image under its Docker Hub name: most likely
/// written for it (see [`Policy::podman_hint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanHint {
    /// The rule, as [`Rule`]'s `Display` writes it.
    pub rule: String,
    /// The Hub name the rule allows (`docker.io/library/app:1`).
    pub hub: String,
    /// The image as Podman names it (`localhost/app:1`).
    pub local: String,
    /// What to write instead.
    pub fix: String,
}

impl Policy {
    /// When no rule allows `c`: Podman names images built or imported on the host
    /// `localhost/NAME:TAG` where Docker says `NAME:TAG`, which reads as Docker Hub's
    /// `docker.io/library/NAME:TAG`: two different repositories, and a rule for the one never
    /// allows the other (a Hub rule must not let anyone who can build an image here name it
    /// past the policy). A rule that would allow the container under the Hub name was most
    /// likely written for it: the hint says which, and what to write instead.
    pub fn podman_hint(&self, c: &Container) -> Option<PodmanHint> {
        let hub = hub_twin(&c.image)?;
        let twin = Container {
            image: hub.clone(),
            ..c.clone()
        };
        let r = self.rules.iter().find(|r| r.identity(&twin) == Tri::Yes)?;
        let fix = match &r.image {
            Some(ImageRule::Tag { written, .. }) if !written.contains('/') => {
                format!("write image = \"localhost/{written}\"")
            }
            _ => "write the rule's image with localhost/".to_string(),
        };
        Some(PodmanHint {
            rule: r.to_string(),
            hub,
            local: c.image.clone(),
            fix,
        })
    }
}

impl Rule {
    /// Whether `c`'s identity (name, image, labels) matches: every field given must match.
    pub fn identity(&self, c: &Container) -> Tri {
        let name = match &self.name {
            None => Tri::Yes,
            Some(_) if c.name_unknown => Tri::Unknown(Missing::Name),
            Some(p) => Tri::of(p.matcher.is_match(&c.name)),
        };
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
        return Tri::Unknown(Missing::HiddenLabel);
    }
    match c.labels.get(key) {
        Some(v) => Tri::of(p.matcher.is_match(v)),
        None if c.labels_cut => Tri::Unknown(Missing::CutLabel),
        None => Tri::No,
    }
}

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
                    Tri::Unknown(Missing::Image)
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
                        Tri::Unknown(Missing::Image)
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
                    Tri::Unknown(Missing::Image)
                }
            }
        }
    }
}

/// The Docker Hub name Docker would give a Podman-local image: `localhost/app:1` →
/// `docker.io/library/app:1`. `None` for anything not `localhost/` or pinned by digest.
pub(super) fn hub_twin(image: &str) -> Option<String> {
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
