//! The verifier against the scripted fake registry: cache rules, single flight, the
//! authentication flows, redirects, bounds and the faults a real registry does not make.

use std::time::Duration;

use super::*;
use crate::provenance::credentials::RegistryCredentials;
use crate::provenance::fake::{Auth, FakeRegistry};
use crate::provenance::keys::PublicKey;
use crate::provenance::testvectors as tv;

const REPO: &str = "dwtest-prov/app";

fn keys() -> KeySet {
    KeySet::new(vec![PublicKey::from_pem("keys/ci.pub", tv::KEY1_PUB).unwrap()]).unwrap()
}

/// The vectors' image, in the fake's registry.
fn image_at(fake: &FakeRegistry) -> ImageDigest {
    ImageDigest {
        registry: fake.addr.clone(),
        repository: REPO.into(),
        digest: tv::image().digest,
    }
}

fn settings() -> VerifierSettings {
    VerifierSettings {
        timeout: Duration::from_secs(5),
        ..VerifierSettings::default()
    }
}

async fn fake_with(vector: &str) -> FakeRegistry {
    let fake = FakeRegistry::start().await;
    fake.install(REPO, &tv::vector(vector));
    fake
}

/// Waits (bounded) until `f` holds: for results a background flight stores.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn failure(o: Outcome) -> Failure {
    match o {
        Outcome::Failed(f) => f,
        Outcome::Verified(v) => panic!("verified unexpectedly: {v}"),
    }
}

#[tokio::test]
async fn verifies_once_then_answers_from_the_cache() {
    let fake = fake_with("good").await;
    let v = Verifier::new(settings());
    let img = [image_at(&fake)];
    assert_eq!(v.lookup(&img, &keys()), None);
    let o = v.verify(&img, &keys()).await;
    assert_eq!(
        o,
        Outcome::Verified(Verified {
            key: "keys/ci.pub".into(),
            digest: img[0].clone()
        })
    );
    assert_eq!(v.lookup(&img, &keys()), Some(o.clone()));
    assert_eq!(v.verify(&img, &keys()).await, o);
    // One manifest and one blob request for everything above.
    assert_eq!(fake.count("/manifests/"), 1);
    assert_eq!(fake.count("/blobs/"), 1);
    assert_eq!(v.stats().count(Kind::Verified), 1);
    assert_eq!((v.stats().cache_hits(), v.stats().cache_misses()), (1, 1));
}

#[tokio::test]
async fn concurrent_verifications_of_one_digest_share_one_flight() {
    let fake = fake_with("good").await;
    fake.with(|s| s.delay = Duration::from_millis(200));
    let v = Verifier::new(settings());
    let img = [image_at(&fake)];
    let k = keys();
    let all = futures_util::future::join_all((0..10).map(|_| v.verify(&img, &k))).await;
    assert!(all.iter().all(Outcome::is_verified));
    assert_eq!(fake.count("/manifests/"), 1);
    assert_eq!(v.stats().count(Kind::Verified), 1);
}

#[tokio::test]
async fn no_signature_is_cached_for_the_negative_ttl() {
    let fake = FakeRegistry::start().await;
    let img = [image_at(&fake)];
    let v = Verifier::new(settings());
    let f = failure(v.verify(&img, &keys()).await);
    assert_eq!(
        f.to_string(),
        format!("no cosign signature for {}", img[0].digest)
    );
    assert_eq!(v.lookup(&img, &keys()), Some(Outcome::Failed(f.clone())));
    // A signature pushed meanwhile is not seen while the negative result is fresh...
    fake.install(REPO, &tv::vector("good"));
    assert_eq!(v.verify(&img, &keys()).await, Outcome::Failed(f));
    // One look: the .sig tag, then (to tell a cosign v3 bundle) the referrers API and the
    // referrers tag.
    assert_eq!(fake.count("/manifests/"), 2);
    assert_eq!(fake.count("/referrers/"), 1);
    // ... and is once it is stale (a zero TTL keeps nothing fresh).
    let v0 = Verifier::new(VerifierSettings {
        negative_ttl: Duration::ZERO,
        ..settings()
    });
    fake.with(|s| s.manifests.clear());
    assert!(!v0.verify(&img, &keys()).await.is_verified());
    assert_eq!(v0.lookup(&img, &keys()), None);
    fake.install(REPO, &tv::vector("good"));
    assert!(v0.verify(&img, &keys()).await.is_verified());
}

