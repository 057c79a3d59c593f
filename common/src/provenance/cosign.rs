//! cosign's signature format judged as plain values, with no I/O: the signature manifest
//! tagged `sha256-<hex>.sig` (an OCI image manifest or a Docker v2 schema 2 manifest), its
//! layers, and for each `simplesigning` layer the blob, the signature annotation and the
//! payload (cosign's SIGNATURE_SPEC).
//!
//! A layer verifies when, in this order: its blob is the one its descriptor names (size and
//! sha256); its `dev.cosignproject.cosign/signature` annotation is standard base64 of an
//! ASN.1 DER ECDSA signature that verifies over the exact blob bytes with SHA-256 under a
//! listed P-256 key; and that now authentic payload is a simplesigning JSON document whose
//! `critical.type` is `cosign container image signature` and whose
//! `critical.image.docker-manifest-digest` is the image's digest. The payload is only read
//! once its signature verified. `critical.identity.docker-reference` is not compared, as
//! cosign and its spec do not (a signature binds content; the same digest copied to a
//! mirror stays signed).

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::keys::{KeySet, hex};
use super::{Failure, ImageDigest};

pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
/// Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`, …): cosign v3's default.
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The `Accept` header of a signature manifest request. Indexes are accepted to be refused
/// by name: a registry asked without them may resolve an index to a platform's manifest,
/// or answer 404.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A layer descriptor of the signature manifest, as far as verification reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// The `dev.cosignproject.cosign/signature` annotation, when there is one.
    pub signature: Option<String>,
}

impl Layer {
    pub fn is_simplesigning(&self) -> bool {
        self.media_type == SIMPLESIGNING_MEDIA_TYPE
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<u64>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

fn is_bundle(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| m.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
}

/// The layers of the manifest the signature tag holds. `content_type` is the answer's
/// header (used when the body names no media type).
pub fn parse_signature_manifest(
    image: &ImageDigest,
    content_type: Option<&str>,
    body: &[u8],
    max_layers: usize,
) -> Result<Vec<Layer>, Failure> {
    let malformed = |message: String| Failure::Malformed {
        digest: image.digest.clone(),
        message,
    };
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the signature manifest is not a manifest: {e}")))?;
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let media_type = raw.media_type.as_deref().or(content_type);
    if is_bundle(raw.artifact_type.as_deref()) {
        return Err(Failure::BundleUnsupported {
            digest: image.digest.clone(),
        });
    }
    if matches!(media_type, Some(OCI_INDEX | DOCKER_LIST)) || raw.manifests.is_some() {
        return Err(malformed(format!(
            "{} holds an image index, not a signature manifest",
            image.signature_tag()
        )));
    }
    if raw.schema_version != Some(2) {
        return Err(malformed("schemaVersion is not 2".into()));
    }
    if let Some(m) = raw.media_type.as_deref()
        && m != OCI_MANIFEST
        && m != DOCKER_MANIFEST
    {
        return Err(malformed(format!("manifest media type {m:?}")));
    }
    let layers = raw.layers.unwrap_or_default();
    if layers.is_empty() {
        return Err(malformed("the signature manifest has no layers".into()));
    }
    if layers.len() > max_layers {
        return Err(Failure::TooLarge {
            what: "signature manifest".into(),
            message: format!("{} layers, at most {max_layers} are read", layers.len()),
        });
    }
    Ok(layers
        .into_iter()
        .map(|d| Layer {
            media_type: d.media_type.unwrap_or_default(),
            digest: d.digest.unwrap_or_default(),
            size: d.size.unwrap_or(0),
            signature: d.annotations.and_then(|mut a| a.remove(SIGNATURE_ANNOTATION)),
        })
        .collect())
}

/// The layers to check: the simplesigning ones. None is a bundle-only manifest (refused as
/// unsupported) or a malformed one.
pub fn signature_layers<'a>(image: &ImageDigest, layers: &'a [Layer]) -> Result<Vec<&'a Layer>, Failure> {
    let found: Vec<&Layer> = layers.iter().filter(|l| l.is_simplesigning()).collect();
    if !found.is_empty() {
        return Ok(found);
    }
    if layers.iter().any(|l| is_bundle(Some(&l.media_type))) {
        return Err(Failure::BundleUnsupported {
            digest: image.digest.clone(),
        });
    }
    Err(Failure::Malformed {
        digest: image.digest.clone(),
        message: format!("no layer of media type {SIMPLESIGNING_MEDIA_TYPE}"),
    })
}

