//! Provenance: whether a listed key signed the registry digest a container runs, as cosign
//! stores key-pair signatures (its SIGNATURE_SPEC, tag-based discovery), verified by a cached
//! client that fails closed. See docs/signatures.md for what is and is not verified.
//!
//! # Layout
//! - [`keys`]: PEM public keys (cosign's `cosign.pub`) and the ordered [`KeySet`] of a
//!   `signed_by` list, with its content id.
//! - [`subject`]: which `(registry, repository, digest)` to verify for an image as the
//!   container names it, from the image's `RepoDigests` ([`subject::digests_to_verify`]).
//! - [`cosign`]: the signature manifest and its layers judged as plain values (sans-IO):
//!   media types, blob digests, the signature annotation, the simplesigning payload.
//! - [`registry`]: the registry side over the one HTTP client: endpoints (plain HTTP only on
//!   loopback), the Bearer-token and Basic flows, bounded manifests, blobs and redirects.
//! - [`credentials`]: a Docker `config.json`'s `auths`, never logged.
//! - [`verifier`]: the async [`Verifier`]: cache by (digest, key set), single flight,
//!   negative TTLs, "a verified image survives its registry going away", counters.
//!
//! # How a gate uses it
//! A pure decision calls [`Verifier::lookup`] (no I/O): `Some(outcome)` decides, `None`
//! means "not known yet". The gate then awaits [`Verifier::verify`] (bounded by the
//! verifier's own timeout) and decides again; the result is cached for every other gate.

pub mod cosign;
pub mod credentials;
pub mod keys;
pub mod registry;
pub mod subject;
pub mod verifier;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod testvectors;

use std::fmt;

pub use credentials::{CredentialsError, RegistryCredentials};
pub use keys::{KeyError, KeySet, KeySetId, PublicKey};
pub use registry::RegistrySettings;
pub use subject::{ImageDigest, digests_to_verify};
pub use verifier::{Stats, Verifier, VerifierSettings};

/// The process's verifier, from the operator's settings: a Docker `config.json` with
/// registry credentials (`--registry-config`, never logged) and an extra CA bundle for HTTPS
/// registries (`--registry-ca`, besides the system's roots; a `FROM scratch` image has
/// none). A file named but unreadable is an error; no roots at all only leaves HTTPS
/// registries unverifiable, which fails closed (and says so).
pub fn verifier_from(
    registry_config: Option<&std::path::Path>,
    registry_ca: Option<&std::path::Path>,
) -> Result<Verifier, String> {
    let credentials = match registry_config {
        Some(p) => RegistryCredentials::load(p).map_err(|e| e.to_string())?,
        None => RegistryCredentials::none(),
    };
    if registry_config.is_some() {
        tracing::info!(registries = ?credentials.registries(), notes = ?credentials.notes(),
            "registry credentials loaded (for signature verification)");
    }
    let tls = match crate::http::tls::TlsSettings::load(registry_ca) {
        Ok(t) => {
            for p in &t.problems {
                tracing::warn!(problem = %p, "a CA root could not be read");
            }
            if t.roots == 0 {
                tracing::warn!(
                    "no CA roots: signatures in HTTPS registries cannot be verified (give --registry-ca)"
                );
            }
            Some(t)
        }
        Err(e) if registry_ca.is_some() => return Err(e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "no CA roots: signatures in HTTPS registries cannot be verified (give --registry-ca)");
            None
        }
    };
    Ok(Verifier::new(VerifierSettings {
        registry: RegistrySettings {
            credentials,
            tls,
            ..Default::default()
        },
        ..Default::default()
    }))
}

/// What verification says of one image for one key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified(Verified),
    Failed(Failure),
}

impl Outcome {
    pub fn kind(&self) -> Kind {
        match self {
            Outcome::Verified(_) => Kind::Verified,
            Outcome::Failed(f) => f.kind(),
        }
    }

    pub fn is_verified(&self) -> bool {
        matches!(self, Outcome::Verified(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Verified(v) => v.fmt(f),
            Outcome::Failed(e) => e.fmt(f),
        }
    }
}

/// A signature by a listed key over a payload that names this digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that verified, as the policy wrote its path (`keys/ci.pub`).
    pub key: String,
    /// The registry digest whose signature verified.
    pub digest: ImageDigest,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signed by {} ({})", self.key, self.digest.digest)
    }
}

