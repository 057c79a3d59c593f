//! Cosign signature verification against a real registry (Debian's `docker-registry` on a
//! loopback port) and the real engine: images pushed by `docker push` get their
//! `RepoDigests` from the engine, signatures are made by scripts/lib/cosign_sign.py (Python's
//! `cryptography`, following cosign's spec: not this crate's code), and the verifier must
//! say what cosign would: verified by the listed key that signed, refused with its reason
//! otherwise, including the bypasses an attacker who controls the registry (not the key)
//! can push.
//!
//! Everything created is named `dwtest-prov-*` and removed on drop, pass or fail: the
//! images (by tag), the registry (killed by PID, its storage deleted), the key directory.
//! The signer's Python comes from scripts/lib/sign-venv.sh (`DWTEST_PYTHON`, else a venv made
//! once under `target/sign-venv` with `cryptography` from PyPI, like scripts/lint-deploy.sh's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use common::provenance::{
    Failure, ImageDigest, KeySet, Outcome, RegistrySettings, Verifier, VerifierSettings, digests_to_verify,
};
use testkit::engines::{Registry, docker_cli};

/// Runs scripts/lib/cosign_sign.py (testkit::signing).
fn signer(args: &[&str]) {
    testkit::signing::signer(args).unwrap();
}

/// A test's world: the engine, a registry of its own, key pairs, and the images it made
/// (removed on drop).
struct World {
    registry: Option<Registry>,
    addr: String,
    keys: tempfile::TempDir,
    tag: String,
    images: std::cell::RefCell<Vec<String>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for image in self.images.borrow().iter() {
            let _ = docker_cli(&["rmi", "-f", image]);
        }
    }
}

/// An image the engine knows, as a container would name it, with its `RepoDigests`.
struct Image {
    /// As given (`localhost:PORT/dwtest-prov-…:1`).
    reference: String,
    id: String,
    repo_digests: Vec<String>,
}

impl Image {
    /// The digest the verifier checks, picked the way the gates pick it.
    fn digest(&self) -> ImageDigest {
        let d = digests_to_verify(&self.reference, &self.repo_digests).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        d[0].clone()
    }
}

impl World {
    async fn new() -> Option<World> {
        testkit::docker_or_skip().await?;
        let tag = format!(
            "dwtest-prov-{}-{}",
            testkit::test_name().replace('_', "-"),
            std::process::id()
        );
        let registry = Registry::start(&tag).await.unwrap();
        let keys = testkit::temp_dir(&format!("{tag}-keys")).unwrap();
        for k in ["ci", "ci-2026", "unlisted"] {
            signer(&["keygen", keys.path().join(k).to_str().unwrap()]);
        }
        Some(World {
            addr: registry.addr.clone(),
            registry: Some(registry),
            keys,
            tag,
            images: Default::default(),
        })
    }

    fn key(&self, name: &str) -> String {
        self.keys.path().join(format!("{name}.key")).display().to_string()
    }

    /// The policy's keys, written relative to the key directory (as to a policy file's).
    fn key_set(&self, names: &[&str]) -> KeySet {
        let paths: Vec<String> = names.iter().map(|n| format!("{n}.pub")).collect();
        KeySet::load(self.keys.path(), &paths).unwrap()
    }

    /// A tiny image of its own content (no container runs here: only its digest matters),
    /// imported locally: no `RepoDigests` yet.
    fn local_image(&self, name: &str) -> Image {
        let dir = testkit::temp_dir(&format!("{}-ctx", self.tag)).unwrap();
        std::fs::write(dir.path().join("content"), format!("{} {name}\n", self.tag)).unwrap();
        let reference = format!("{}-{name}:1", self.tag);
        self.images.borrow_mut().push(reference.clone());
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C {} -c content | docker import - {reference} >/dev/null",
                dir.path().display()
            ))
            .status()
            .unwrap();
        assert!(status.success(), "docker import {reference}");
        self.inspect(&reference)
    }

    /// `local_image`, tagged into the registry and pushed: it gets a `RepoDigest`.
    fn pushed_image(&self, name: &str) -> Image {
        let local = self.local_image(name);
        let reference = format!("{}/{}-{name}:1", self.addr, self.tag);
        self.images.borrow_mut().push(reference.clone());
        docker_cli(&["tag", &local.reference, &reference]).unwrap();
        docker_cli(&["push", "-q", &reference]).unwrap();
        self.inspect(&reference)
    }

    fn inspect(&self, reference: &str) -> Image {
        let out = docker_cli(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{json .RepoDigests}}",
            reference,
        ])
        .unwrap();
        let (id, digests) = out.split_once(' ').unwrap();
        Image {
            reference: reference.to_string(),
            id: id.to_string(),
            repo_digests: serde_json::from_str(digests).unwrap(),
        }
    }

    /// Signs `image`'s registry digest with key `key` as the variant says.
    fn sign(&self, image: &Image, key: &str, extra: &[&str]) {
        let target = image.digest().to_string();
        let mut args = vec!["sign", "--key"];
        let k = self.key(key);
        args.push(&k);
        args.extend_from_slice(extra);
        args.push(&target);
        signer(&args);
    }

    /// Stops the registry (kills it; its storage goes too).
    fn stop_registry(&mut self) {
        self.registry = None;
    }
}

