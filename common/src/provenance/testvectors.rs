//! Fixed vectors of the unit tests, made by scripts/lib/cosign_sign.py (Python's
//! `cryptography`, not this crate): keys, and signature manifests with their blobs for the
//! good and the adversarial variants (common/testdata/provenance/README.md).

use std::collections::BTreeMap;

use base64::Engine as _;

use super::ImageDigest;

pub const KEY1_PUB: &str = include_str!("../../testdata/provenance/key1.pub");
pub const KEY2_PUB: &str = include_str!("../../testdata/provenance/key2.pub");
pub const UNLISTED_PUB: &str = include_str!("../../testdata/provenance/unlisted.pub");
pub const RSA_PUB: &str = include_str!("../../testdata/provenance/rsa.pub");
pub const P384_PUB: &str = include_str!("../../testdata/provenance/p384.pub");
pub const KEY1_PRIVATE_PKCS8: &str = include_str!("../../testdata/provenance/key1.key");
const REF: &str = include_str!("../../testdata/provenance/REF");

/// The image every vector signs.
pub fn image() -> ImageDigest {
    ImageDigest::parse(REF.trim()).unwrap()
}

pub struct Vector {
    /// (reference, media type, body) of each manifest, the signature tag's last.
    pub manifests: Vec<(String, String, String)>,
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Vector {
    /// The media type and body of the manifest under the signature tag.
    pub fn signature_manifest(&self) -> (&str, &str) {
        let tag = image().signature_tag();
        let (_, mt, body) = self
            .manifests
            .iter()
            .find(|(r, _, _)| *r == tag)
            .unwrap_or_else(|| panic!("no manifest tagged {tag}"));
        (mt, body)
    }

    pub fn blob(&self, digest: &str) -> Vec<u8> {
        self.blobs
            .get(digest)
            .cloned()
            .unwrap_or_else(|| panic!("no blob {digest}"))
    }
}

pub fn vector(name: &str) -> Vector {
    let text = match name {
        "good" => include_str!("../../testdata/provenance/good.json"),
        "docker" => include_str!("../../testdata/provenance/docker.json"),
        "high-s" => include_str!("../../testdata/provenance/high-s.json"),
        "unlisted" => include_str!("../../testdata/provenance/unlisted.json"),
        "wrong-digest" => include_str!("../../testdata/provenance/wrong-digest.json"),
        "wrong-type" => include_str!("../../testdata/provenance/wrong-type.json"),
        "garbage-payload" => include_str!("../../testdata/provenance/garbage-payload.json"),
        "wrong-media-type" => include_str!("../../testdata/provenance/wrong-media-type.json"),
        "other-bytes" => include_str!("../../testdata/provenance/other-bytes.json"),
        "no-annotation" => include_str!("../../testdata/provenance/no-annotation.json"),
        "bad-base64" => include_str!("../../testdata/provenance/bad-base64.json"),
        "p1363" => include_str!("../../testdata/provenance/p1363.json"),
        "size-mismatch" => include_str!("../../testdata/provenance/size-mismatch.json"),
        "several" => include_str!("../../testdata/provenance/several.json"),
        "bundle" => include_str!("../../testdata/provenance/bundle.json"),
        "index" => include_str!("../../testdata/provenance/index.json"),
        other => panic!("no vector {other}"),
    };
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let manifests = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["reference"].as_str().unwrap().to_string(),
                m["mediaType"].as_str().unwrap().to_string(),
                m["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let blobs = v["blobs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(d, b)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_str().unwrap())
                .unwrap();
            (d.clone(), bytes)
        })
        .collect();
    Vector { manifests, blobs }
}
