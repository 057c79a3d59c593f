//! Which registry digest to verify for a container: the image as the container names it
//! (`Config.Image`) and the image's `RepoDigests` give the `(registry, repository, digest)`
//! whose cosign signature is looked up.
//!
//! The rules (docs/signatures.md, "Which digest"):
//! - named by digest (`repo@sha256:…`, with or without a tag): that digest in that
//!   repository: it is what the engine runs, whatever the tag says;
//! - named by tag (`repo:1`, `repo`): the image's `RepoDigests` in that same repository (the
//!   digest the engine recorded when it pushed or pulled this very image there). None there
//!   fails closed with `no registry digest`, even when the image has digests elsewhere: a
//!   local re-tag does not borrow another repository's signature;
//! - named by image ID (`sha256:…`, or a short hex ID; what the kubelet passes through
//!   cri-dockerd): every `RepoDigest` of the image, any of which may verify (each is a
//!   manifest the engine itself recorded for this image's content), at most
//!   [`MAX_CANDIDATES`]. No `RepoDigests` fails closed.

use std::fmt;

use crate::policy::reference::{Reference, looks_like_image_id};

use super::Failure;

/// At most this many `RepoDigests` are tried for an image named by ID.
pub const MAX_CANDIDATES: usize = 4;

/// A manifest digest in a repository of a registry: what a signature is looked up for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageDigest {
    /// As in normalised references: `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// The path in the registry: `library/nginx`, `team/app`.
    pub repository: String,
    /// `sha256:<64 hex>`.
    pub digest: String,
}

impl ImageDigest {
    /// Parses `name@sha256:…` (a `RepoDigests` entry, or any reference with a digest),
    /// normalising Docker Hub's short forms.
    pub fn parse(s: &str) -> Result<ImageDigest, String> {
        let r = Reference::parse(s).map_err(|e| e.to_string())?;
        let digest = r.digest.ok_or_else(|| format!("{s:?} names no digest"))?;
        ImageDigest::from_name(&r.name, digest)
    }

    fn from_name(name: &str, digest: String) -> Result<ImageDigest, String> {
        let (registry, repository) = name
            .split_once('/')
            .ok_or_else(|| format!("{name:?} has no repository"))?;
        Ok(ImageDigest {
            registry: registry.to_string(),
            repository: repository.to_string(),
            digest,
        })
    }

    /// The tag cosign stores this digest's signatures under: `sha256-<hex>.sig`.
    pub fn signature_tag(&self) -> String {
        format!("{}.sig", self.digest.replace(':', "-"))
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// The digests to verify for an image as the container names it (`image`, its
/// `Config.Image`) with the image's `RepoDigests`; see the module's rules. Fails closed
/// with [`Failure::NoRegistryDigest`].
pub fn digests_to_verify(image: &str, repo_digests: &[String]) -> Result<Vec<ImageDigest>, Failure> {
    let known: Vec<ImageDigest> = repo_digests
        .iter()
        .filter_map(|d| ImageDigest::parse(d).ok())
        .collect();
    let none = |detail: String| Failure::NoRegistryDigest { detail };
    if looks_like_image_id(image) {
        let mut out: Vec<ImageDigest> = Vec::new();
        for d in known {
            if !out.contains(&d) && out.len() < MAX_CANDIDATES {
                out.push(d);
            }
        }
        if out.is_empty() {
            return Err(none(format!(
                "image {image} was built or loaded locally and never pushed to or pulled from a registry"
            )));
        }
        return Ok(out);
    }
    let r = Reference::parse(image).map_err(|e| none(e.to_string()))?;
    if let Some(digest) = r.digest {
        return ImageDigest::from_name(&r.name, digest)
            .map(|d| vec![d])
            .map_err(none);
    }
    let mut out: Vec<ImageDigest> = Vec::new();
    for d in known.iter().filter(|d| d.name() == r.name) {
        if !out.contains(d) && out.len() < MAX_CANDIDATES {
            out.push(d.clone());
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    Err(none(if known.is_empty() {
        format!("image {image} was built or loaded locally and never pushed to or pulled from a registry")
    } else {
        let names: Vec<String> = known.iter().map(ImageDigest::name).collect();
        format!(
            "image {image} has no digest in {} (only in {})",
            r.name,
            names.join(", ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn by_tag_takes_the_repo_digest_of_that_repository() {
        let rd = vec![
            format!("127.0.0.1:5000/other@{}", h('b')),
            format!("127.0.0.1:5000/app@{}", h('a')),
        ];
        let got = digests_to_verify("127.0.0.1:5000/app:1", &rd).unwrap();
        assert_eq!(
            got,
            vec![ImageDigest {
                registry: "127.0.0.1:5000".into(),
                repository: "app".into(),
                digest: h('a')
            }]
        );
        assert_eq!(got[0].signature_tag(), format!("sha256-{}.sig", "a".repeat(64)));
        assert_eq!(got[0].to_string(), format!("127.0.0.1:5000/app@{}", h('a')));
    }

    #[test]
    fn docker_hub_short_forms_match_their_repo_digests() {
        let rd = vec![format!("nginx@{}", h('c'))];
        for image in [
            "nginx",
            "nginx:1.27",
            "docker.io/library/nginx:1.27",
            "index.docker.io/library/nginx",
        ] {
            let got = digests_to_verify(image, &rd).unwrap();
            assert_eq!(got[0].registry, "docker.io", "{image}");
            assert_eq!(got[0].repository, "library/nginx", "{image}");
        }
    }

    #[test]
    fn by_digest_is_that_digest_whatever_the_tag_or_repo_digests_say() {
        let rd = vec![format!("127.0.0.1:5000/app@{}", h('a'))];
        let got = digests_to_verify(&format!("127.0.0.1:5000/app:good@{}", h('e')), &rd).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digest, h('e'));
    }

    #[test]
    fn by_id_tries_every_repo_digest_up_to_the_bound() {
        let rd: Vec<String> = ['1', '2', '3', '4', '5']
            .iter()
            .map(|c| format!("127.0.0.1:5000/r{c}@{}", h(*c)))
            .collect();
        let got = digests_to_verify(&h('f'), &rd).unwrap();
        assert_eq!(got.len(), MAX_CANDIDATES);
        assert_eq!(got[0].repository, "r1");
        let got = digests_to_verify("ffffffffffff", &rd[..1]).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn fails_closed_without_a_digest_for_the_repository() {
        let e = digests_to_verify("dwtest-prov-local:1", &[]).unwrap_err();
        assert!(matches!(e, Failure::NoRegistryDigest { .. }));
        assert!(
            e.to_string()
                .starts_with("no registry digest: image dwtest-prov-local:1 was built"),
            "{e}"
        );
        let e = digests_to_verify(&h('f'), &[]).unwrap_err();
        assert!(matches!(e, Failure::NoRegistryDigest { .. }));
        // A local re-tag does not borrow another repository's digest.
        let rd = vec![format!("127.0.0.1:5000/app@{}", h('a'))];
        let e = digests_to_verify("myapp:latest", &rd).unwrap_err().to_string();
        assert!(
            e.contains("no digest in docker.io/library/myapp (only in 127.0.0.1:5000/app)"),
            "{e}"
        );
        let e = digests_to_verify("Bad/Name", &rd).unwrap_err();
        assert!(matches!(e, Failure::NoRegistryDigest { .. }));
    }
}
