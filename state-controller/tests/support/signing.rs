//! The images and keys the signature tests judge (issue 18): the sleeper image pushed to a
//! registry of the test's own under several repositories, signed (or not) by
//! scripts/lib/cosign_sign.py with key pairs written into the policy's directory.

use std::path::Path;

use testkit::engines::Registry;
use testkit::signing;

/// What a `signed_by = ["keys/ci.pub", "keys/ci-2026.pub"]` rule must do with each image.
pub struct Images {
    /// Signed by the first listed key, named by tag and by digest.
    pub first: String,
    pub first_by_digest: String,
    /// Signed by the second listed key.
    pub second: String,
    /// Pushed, never signed.
    pub unsigned: String,
    /// Signed by a key the policy does not list.
    pub unlisted: String,
    /// Another image (other content, another digest) with `first`'s signature copied under
    /// its own signature tag: an attacker with push access, not the key.
    pub replayed: String,
    /// Signed by the first key, never run before the registry goes away.
    pub late: String,
}

/// The registry (its address as images name it) and the images, pushed and signed with
/// `docker` (the CLI of the engine that runs the containers: `cli`).
pub struct Signed {
    pub registry: Option<Registry>,
    pub addr: String,
    pub images: Images,
    /// Tags to remove at the end (on the engine `cli` runs against).
    pub tags: Vec<String>,
}

/// Key pairs `ci`, `ci-2026` and `unlisted` in `dir/keys`.
pub fn keys(dir: &Path) -> std::path::PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for k in ["ci", "ci-2026", "unlisted"] {
        signing::keygen(&keys, k).unwrap();
    }
    keys
}

/// The rule under test: `name` glob, both listed keys.
pub fn rule(name: &str) -> String {
    format!("[[allow]]\nname = \"{name}\"\nsigned_by = [\"keys/ci.pub\", \"keys/ci-2026.pub\"]\n")
}

impl Signed {
    /// Starts a registry, tags `image` into it under `p`-prefixed repositories, pushes
    /// them with `cli` (which may be a private engine's, made to reach the registry) and
    /// signs them with the keys in `keys`.
    pub fn set_up(
        registry: Registry,
        p: &str,
        image: &str,
        keys: &Path,
        cli: &dyn Fn(&[&str]) -> anyhow::Result<String>,
    ) -> Signed {
        let port = registry.addr.rsplit(':').next().unwrap().to_string();
        // By IP: inside a private engine's namespace only 127.0.0.1 is forwarded.
        let addr = format!("127.0.0.1:{port}");
        let mut tags = Vec::new();
        let mut push = |repo: &str| -> String {
            let tag = format!("{addr}/{p}-{repo}:1");
            cli(&["tag", image, &tag]).unwrap();
            cli(&["push", "-q", &tag]).unwrap_or_else(|e| panic!("push {tag}: {e}"));
            tags.push(tag.clone());
            tag
        };
        let first = push("first");
        let second = push("second");
        let unsigned = push("unsigned");
        let unlisted = push("unlisted");
        let late = push("late");
        // The replayed image must be other content than `first`'s (a signature binds a
        // digest: the same bits in another repository are the same image).
        let replayed = format!("{addr}/{p}-replayed:1");
        let tar = variant_tar(keys);
        cli(&[
            "import",
            "--change",
            "ENTRYPOINT [\"/dw-sleeper\"]",
            "--change",
            "LABEL dwtest.variant=replayed",
            &tar,
            &replayed,
        ])
        .unwrap();
        cli(&["push", "-q", &replayed]).unwrap_or_else(|e| panic!("push {replayed}: {e}"));
        tags.push(replayed.clone());
        let digest_of = |tag: &str| -> String {
            let repo = tag.rsplit_once(':').unwrap().0;
            let out = cli(&["image", "inspect", "-f", "{{json .RepoDigests}}", tag]).unwrap();
            let digests: Vec<String> = serde_json::from_str(&out).unwrap();
            digests
                .into_iter()
                .find(|d| d.starts_with(&format!("{repo}@")))
                .unwrap_or_else(|| panic!("no repo digest for {tag}"))
        };
        let sign = |tag: &str, key: &str| signing::sign(keys, key, &digest_of(tag), &[]).unwrap();
        sign(&first, "ci");
        sign(&second, "ci-2026");
        sign(&unlisted, "unlisted");
        sign(&late, "ci");
        signing::signer(&["replay", &digest_of(&first), &digest_of(&replayed)]).unwrap();
        let first_by_digest = digest_of(&first);
        Signed {
            registry: Some(registry),
            addr,
            images: Images {
                first,
                first_by_digest,
                second,
                unsigned,
                unlisted,
                replayed,
                late,
            },
            tags,
        }
    }

    /// The registry goes away (killed; its storage goes too).
    pub fn stop_registry(&mut self) {
        self.registry = None;
    }
}

/// A tar of the sleeper program, for an image of other content than the sleeper image.
fn variant_tar(dir: &Path) -> String {
    let bin = testkit::static_binary("dockwarden-testkit", "dw-sleeper").unwrap();
    let tar = dir.join("variant.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(bin.parent().unwrap())
        .arg("-cf")
        .arg(&tar)
        .arg("dw-sleeper")
        .status()
        .unwrap();
    assert!(status.success(), "tar of dw-sleeper");
    tar.display().to_string()
}

/// The cases a `signed_by` rule judges before the registry goes away: container suffix,
/// image, and the reason a denial must give (`None`: it runs).
pub fn cases(i: &Images) -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        ("first", i.first.clone(), None),
        ("by-digest", i.first_by_digest.clone(), None),
        ("second", i.second.clone(), None),
        (
            "unsigned",
            i.unsigned.clone(),
            Some("no cosign signature for sha256:"),
        ),
        (
            "unlisted",
            i.unlisted.clone(),
            Some("signature does not verify with keys/ci.pub, keys/ci-2026.pub"),
        ),
        (
            "never-pushed",
            testkit::SLEEPER_IMAGE.to_string(),
            Some("no registry digest"),
        ),
        (
            "replayed",
            i.replayed.clone(),
            Some("signed payload does not match"),
        ),
    ]
}