#[tokio::test]
async fn a_registry_that_goes_away_keeps_what_verified_and_refuses_what_is_new() {
    let fake = fake_with("good").await;
    let img = [image_at(&fake)];
    // Stale at once: every verify re-verifies in the background.
    let v = Verifier::new(VerifierSettings {
        positive_ttl: Duration::ZERO,
        transient_ttl: Duration::from_secs(3600),
        ..settings()
    });
    assert!(v.verify(&img, &keys()).await.is_verified());
    drop(fake); // the registry goes away
    // Answered at once from the stale result; the background flight finds the registry gone
    // and keeps the verified result fresh for the transient TTL.
    assert!(v.verify(&img, &keys()).await.is_verified());
    eventually("the re-verification to end", || v.lookup(&img, &keys()).is_some()).await;
    assert!(v.lookup(&img, &keys()).unwrap().is_verified());
    assert_eq!(v.stats().count(Kind::Unreachable), 1);
    // Another digest of the same registry was never verified: refused.
    let mut other = img[0].clone();
    other.digest = format!("sha256:{}", "7".repeat(64));
    let f = failure(v.verify(&[other], &keys()).await);
    assert!(matches!(f, Failure::Unreachable { .. }), "{f:?}");
    assert!(
        f.to_string().starts_with(&format!(
            "registry {} unreachable: cannot connect",
            img[0].registry
        )),
        "{f}"
    );
}

#[tokio::test]
async fn a_deleted_signature_revokes_on_re_verification() {
    let fake = fake_with("good").await;
    let img = [image_at(&fake)];
    let v = Verifier::new(VerifierSettings {
        positive_ttl: Duration::ZERO,
        ..settings()
    });
    assert!(v.verify(&img, &keys()).await.is_verified());
    fake.with(|s| s.manifests.clear());
    assert!(v.verify(&img, &keys()).await.is_verified(), "stale result first");
    eventually("the revocation", || {
        matches!(
            v.lookup(&img, &keys()),
            Some(Outcome::Failed(Failure::NoSignature { .. }))
        )
    })
    .await;
}

#[tokio::test]
async fn clear_forgets_results_and_flights_in_the_air() {
    let fake = fake_with("good").await;
    let img = [image_at(&fake)];
    let v = Verifier::new(settings());
    assert!(v.verify(&img, &keys()).await.is_verified());
    v.clear();
    assert_eq!(v.lookup(&img, &keys()), None);
    // A flight started before a clear does not store its result.
    fake.with(|s| s.delay = Duration::from_millis(300));
    let flight = {
        let v = v.clone();
        let img = img.clone();
        tokio::spawn(async move { v.verify(&img, &keys()).await })
    };
    eventually("the flight to start", || fake.count("/manifests/") == 2).await;
    v.clear();
    assert!(flight.await.unwrap().is_verified());
    assert_eq!(v.cached(), 0);
    // Results of other key sets go with retain_key_sets.
    fake.with(|s| s.delay = Duration::ZERO);
    assert!(v.verify(&img, &keys()).await.is_verified());
    v.retain_key_sets(&[keys().id()]);
    assert_eq!(v.cached(), 1);
    v.retain_key_sets(&[]);
    assert_eq!(v.cached(), 0);
}

#[tokio::test]
async fn the_bearer_flow_fetches_a_token_once_and_reuses_it() {
    let fake = fake_with("good").await;
    fake.with(|s| s.auth = Auth::Bearer { basic: None });
    let img = image_at(&fake);
    let v = Verifier::new(settings());
    assert!(v.verify(std::slice::from_ref(&img), &keys()).await.is_verified());
    let mut other = img.clone();
    other.digest = format!("sha256:{}", "7".repeat(64));
    let f = failure(v.verify(&[other], &keys()).await);
    assert!(matches!(f, Failure::NoSignature { .. }), "{f:?}");
    assert_eq!(fake.count("/token"), 1, "{:?}", fake.with(|s| s.seen.clone()));
    let token_req = fake.with(|s| s.seen.iter().find(|(_, p, _)| p.starts_with("/token")).cloned());
    let (_, path, _) = token_req.unwrap();
    assert!(
        path.contains("service=fake") && path.contains("scope=repository%3Adwtest-prov%2Fapp%3Apull"),
        "{path}"
    );
}

