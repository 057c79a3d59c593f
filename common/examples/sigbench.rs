//! What a signature verification costs, against a registry the caller prepared (bench/signatures.sh
//! starts one, pushes an image and signs it): in one run, beside each other,
//! - baseline registry round trips over the same client (a fresh connection per request, as
//!   the verifier makes them): the GET of the signature manifest, the GET of its payload blob,
//!   and the two in a row (what a first verification must ask: the blob's digest is in the
//!   manifest);
//! - a first verification: a new verifier (cold cache) per round, so every round asks the
//!   registry (the signature manifest, then the payload blob);
//! - a cached answer: `lookup` (what a pure decision calls) and `verify` on a warm cache.
//!
//! `cargo run --release -p dockwarden-common --example sigbench -- REGISTRY/REPO@sha256:HEX KEY.pub [ROUNDS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use common::http::client::Client;
use common::provenance::registry::Endpoint;
use common::provenance::{ImageDigest, KeySet, Verifier, VerifierSettings};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn row(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let us = |x: Duration| x.as_secs_f64() * 1e6;
    println!(
        "{what:<44} {:>8} {:>12.1} {:>12.1} {:>12.1}",
        d.len(),
        us(percentile(&d, 0.5)),
        us(percentile(&d, 0.9)),
        us(percentile(&d, 0.99)),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, key, rest @ ..] = args.as_slice() else {
        eprintln!("usage: sigbench REGISTRY/REPO@sha256:HEX KEY.pub [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = rest
        .first()
        .map_or(200, |r| r.parse().expect("ROUNDS is a number"));
    let image = ImageDigest::parse(image).expect("an image reference with a digest");
    let key = Path::new(key);
    let keys = KeySet::load(
        key.parent().unwrap_or(Path::new(".")),
        &[key.file_name().expect("a key file").to_string_lossy()],
    )
    .expect("the public key");
    let endpoint = Endpoint::for_registry(&image.registry).expect("a registry endpoint");
    let client = Client::new(endpoint.target.clone(), "registry", Duration::from_secs(10));
    let manifest = format!("/v2/{}/manifests/{}", image.repository, image.signature_tag());
    let accept = [(
        hyper::header::ACCEPT,
        hyper::header::HeaderValue::from_static(common::provenance::cosign::MANIFEST_ACCEPT),
    )];

    // Warm up both paths once (page cache, the registry's own caches).
    let (_, body) = client
        .get("baseline", &manifest, &accept, 4 << 20)
        .await
        .expect("the signature manifest");
    let m: serde_json::Value = serde_json::from_slice(&body).expect("a manifest");
    let blob = format!(
        "/v2/{}/blobs/{}",
        image.repository,
        m["layers"][0]["digest"].as_str().expect("a layer")
    );
    let first = Verifier::new(VerifierSettings::default())
        .verify(std::slice::from_ref(&image), &keys)
        .await;
    assert!(first.is_verified(), "the image must verify: {first}");

    // Interleaved so that drift hits every row alike.
    let (mut base, mut base_blob, mut base_both) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cold, mut lookup, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let cached = Verifier::new(VerifierSettings::default());
    cached.verify(std::slice::from_ref(&image), &keys).await;
    for _ in 0..rounds {
        let t = Instant::now();
        client.get("baseline", &manifest, &accept, 4 << 20).await.unwrap();
        base.push(t.elapsed());

        let t = Instant::now();
        client.get("baseline", &blob, &[], 1 << 20).await.unwrap();
        base_blob.push(t.elapsed());

        let t = Instant::now();
        client.get("baseline", &manifest, &accept, 4 << 20).await.unwrap();
        client.get("baseline", &blob, &[], 1 << 20).await.unwrap();
        base_both.push(t.elapsed());

        let v = Verifier::new(VerifierSettings::default());
        let t = Instant::now();
        let o = v.verify(std::slice::from_ref(&image), &keys).await;
        cold.push(t.elapsed());
        assert!(o.is_verified());

        let t = Instant::now();
        let o = cached.lookup(std::slice::from_ref(&image), &keys);
        lookup.push(t.elapsed());
        assert!(o.is_some_and(|o| o.is_verified()));

        let t = Instant::now();
        let o = cached.verify(std::slice::from_ref(&image), &keys).await;
        warm.push(t.elapsed());
        assert!(o.is_verified());
    }
    println!(
        "signature verification against {} ({rounds} rounds, microseconds)",
        image.registry
    );
    println!(
        "{:<44} {:>8} {:>12} {:>12} {:>12}",
        "what", "n", "p50", "p90", "p99"
    );
    row("baseline: GET signature manifest", base);
    row("baseline: GET payload blob", base_blob);
    row("baseline: both GETs in a row", base_both);
    row("first verification (cold cache)", cold);
    row("cached: lookup (decision, no I/O)", lookup);
    row("cached: verify (warm cache)", warm);
    let s = cached.stats();
    println!(
        "cache: {} hits, {} misses; requests per first verification: manifest + payload blob",
        s.cache_hits(),
        s.cache_misses()
    );
}