fn settings() -> VerifierSettings {
    VerifierSettings {
        timeout: Duration::from_secs(10),
        ..VerifierSettings::default()
    }
}

fn verified_by(o: &Outcome) -> &str {
    match o {
        Outcome::Verified(v) => &v.key,
        Outcome::Failed(f) => panic!("not verified: {f}"),
    }
}

fn failure(o: Outcome) -> Failure {
    match o {
        Outcome::Failed(f) => f,
        Outcome::Verified(v) => panic!("verified unexpectedly: {v}"),
    }
}

#[tokio::test]
async fn signed_by_either_listed_key_verifies_by_tag_by_digest_and_by_id() {
    let Some(w) = World::new().await else { return };
    let keys = w.key_set(&["ci", "ci-2026"]);
    let v = Verifier::new(settings());

    let first = w.pushed_image("first");
    w.sign(&first, "ci", &[]);
    let o = v.verify(&[first.digest()], &keys).await;
    assert_eq!(verified_by(&o), "ci.pub");
    assert_eq!(v.lookup(&[first.digest()], &keys), Some(o));

    // Rotation: the second listed key suffices.
    let second = w.pushed_image("second");
    w.sign(&second, "ci-2026", &[]);
    assert_eq!(
        verified_by(&v.verify(&[second.digest()], &keys).await),
        "ci-2026.pub"
    );

    // Named by digest (tag and all), and by image ID (the kubelet's way): the same digest.
    let by_digest = format!("{}/{}-first:whatever@{}", w.addr, w.tag, first.digest().digest);
    let d = digests_to_verify(&by_digest, &first.repo_digests).unwrap();
    assert_eq!(d, vec![first.digest()]);
    let d = digests_to_verify(&first.id, &first.repo_digests).unwrap();
    assert_eq!(d, vec![first.digest()]);
    let fresh = Verifier::new(settings());
    assert_eq!(verified_by(&fresh.verify(&d, &keys).await), "ci.pub");

    // cosign's Docker media types (COSIGN_DOCKER_MEDIA_TYPES=1) and a second signature
    // appended to the same manifest (a re-sign by a listed key after an unlisted one).
    let docker = w.pushed_image("docker-types");
    w.sign(&docker, "ci", &["--media-types", "docker"]);
    assert_eq!(verified_by(&v.verify(&[docker.digest()], &keys).await), "ci.pub");
    let appended = w.pushed_image("appended");
    w.sign(&appended, "unlisted", &[]);
    w.sign(&appended, "ci-2026", &["--append"]);
    assert_eq!(
        verified_by(&v.verify(&[appended.digest()], &keys).await),
        "ci-2026.pub"
    );
}

#[tokio::test]
async fn unsigned_unlisted_and_never_pushed_are_refused_each_with_its_reason() {
    let Some(w) = World::new().await else { return };
    let keys = w.key_set(&["ci", "ci-2026"]);
    let v = Verifier::new(settings());

    let unsigned = w.pushed_image("unsigned");
    let f = failure(v.verify(&[unsigned.digest()], &keys).await);
    assert_eq!(
        f.to_string(),
        format!("no cosign signature for {}", unsigned.digest().digest)
    );

    let other = w.pushed_image("other-key");
    w.sign(&other, "unlisted", &[]);
    let f = failure(v.verify(&[other.digest()], &keys).await);
    assert_eq!(
        f.to_string(),
        "signature does not verify with ci.pub, ci-2026.pub"
    );

    let local = w.local_image("never-pushed");
    assert!(local.repo_digests.is_empty(), "{:?}", local.repo_digests);
    let f = digests_to_verify(&local.reference, &local.repo_digests).unwrap_err();
    assert!(matches!(f, Failure::NoRegistryDigest { .. }), "{f:?}");
    let f = digests_to_verify(&local.id, &local.repo_digests).unwrap_err();
    assert!(f.to_string().starts_with("no registry digest"), "{f}");
    // A local re-tag of a pushed image names a repository it has no digest in.
    let retag = format!("{}-retag:1", w.tag);
    w.images.borrow_mut().push(retag.clone());
    docker_cli(&["tag", &unsigned.reference, &retag]).unwrap();
    let again = w.inspect(&retag);
    let f = digests_to_verify(&again.reference, &again.repo_digests).unwrap_err();
    assert!(f.to_string().contains("has no digest in"), "{f}");
}