#[tokio::test]
async fn credentials_go_to_the_token_service_and_never_into_reasons() {
    let fake = fake_with("good").await;
    fake.with(|s| {
        s.auth = Auth::Bearer {
            basic: Some(("bot".into(), "s3cret".into())),
        }
    });
    let img = [image_at(&fake)];
    let anonymous = Verifier::new(settings());
    let f = failure(anonymous.verify(&img, &keys()).await);
    assert!(matches!(f, Failure::Denied { .. }), "{f:?}");
    assert!(f.to_string().contains("no credentials configured"), "{f}");

    let config = format!(
        r#"{{"auths":{{"http://{}":{{"username":"bot","password":"s3cret"}}}}}}"#,
        fake.addr
    );
    let creds = RegistryCredentials::parse(std::path::Path::new("config.json"), &config).unwrap();
    let mut s = settings();
    s.registry.credentials = creds.clone();
    assert!(Verifier::new(s).verify(&img, &keys()).await.is_verified());

    // Wrong password: refused, and the reason shows no secret.
    let wrong = config.replace("s3cret", "wr0ng");
    let mut s = settings();
    s.registry.credentials = RegistryCredentials::parse(std::path::Path::new("c.json"), &wrong).unwrap();
    let f = failure(Verifier::new(s).verify(&img, &keys()).await);
    assert!(matches!(f, Failure::Denied { .. }), "{f:?}");
    let text = format!("{f} {f:?}");
    assert!(!text.contains("wr0ng") && !text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn basic_when_the_registry_asks_for_basic() {
    let fake = fake_with("good").await;
    fake.with(|s| {
        s.auth = Auth::Basic {
            user: "bot".into(),
            password: "pw".into(),
        }
    });
    let img = [image_at(&fake)];
    let f = failure(Verifier::new(settings()).verify(&img, &keys()).await);
    assert!(
        f.to_string()
            .contains("asks for Basic credentials and none are configured"),
        "{f}"
    );
    let config = format!(r#"{{"auths":{{"{}":{{"auth":"Ym90OnB3"}}}}}}"#, fake.addr);
    let mut s = settings();
    s.registry.credentials = RegistryCredentials::parse(std::path::Path::new("c.json"), &config).unwrap();
    assert!(Verifier::new(s).verify(&img, &keys()).await.is_verified());
}

#[tokio::test]
async fn blobs_follow_a_redirect_without_the_registry_credentials() {
    let fake = fake_with("good").await;
    let cdn = fake_with("good").await;
    fake.with(|s| {
        s.auth = Auth::Bearer { basic: None };
        s.redirect_blobs_to = Some(format!("http://{}", cdn.addr));
    });
    let v = Verifier::new(settings());
    assert!(v.verify(&[image_at(&fake)], &keys()).await.is_verified());
    let at_cdn = cdn.with(|s| s.seen.clone());
    assert_eq!(at_cdn.len(), 1, "{at_cdn:?}");
    assert!(at_cdn[0].1.ends_with("?sig=abc"), "{at_cdn:?}");
    assert_eq!(
        at_cdn[0].2, None,
        "the registry's token must not go to another host"
    );
}

#[tokio::test]
async fn redirect_loops_and_plain_http_elsewhere_are_refused() {
    let fake = fake_with("good").await;
    // The "CDN" is the registry itself, which redirects again: a loop.
    fake.with(|s| s.redirect_blobs_to = Some(format!("http://{}/v2/{REPO}/blobs", fake.addr)));
    let f = failure(
        Verifier::new(settings())
            .verify(&[image_at(&fake)], &keys())
            .await,
    );
    assert!(f.to_string().contains("more than 3 redirects"), "{f}");

    fake.with(|s| s.redirect_blobs_to = Some("http://cdn.example.com".into()));
    let f = failure(
        Verifier::new(settings())
            .verify(&[image_at(&fake)], &keys())
            .await,
    );
    assert!(f.to_string().contains("plain HTTP only on loopback"), "{f}");
    assert!(f.is_transient(), "{f:?}");
}

#[tokio::test]
async fn a_blob_that_is_not_its_descriptor_is_refused() {
    let fake = fake_with("good").await;
    fake.with(|s| s.tamper_blobs = true);
    let f = failure(
        Verifier::new(settings())
            .verify(&[image_at(&fake)], &keys())
            .await,
    );
    assert!(matches!(f, Failure::BlobMismatch { .. }), "{f:?}");
}

#[tokio::test]
async fn answers_over_their_bounds_are_refused() {
    let fake = fake_with("good").await;
    let mut s = settings();
    s.registry.max_manifest = 100;
    let f = failure(Verifier::new(s).verify(&[image_at(&fake)], &keys()).await);
    assert!(matches!(f, Failure::TooLarge { .. }), "{f:?}");
    assert!(f.to_string().contains("at most 100"), "{f}");
    let mut s = settings();
    s.registry.max_blob = 10;
    let f = failure(Verifier::new(s).verify(&[image_at(&fake)], &keys()).await);
    assert!(matches!(f, Failure::TooLarge { .. }), "{f:?}");
}

#[tokio::test]
async fn a_slow_registry_is_cut_at_the_verification_timeout() {
    let fake = fake_with("good").await;
    fake.with(|s| s.delay = Duration::from_secs(5));
    let v = Verifier::new(VerifierSettings {
        timeout: Duration::from_millis(300),
        ..settings()
    });
    let started = Instant::now();
    let f = failure(v.verify(&[image_at(&fake)], &keys()).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        f.to_string().contains("verification took longer than 0.3 s"),
        "{f}"
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_read_as_unreachable() {
    for status in [500, 503, 429] {
        let fake = fake_with("good").await;
        fake.with(|s| s.status = Some(status));
        let f = failure(
            Verifier::new(settings())
                .verify(&[image_at(&fake)], &keys())
                .await,
        );
        assert!(matches!(f, Failure::Unreachable { .. }), "{status}: {f:?}");
        assert!(f.to_string().contains(&format!("HTTP {status}")), "{f}");
    }
}

#[tokio::test]
async fn a_cosign_v3_bundle_without_a_sig_tag_is_refused_as_unsupported() {
    let fake = FakeRegistry::start().await;
    let img = image_at(&fake);
    let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}"#;
    fake.with(|s| {
        s.manifests.entry(REPO.into()).or_default().insert(
            img.digest.replace(':', "-"),
            (OCI_INDEX.into(), index.as_bytes().to_vec()),
        )
    });
    let f = failure(Verifier::new(settings()).verify(&[img], &keys()).await);
    assert!(matches!(f, Failure::BundleUnsupported { .. }), "{f:?}");
    assert!(f.to_string().contains("--new-bundle-format=false"), "{f}");
}

#[tokio::test]
async fn an_https_registry_without_roots_says_how_to_give_them() {
    let v = Verifier::new(settings());
    let img = ImageDigest::parse(&format!("registry.example.com/app@{}", tv::image().digest)).unwrap();
    let f = failure(v.verify(&[img], &keys()).await);
    assert!(
        f.to_string()
            .contains("no CA roots to verify https://registry.example.com"),
        "{f}"
    );
}

#[tokio::test]
async fn of_several_digests_any_that_verifies_suffices() {
    let fake = fake_with("good").await;
    let good = image_at(&fake);
    let mut unsigned = good.clone();
    unsigned.repository = "dwtest-prov/mirror".into();
    let v = Verifier::new(settings());
    let o = v.verify(&[unsigned.clone(), good.clone()], &keys()).await;
    assert!(o.is_verified(), "{o:?}");
    assert!(
        v.lookup(&[unsigned.clone(), good], &keys())
            .unwrap()
            .is_verified()
    );
    assert!(matches!(
        v.lookup(&[unsigned], &keys()),
        Some(Outcome::Failed(Failure::NoSignature { .. }))
    ));
}

#[tokio::test]
async fn images_as_containers_name_them() {
    let fake = fake_with("good").await;
    let img = image_at(&fake);
    let v = Verifier::new(settings());
    let by_tag = format!("{}/{REPO}:1", fake.addr);
    let repo_digests = vec![img.to_string()];
    assert_eq!(v.lookup_image(&by_tag, &repo_digests, &keys()), None);
    assert!(
        v.verify_image(&by_tag, &repo_digests, &keys())
            .await
            .is_verified()
    );
    assert!(
        v.lookup_image(&by_tag, &repo_digests, &keys())
            .unwrap()
            .is_verified()
    );
    let local = v.lookup_image("dwtest-prov-local:1", &[], &keys()).unwrap();
    assert!(
        matches!(local, Outcome::Failed(Failure::NoRegistryDigest { .. })),
        "{local:?}"
    );
    let local = v.verify_image("dwtest-prov-local:1", &[], &keys()).await;
    assert_eq!(local.kind(), Kind::NoRegistryDigest);
    assert_eq!(v.stats().count(Kind::NoRegistryDigest), 1);
}
