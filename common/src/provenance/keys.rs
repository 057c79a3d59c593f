//! The public keys a `signed_by` rule lists: PEM as `cosign generate-key-pair` writes them
//! (`-----BEGIN PUBLIC KEY-----`, an ECDSA P-256 SubjectPublicKeyInfo), loaded into an
//! ordered [`KeySet`] whose [`KeySetId`] keys the verification cache.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::der::Document;
use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

/// Why a listed key cannot be used. Each names the key as the policy wrote it, so that the
/// caller can point at the rule (the position is the caller's).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signed_by lists no key")]
    Empty,
    #[error("key {path}: cannot read {}: {source}", full.display())]
    Read {
        path: String,
        full: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key {path}: {message}")]
    Unusable { path: String, message: String },
}

impl KeyError {
    /// The key as the policy wrote it (none for [`KeyError::Empty`]).
    pub fn path(&self) -> Option<&str> {
        match self {
            KeyError::Empty => None,
            KeyError::Read { path, .. } | KeyError::Unusable { path, .. } => Some(path),
        }
    }
}

/// One public key and the path it was listed by.
#[derive(Clone)]
pub struct PublicKey {
    /// As written in the policy (`keys/ci.pub`): what results and reasons name.
    path: String,
    key: VerifyingKey,
    /// SHA-256 of the key's SubjectPublicKeyInfo (DER): what the set's id is made of, so
    /// that an edit of the key file changes the id even when its path does not.
    fingerprint: [u8; 32],
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} sha256:{})", self.path, self.fingerprint_hex())
    }
}

impl PublicKey {
    /// Decodes a PEM public key; `path` is only the name used in results and errors.
    pub fn from_pem(path: &str, pem: &str) -> Result<PublicKey, KeyError> {
        let unusable = |message: String| KeyError::Unusable {
            path: path.to_string(),
            message,
        };
        let wrong_label = |l: &str| {
            if l.contains("PRIVATE KEY") {
                format!(
                    "is a private key ({l}); list the public key (cosign generate-key-pair writes cosign.pub)"
                )
            } else {
                format!("a PEM {l}, not a PUBLIC KEY (cosign generate-key-pair writes cosign.pub)")
            }
        };
        let (label, der) = Document::from_pem(pem).map_err(|e| {
            unusable(match first_pem_label(pem) {
                Some(l) if l != "PUBLIC KEY" => wrong_label(l),
                _ => format!("not a PEM public key (-----BEGIN PUBLIC KEY-----): {e}"),
            })
        })?;
        if label != "PUBLIC KEY" {
            return Err(unusable(wrong_label(label)));
        }
        let key = VerifyingKey::from_public_key_der(der.as_bytes()).map_err(|e| {
            unusable(format!(
                "not an ECDSA P-256 public key ({}): {e}",
                algorithm_of(&der)
            ))
        })?;
        let spki = key
            .to_public_key_der()
            .map_err(|e| unusable(format!("cannot re-encode the key: {e}")))?;
        Ok(PublicKey {
            path: path.to_string(),
            key,
            fingerprint: Sha256::digest(spki.as_bytes()).into(),
        })
    }

    /// The path as the policy wrote it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `sha256:<hex>` of the key's SubjectPublicKeyInfo.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// What a SubjectPublicKeyInfo that is not P-256 holds, for the error.
fn algorithm_of(der: &Document) -> String {
    const EC: &str = "1.2.840.10045.2.1";
    let Ok(spki) = SubjectPublicKeyInfoRef::try_from(der.as_bytes()) else {
        return "not a SubjectPublicKeyInfo".into();
    };
    let oid = spki.algorithm.oid.to_string();
    let name = match oid.as_str() {
        EC => {
            let curve = spki.algorithm.parameters_oid().map(|o| o.to_string());
            return match curve.as_deref() {
                Ok("1.3.132.0.34") => "an EC key on P-384".into(),
                Ok("1.3.132.0.35") => "an EC key on P-521".into(),
                Ok("1.3.132.0.10") => "an EC key on secp256k1".into(),
                Ok(c) => format!("an EC key on curve {c}"),
                Err(_) => "an EC key without a named curve".into(),
            };
        }
        "1.2.840.113549.1.1.1" => "an RSA key",
        "1.3.101.112" => "an Ed25519 key",
        _ => return format!("algorithm {oid}"),
    };
    name.into()
}

fn first_pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = pem[start..].find("-----")?;
    Some(&pem[start..start + end])
}

/// `sha256:` and lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(7 + bytes.len() * 2);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Identifies a key set by content: the same keys under the same paths, in the same order,
/// have the same id in every process and after every reload; any edit of a key changes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySetId([u8; 32]);

impl fmt::Display for KeySetId {
    /// The first 12 hex digits: enough to tell sets apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeySetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySetId({self})")
    }
}

/// The keys of one `signed_by` list, in the order written; any of them suffices. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct KeySet {
    keys: Arc<[PublicKey]>,
    id: KeySetId,
}