#[tokio::test]
async fn what_an_attacker_who_controls_the_registry_can_push_is_refused() {
    let Some(w) = World::new().await else { return };
    let keys = w.key_set(&["ci"]);
    let image = w.pushed_image("target");
    // Each variant replaces the .sig tag; a fresh verifier judges each.
    let cases: &[(&str, &str)] = &[
        ("wrong-digest", "signed payload does not match"),
        ("wrong-type", "atomic container signature"),
        ("garbage-payload", "not a simplesigning document"),
        (
            "wrong-media-type",
            "no layer of media type application/vnd.dev.cosign.simplesigning.v1+json",
        ),
        ("other-bytes", "signature does not verify with ci.pub"),
        (
            "no-annotation",
            "has no dev.cosignproject.cosign/signature annotation",
        ),
        ("bad-base64", "not base64"),
        ("p1363", "not an ASN.1 DER ECDSA signature"),
        ("size-mismatch", "does not match its descriptor"),
        ("bundle", "cosign bundle format not supported"),
        ("index", "holds an image index"),
    ];
    for (variant, reason) in cases {
        w.sign(&image, "ci", &["--variant", variant]);
        let f = failure(Verifier::new(settings()).verify(&[image.digest()], &keys).await);
        assert!(f.to_string().contains(reason), "{variant}: {f}");
        assert!(!f.is_transient(), "{variant}: {f:?}");
    }
    // A good signature beside bad ones, and a high S (Go's ecdsa accepts it): verified.
    for variant in ["several", "high-s"] {
        w.sign(&image, "ci", &["--variant", variant]);
        let o = Verifier::new(settings()).verify(&[image.digest()], &keys).await;
        assert_eq!(verified_by(&o), "ci.pub", "{variant}");
    }
    // A signature of this image does not pass another image: its payload names this
    // image's digest (the signature manifest copied under the other image's tag).
    let other = w.pushed_image("other");
    w.sign(&image, "ci", &[]);
    signer(&["replay", &image.digest().to_string(), &other.digest().to_string()]);
    let f = failure(Verifier::new(settings()).verify(&[other.digest()], &keys).await);
    assert!(matches!(f, Failure::PayloadMismatch { .. }), "{f:?}");
    assert!(f.to_string().contains(&image.digest().digest), "{f}");
}

#[tokio::test]
async fn a_registry_that_goes_away_keeps_what_verified_and_refuses_what_is_new() {
    let Some(mut w) = World::new().await else { return };
    let keys = w.key_set(&["ci"]);
    let known = w.pushed_image("known");
    let new = w.pushed_image("new");
    w.sign(&known, "ci", &[]);
    w.sign(&new, "ci", &[]);
    // Every verified result is stale at once (re-verified in the background each time).
    let v = Verifier::new(VerifierSettings {
        positive_ttl: Duration::ZERO,
        transient_ttl: Duration::from_secs(3600),
        ..settings()
    });
    assert_eq!(verified_by(&v.verify(&[known.digest()], &keys).await), "ci.pub");
    w.stop_registry();

    assert_eq!(verified_by(&v.verify(&[known.digest()], &keys).await), "ci.pub");
    let deadline = Instant::now() + Duration::from_secs(15);
    while v.lookup(&[known.digest()], &keys).is_none() {
        assert!(
            Instant::now() < deadline,
            "the background re-verification did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(v.lookup(&[known.digest()], &keys).unwrap().is_verified());

    let f = failure(v.verify(&[new.digest()], &keys).await);
    assert!(
        f.to_string()
            .starts_with(&format!("registry {} unreachable: ", w.addr)),
        "{f}"
    );
    assert!(f.is_transient());
}

#[tokio::test]
async fn size_and_layer_bounds_hold_against_a_real_registry() {
    let Some(w) = World::new().await else { return };
    let keys = w.key_set(&["ci"]);
    let image = w.pushed_image("bounds");
    w.sign(&image, "ci", &["--variant", "several"]);
    let with = |f: &dyn Fn(&mut RegistrySettings)| {
        let mut s = settings();
        f(&mut s.registry);
        Verifier::new(s)
    };
    let f = failure(with(&|r| r.max_layers = 2).verify(&[image.digest()], &keys).await);
    assert_eq!(
        f.to_string(),
        "signature manifest too large: 3 layers, at most 2 are read"
    );
    let f = failure(
        with(&|r| r.max_manifest = 64)
            .verify(&[image.digest()], &keys)
            .await,
    );
    assert!(f.to_string().contains("signature manifest too large"), "{f}");
    let f = failure(with(&|r| r.max_blob = 16).verify(&[image.digest()], &keys).await);
    assert!(f.to_string().contains("signature payload too large"), "{f}");
    assert!(with(&|_| ()).verify(&[image.digest()], &keys).await.is_verified());
}