/// Why an image does not verify. `Display` is the operator's reason, as logs, the plugin's
/// denial message and status-api show it. Nothing here ever holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The image has no digest in a registry (built or loaded locally, never pushed), or
    /// none for the repository it is named by.
    #[error("no registry digest: {detail}")]
    NoRegistryDigest { detail: String },
    /// The signature tag (`sha256-<hex>.sig`) does not exist in the repository.
    #[error("no cosign signature for {digest}")]
    NoSignature { digest: String },
    /// Signature layers exist, but none verifies with any listed key.
    #[error("signature does not verify with {}", keys.join(", "))]
    DoesNotVerify { digest: String, keys: Vec<String> },
    /// The registry could not be asked: refused, timed out, broke off, answered 5xx or 429.
    #[error("registry {registry} unreachable: {message}")]
    Unreachable { registry: String, message: String },
    /// The registry refused access (401/403 after authenticating, or credentials needed).
    #[error("registry {registry} refused access: {message}")]
    Denied { registry: String, message: String },
    /// The signature manifest or a layer is not what cosign writes.
    #[error("malformed cosign signature for {digest}: {message}")]
    Malformed { digest: String, message: String },
    /// Only a cosign v3 Sigstore bundle (OCI 1.1 referrer) is there.
    #[error(
        "cosign bundle format not supported for {digest} (sign with `cosign sign --new-bundle-format=false --use-signing-config=false`, see docs/signatures.md)"
    )]
    BundleUnsupported { digest: String },
    /// A listed key signed a payload, but it is not a cosign image signature of this digest
    /// (a signature of another image replayed here, or another payload type).
    #[error("signed payload does not match {digest}: {message}")]
    PayloadMismatch { digest: String, message: String },
    /// The blob the registry served is not the one its descriptor names.
    #[error("signature payload of {digest} does not match its descriptor: {message}")]
    BlobMismatch { digest: String, message: String },
    /// A manifest, a blob or a layer count is over its bound.
    #[error("{what} too large: {message}")]
    TooLarge { what: String, message: String },
}

impl Failure {
    pub fn kind(&self) -> Kind {
        match self {
            Failure::NoRegistryDigest { .. } => Kind::NoRegistryDigest,
            Failure::NoSignature { .. } => Kind::NoSignature,
            Failure::DoesNotVerify { .. } => Kind::DoesNotVerify,
            Failure::Unreachable { .. } => Kind::Unreachable,
            Failure::Denied { .. } => Kind::Denied,
            Failure::Malformed { .. } => Kind::Malformed,
            Failure::BundleUnsupported { .. } => Kind::BundleUnsupported,
            Failure::PayloadMismatch { .. } => Kind::PayloadMismatch,
            Failure::BlobMismatch { .. } => Kind::BlobMismatch,
            Failure::TooLarge { .. } => Kind::TooLarge,
        }
    }

    /// The registry could not be asked (rather than answering about the signature): such a
    /// result never replaces a verified one and is cached only briefly.
    pub fn is_transient(&self) -> bool {
        matches!(self, Failure::Unreachable { .. } | Failure::Denied { .. })
    }
}

/// The result classes, for metrics labels and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Verified,
    NoRegistryDigest,
    NoSignature,
    DoesNotVerify,
    Unreachable,
    Denied,
    Malformed,
    BundleUnsupported,
    PayloadMismatch,
    BlobMismatch,
    TooLarge,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Verified,
        Kind::NoRegistryDigest,
        Kind::NoSignature,
        Kind::DoesNotVerify,
        Kind::Unreachable,
        Kind::Denied,
        Kind::Malformed,
        Kind::BundleUnsupported,
        Kind::PayloadMismatch,
        Kind::BlobMismatch,
        Kind::TooLarge,
    ];

    /// A metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Verified => "verified",
            Kind::NoRegistryDigest => "no_registry_digest",
            Kind::NoSignature => "no_signature",
            Kind::DoesNotVerify => "does_not_verify",
            Kind::Unreachable => "unreachable",
            Kind::Denied => "denied",
            Kind::Malformed => "malformed",
            Kind::BundleUnsupported => "bundle_unsupported",
            Kind::PayloadMismatch => "payload_mismatch",
            Kind::BlobMismatch => "blob_mismatch",
            Kind::TooLarge => "too_large",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_issue_words_them() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            Failure::NoSignature { digest: d.clone() }.to_string(),
            format!("no cosign signature for {d}")
        );
        assert_eq!(
            Failure::DoesNotVerify {
                digest: d.clone(),
                keys: vec!["keys/ci.pub".into(), "keys/ci-2026.pub".into()]
            }
            .to_string(),
            "signature does not verify with keys/ci.pub, keys/ci-2026.pub"
        );
        assert_eq!(
            Failure::Unreachable {
                registry: "127.0.0.1:5000".into(),
                message: "connection refused".into()
            }
            .to_string(),
            "registry 127.0.0.1:5000 unreachable: connection refused"
        );
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