/// Whether a layer's blob may be fetched at all: a digest of the right form and a declared
/// size within `max_blob`.
pub fn check_descriptor(image: &ImageDigest, layer: &Layer, max_blob: usize) -> Result<(), Failure> {
    if !crate::policy::reference::is_digest(&layer.digest) {
        return Err(Failure::Malformed {
            digest: image.digest.clone(),
            message: format!("layer digest {:?} is not sha256:<64 hex>", layer.digest),
        });
    }
    if layer.size > max_blob as u64 {
        return Err(Failure::TooLarge {
            what: "signature payload".into(),
            message: format!(
                "layer {} declares {} bytes, at most {max_blob}",
                layer.digest, layer.size
            ),
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: PayloadImage,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks one simplesigning layer and its blob; the listed key that verified, by its path.
pub fn check_layer(
    image: &ImageDigest,
    layer: &Layer,
    blob: &[u8],
    keys: &KeySet,
) -> Result<String, Failure> {
    let digest = || image.digest.clone();
    let got = hex(&Sha256::digest(blob));
    if blob.len() as u64 != layer.size || got != layer.digest {
        return Err(Failure::BlobMismatch {
            digest: digest(),
            message: format!(
                "descriptor {} of {} bytes, blob {got} of {} bytes",
                layer.digest,
                layer.size,
                blob.len()
            ),
        });
    }
    let malformed = |message: String| Failure::Malformed {
        digest: digest(),
        message,
    };
    let annotation = layer.signature.as_deref().ok_or_else(|| {
        malformed(format!(
            "layer {} has no {SIGNATURE_ANNOTATION} annotation",
            layer.digest
        ))
    })?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(annotation.trim())
        .map_err(|e| malformed(format!("the signature annotation is not base64: {e}")))?;
    let signature = Signature::from_der(&der)
        .map_err(|_| malformed("the signature is not an ASN.1 DER ECDSA signature".into()))?;
    let key = keys
        .keys()
        .iter()
        .find(|k| k.verifying_key().verify(blob, &signature).is_ok())
        .ok_or_else(|| Failure::DoesNotVerify {
            digest: digest(),
            keys: keys.paths(),
        })?;
    // Authentic from here on: what a listed key signed.
    let mismatch = |message: String| Failure::PayloadMismatch {
        digest: digest(),
        message,
    };
    let payload: Payload = serde_json::from_slice(blob).map_err(|e| {
        mismatch(format!(
            "{} signed a payload that is not a simplesigning document: {e}",
            key.path()
        ))
    })?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(mismatch(format!(
            "{} signed a payload of type {:?}, not {COSIGN_SIGNATURE_TYPE:?}",
            key.path(),
            payload.critical.kind
        )));
    }
    if payload.critical.image.digest != image.digest {
        return Err(mismatch(format!(
            "{} signed {}, not this image",
            key.path(),
            payload.critical.image.digest
        )));
    }
    Ok(key.path().to_string())
}

/// Of several layers' failures, the one that tells the operator most: a listed key's
/// signature over the wrong payload, then a blob the registry swapped, then signatures by
/// other keys, then malformed layers.
pub fn most_telling(failures: Vec<Failure>) -> Option<Failure> {
    let rank = |f: &Failure| match f {
        Failure::PayloadMismatch { .. } => 5,
        Failure::BlobMismatch { .. } => 4,
        Failure::DoesNotVerify { .. } => 3,
        Failure::Malformed { .. } => 2,
        _ => 1,
    };
    let mut best: Option<Failure> = None;
    for f in failures {
        if best.as_ref().is_none_or(|b| rank(&f) > rank(b)) {
            best = Some(f);
        }
    }
    best
}

/// Whether an answer for the referrers API (`GET /v2/<repo>/referrers/<digest>`) or the
/// referrers tag schema's index (tag `sha256-<hex>`) lists a Sigstore bundle: how cosign v3
/// stores signatures by default.
pub fn lists_bundle(body: &[u8]) -> bool {
    let Ok(raw) = serde_json::from_slice::<RawManifest>(body) else {
        return false;
    };
    is_bundle(raw.artifact_type.as_deref())
        || raw
            .manifests
            .unwrap_or_default()
            .iter()
            .any(|m| is_bundle(m.artifact_type.as_deref()) || is_bundle(m.media_type.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::keys::PublicKey;
    use crate::provenance::testvectors as tv;

    fn keys(list: &[(&str, &str)]) -> KeySet {
        KeySet::new(
            list.iter()
                .map(|(p, pem)| PublicKey::from_pem(p, pem).unwrap())
                .collect(),
        )
        .unwrap()
    }

    fn key1() -> KeySet {
        keys(&[("keys/ci.pub", tv::KEY1_PUB)])
    }

    /// Verifies a vector the way the registry client does: every simplesigning layer in
    /// order, the first that verifies wins, else the most telling failure.
    fn verify(v: &tv::Vector, keys: &KeySet) -> Result<String, Failure> {
        let image = tv::image();
        let (ct, body) = v.signature_manifest();
        let layers = parse_signature_manifest(&image, Some(ct), body.as_bytes(), 32)?;
        let mut failures = Vec::new();
        for l in signature_layers(&image, &layers)? {
            let r = check_descriptor(&image, l, 1 << 20)
                .and_then(|()| check_layer(&image, l, &v.blob(&l.digest), keys));
            match r {
                Ok(k) => return Ok(k),
                Err(f) => failures.push(f),
            }
        }
        Err(most_telling(failures).unwrap())
    }

    #[test]
    fn a_good_signature_verifies_with_the_listed_key() {
        assert_eq!(verify(&tv::vector("good"), &key1()).unwrap(), "keys/ci.pub");
        assert_eq!(verify(&tv::vector("docker"), &key1()).unwrap(), "keys/ci.pub");
        // Go's ecdsa accepts a high S; so does cosign, so do we.
        assert_eq!(verify(&tv::vector("high-s"), &key1()).unwrap(), "keys/ci.pub");
    }

    #[test]
    fn any_listed_key_suffices_and_the_one_that_verified_is_named() {
        let two = keys(&[
            ("keys/ci.pub", tv::KEY2_PUB),
            ("keys/ci-2026.pub", tv::UNLISTED_PUB),
        ]);
        assert_eq!(verify(&tv::vector("unlisted"), &two).unwrap(), "keys/ci-2026.pub");
    }

    #[test]
    fn a_signature_by_an_unlisted_key_does_not_verify_and_names_the_keys_tried() {
        let two = keys(&[("keys/ci.pub", tv::KEY1_PUB), ("keys/ci-2026.pub", tv::KEY2_PUB)]);
        let e = verify(&tv::vector("unlisted"), &two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "signature does not verify with keys/ci.pub, keys/ci-2026.pub"
        );
    }

    #[test]
    fn bypasses_are_refused_each_with_its_reason() {
        let k = key1();
        type Case = (&'static str, fn(&Failure) -> bool, &'static str);
        let cases: &[Case] = &[
            (
                "wrong-digest",
                |f| matches!(f, Failure::PayloadMismatch { .. }),
                "not this image",
            ),
            (
                "wrong-type",
                |f| matches!(f, Failure::PayloadMismatch { .. }),
                "atomic container signature",
            ),
            (
                "garbage-payload",
                |f| matches!(f, Failure::PayloadMismatch { .. }),
                "not a simplesigning",
            ),
            (
                "wrong-media-type",
                |f| matches!(f, Failure::Malformed { .. }),
                "no layer of media type",
            ),
            (
                "other-bytes",
                |f| matches!(f, Failure::DoesNotVerify { .. }),
                "does not verify",
            ),
            (
                "no-annotation",
                |f| matches!(f, Failure::Malformed { .. }),
                "no dev.cosignproject.cosign/signature",
            ),
            (
                "bad-base64",
                |f| matches!(f, Failure::Malformed { .. }),
                "not base64",
            ),
            (
                "p1363",
                |f| matches!(f, Failure::Malformed { .. }),
                "not an ASN.1 DER",
            ),
            (
                "size-mismatch",
                |f| matches!(f, Failure::BlobMismatch { .. }),
                "does not match its descriptor",
            ),
            (
                "bundle",
                |f| matches!(f, Failure::BundleUnsupported { .. }),
                "bundle format not supported",
            ),
            (
                "index",
                |f| matches!(f, Failure::Malformed { .. }),
                "holds an image index",
            ),
        ];
        for (name, is, text) in cases {
            let e = verify(&tv::vector(name), &k).expect_err(name);
            assert!(is(&e), "{name}: {e:?}");
            assert!(e.to_string().contains(text), "{name}: {e}");
        }
    }

    #[test]
    fn one_good_layer_among_bad_ones_verifies() {
        assert_eq!(verify(&tv::vector("several"), &key1()).unwrap(), "keys/ci.pub");
    }

    #[test]
    fn a_blob_that_is_not_its_descriptor_is_refused_before_any_signature_check() {
        let v = tv::vector("good");
        let image = tv::image();
        let (ct, body) = v.signature_manifest();
        let layers = parse_signature_manifest(&image, Some(ct), body.as_bytes(), 32).unwrap();
        let l = &layers[0];
        let mut blob = v.blob(&l.digest);
        blob[10] ^= 1;
        let e = check_layer(&image, l, &blob, &key1()).unwrap_err();
        assert!(matches!(e, Failure::BlobMismatch { .. }), "{e:?}");
    }

    #[test]
    fn the_payload_of_another_image_is_refused_even_when_signed() {
        // The good vector's layer, verified for another digest: a replayed signature.
        let v = tv::vector("good");
        let mut other = tv::image();
        other.digest = format!("sha256:{}", "9".repeat(64));
        let (ct, body) = v.signature_manifest();
        let layers = parse_signature_manifest(&other, Some(ct), body.as_bytes(), 32).unwrap();
        let e = check_layer(&other, &layers[0], &v.blob(&layers[0].digest), &key1()).unwrap_err();
        assert!(matches!(e, Failure::PayloadMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains(&tv::image().digest), "{e}");
    }

    #[test]
    fn bounds_and_shapes_of_the_manifest() {
        let image = tv::image();
        let many = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[{}]}}"#,
            vec![
                format!(
                    r#"{{"mediaType":"{SIMPLESIGNING_MEDIA_TYPE}","size":1,"digest":"sha256:{}"}}"#,
                    "1".repeat(64)
                );
                33
            ]
            .join(",")
        );
        let e = parse_signature_manifest(&image, None, many.as_bytes(), 32).unwrap_err();
        assert!(matches!(e, Failure::TooLarge { .. }), "{e:?}");
        for bad in [
            "not json",
            r#"{"schemaVersion":1,"layers":[]}"#,
            r#"{"schemaVersion":2,"layers":[]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/x-other","layers":[{}]}"#,
            r#"{"schemaVersion":2,"schemaVersion":2,"layers":[{}]}"#,
        ] {
            let e = parse_signature_manifest(&image, None, bad.as_bytes(), 32).unwrap_err();
            assert!(matches!(e, Failure::Malformed { .. }), "{bad}: {e:?}");
        }
        let v3 = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","layers":[{}]}"#;
        let e = parse_signature_manifest(&image, None, v3.as_bytes(), 32).unwrap_err();
        assert!(matches!(e, Failure::BundleUnsupported { .. }), "{e:?}");
        let big = Layer {
            media_type: SIMPLESIGNING_MEDIA_TYPE.into(),
            digest: format!("sha256:{}", "1".repeat(64)),
            size: (1 << 20) + 1,
            signature: None,
        };
        let e = check_descriptor(&image, &big, 1 << 20).unwrap_err();
        assert!(matches!(e, Failure::TooLarge { .. }), "{e:?}");
        let odd = Layer {
            digest: "sha512:00".into(),
            size: 1,
            ..big
        };
        assert!(matches!(
            check_descriptor(&image, &odd, 1 << 20),
            Err(Failure::Malformed { .. })
        ));
    }

    #[test]
    fn referrer_answers_that_list_a_bundle_are_recognised() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}"#;
        assert!(lists_bundle(idx));
        assert!(!lists_bundle(br#"{"schemaVersion":2,"manifests":[]}"#));
        assert!(!lists_bundle(b"<html>"));
    }
}