impl PartialEq for KeySet {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for KeySet {}

impl KeySet {
    /// Reads every key in `paths` (relative ones against `base`, the policy file's
    /// directory; absolute ones as they are). The first missing, unreadable or non-P-256 key
    /// is the error.
    pub fn load<S: AsRef<str>>(base: &Path, paths: &[S]) -> Result<KeySet, KeyError> {
        let mut keys = Vec::with_capacity(paths.len());
        for p in paths {
            let path = p.as_ref();
            let full = base.join(path);
            let pem = std::fs::read_to_string(&full).map_err(|source| KeyError::Read {
                path: path.to_string(),
                full: full.clone(),
                source,
            })?;
            keys.push(PublicKey::from_pem(path, &pem)?);
        }
        KeySet::new(keys)
    }

    /// A set of keys already decoded (tests, or a caller that reads the files itself).
    pub fn new(keys: Vec<PublicKey>) -> Result<KeySet, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut h = Sha256::new();
        for k in &keys {
            h.update((k.path.len() as u64).to_be_bytes());
            h.update(k.path.as_bytes());
            h.update(k.fingerprint);
        }
        Ok(KeySet {
            id: KeySetId(h.finalize().into()),
            keys: keys.into(),
        })
    }

    pub fn id(&self) -> KeySetId {
        self.id
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The paths as written, in order (what a "does not verify" reason lists).
    pub fn paths(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.path.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::testvectors as tv;

    #[test]
    fn a_cosign_public_key_loads_and_its_fingerprint_is_stable() {
        let k = PublicKey::from_pem("keys/ci.pub", tv::KEY1_PUB).unwrap();
        assert_eq!(k.path(), "keys/ci.pub");
        let again = PublicKey::from_pem("keys/ci.pub", tv::KEY1_PUB).unwrap();
        assert_eq!(k.fingerprint_hex(), again.fingerprint_hex());
        assert!(k.fingerprint_hex().starts_with("sha256:"));
    }

    #[test]
    fn the_set_id_depends_on_keys_paths_and_order() {
        let k1 = || PublicKey::from_pem("a.pub", tv::KEY1_PUB).unwrap();
        let k2 = || PublicKey::from_pem("b.pub", tv::KEY2_PUB).unwrap();
        let s12 = KeySet::new(vec![k1(), k2()]).unwrap();
        assert_eq!(s12.id(), KeySet::new(vec![k1(), k2()]).unwrap().id());
        assert_ne!(s12.id(), KeySet::new(vec![k2(), k1()]).unwrap().id());
        assert_ne!(s12.id(), KeySet::new(vec![k1()]).unwrap().id());
        let renamed = PublicKey::from_pem("c.pub", tv::KEY1_PUB).unwrap();
        assert_ne!(s12.id(), KeySet::new(vec![renamed, k2()]).unwrap().id());
        // Same path, other key: a key edited in place.
        let edited = PublicKey::from_pem("a.pub", tv::KEY2_PUB).unwrap();
        assert_ne!(s12.id(), KeySet::new(vec![edited, k2()]).unwrap().id());
        assert_eq!(s12.paths(), vec!["a.pub", "b.pub"]);
        assert_eq!(s12.id().to_string().len(), 12);
    }

    #[test]
    fn keys_load_relative_to_the_policy_directory_and_errors_name_the_path() {
        let tmp = tempfile::Builder::new()
            .prefix("dwtest-prov-keys-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        std::fs::write(dir.join("keys/ci.pub"), tv::KEY1_PUB).unwrap();
        std::fs::write(dir.join("keys/rsa.pub"), tv::RSA_PUB).unwrap();
        std::fs::write(dir.join("keys/p384.pub"), tv::P384_PUB).unwrap();
        std::fs::write(dir.join("keys/cosign.key"), tv::KEY1_PRIVATE_PKCS8).unwrap();
        std::fs::write(dir.join("keys/garbage.pub"), "hello\n").unwrap();

        let set = KeySet::load(dir, &["keys/ci.pub"]).unwrap();
        assert_eq!(set.paths(), vec!["keys/ci.pub"]);

        let e = KeySet::load(dir, &["keys/ci.pub", "keys/missing.pub"]).unwrap_err();
        assert_eq!(e.path(), Some("keys/missing.pub"));
        assert!(e.to_string().contains("cannot read"), "{e}");

        let e = KeySet::load(dir, &["keys/rsa.pub"]).unwrap_err().to_string();
        assert!(e.contains("keys/rsa.pub") && e.contains("RSA"), "{e}");
        let e = KeySet::load(dir, &["keys/p384.pub"]).unwrap_err().to_string();
        assert!(e.contains("P-384"), "{e}");
        let e = KeySet::load(dir, &["keys/cosign.key"]).unwrap_err().to_string();
        assert!(e.contains("private key"), "{e}");
        let e = KeySet::load(dir, &["keys/garbage.pub"]).unwrap_err().to_string();
        assert!(e.contains("not a PEM public key"), "{e}");
        let none: [&str; 0] = [];
        assert!(matches!(KeySet::load(dir, &none), Err(KeyError::Empty)));
    }
}
