//! The [`Verifier`]: verification of cosign signatures against registries, cached by
//! (image digest, key set), one flight per key, bounded in time, and counted.
//!
//! Cache semantics (docs/signatures.md, "Cache"):
//! - a verified result is fresh for `positive_ttl`; once stale, [`Verifier::verify`] still
//!   answers it at once and re-verifies in the background ("stale while revalidate"): a
//!   gate never waits on a registry for an image that verified before;
//! - a failure that says something about the signature (none, bad, malformed, …) is cached
//!   for `negative_ttl`, and replaces a verified result (a deleted signature is a revocation);
//! - a registry that cannot be asked (unreachable, refused access) is cached for
//!   `transient_ttl` only and never replaces a verified result: an image verified before
//!   still runs while its registry is away, a new one is refused;
//! - keys are content ids ([`KeySetId`]): a policy reload that keeps its keys keeps its
//!   results; [`Verifier::retain_key_sets`] drops the results of key sets no longer used,
//!   [`Verifier::clear`] drops everything (and results of verifications still in flight).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::cosign::{
    MANIFEST_ACCEPT, OCI_INDEX, check_descriptor, check_layer, lists_bundle, most_telling,
    parse_signature_manifest, signature_layers,
};
use super::registry::{RegistryClient, RegistryError, RegistrySettings};
use super::{Failure, ImageDigest, KeySet, KeySetId, Kind, Outcome, Verified};

/// How the verifier bounds and caches.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub registry: RegistrySettings,
    /// One whole verification (all its requests); past it the result is "unreachable". The
    /// authorization plugin should wait no longer than this (share the value).
    pub timeout: Duration,
    /// How long a verified result is fresh (then re-verified in the background).
    pub positive_ttl: Duration,
    /// How long a failure about the signature is kept.
    pub negative_ttl: Duration,
    /// How long "the registry could not be asked" is kept.
    pub transient_ttl: Duration,
    /// Cache entries at most (stale ones go first, then the oldest).
    pub max_entries: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            registry: RegistrySettings::default(),
            timeout: Duration::from_secs(10),
            positive_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
            transient_ttl: Duration::from_secs(5),
            max_entries: 10_000,
        }
    }
}

/// Counters for metrics: verifications (registry round trips) by result with their total
/// time, and the cache hits and misses of [`Verifier::lookup`]. For a latency histogram,
/// [`Verifier::set_observer`] gets every verification's result and duration.
#[derive(Debug, Default)]
pub struct Stats {
    results: [AtomicU64; Kind::ALL.len()],
    micros: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Stats {
    /// Counts one verification (the verifier does; a gate may too, for the results it
    /// makes itself, such as [`Kind::NoRegistryDigest`]).
    pub fn record(&self, kind: Kind, took: Duration) {
        self.results[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Verifications so far, by result.
    pub fn results(&self) -> Vec<(Kind, u64)> {
        Kind::ALL
            .iter()
            .map(|k| (*k, self.results[k.index()].load(Ordering::Relaxed)))
            .collect()
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.results[kind.index()].load(Ordering::Relaxed)
    }

    /// Total time spent verifying.
    pub fn total_time(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    pub fn cache_hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn cache_misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

type Observer = Arc<dyn Fn(Kind, Duration) + Send + Sync>;
type Flight = Shared<BoxFuture<'static, Outcome>>;
type CacheKey = (ImageDigest, KeySetId);

struct Entry {
    outcome: Outcome,
    fresh_until: Instant,
}

#[derive(Default)]
struct State {
    /// Bumped by [`Verifier::clear`]: a flight started before must not store its result.
    generation: u64,
    cache: HashMap<CacheKey, Entry>,
    inflight: HashMap<CacheKey, Flight>,
}

struct Inner {
    settings: VerifierSettings,
    registry: Arc<RegistrySettings>,
    /// One client per registry, so that its tokens are reused.
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
    state: Mutex<State>,
    stats: Stats,
    observer: OnceLock<Observer>,
}

/// Verifies cosign signatures; cheap to clone (one shared cache). Needs a Tokio runtime for
/// [`Verifier::verify`] (flights run as tasks, so a caller that gives up does not waste the
/// work: the result still lands in the cache).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Verifier {
    pub fn new(settings: VerifierSettings) -> Verifier {
        Verifier {
            inner: Arc::new(Inner {
                registry: Arc::new(settings.registry.clone()),
                settings,
                clients: Mutex::new(HashMap::new()),
                state: Mutex::new(State::default()),
                stats: Stats::default(),
                observer: OnceLock::new(),
            }),
        }
    }

    pub fn settings(&self) -> &VerifierSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Called with every verification's result and duration (a Prometheus histogram). Set
    /// once; a second call is ignored and returns false.
    pub fn set_observer(&self, f: impl Fn(Kind, Duration) + Send + Sync + 'static) -> bool {
        self.inner.observer.set(Arc::new(f)).is_ok()
    }

    /// The cached answer, without I/O (for a pure decision): `Some` when it is known and
    /// fresh: any of `digests` verified, or every one failed; `None` when
    /// [`Verifier::verify`] must be asked. Counts a cache hit or miss.
    pub fn lookup(&self, digests: &[ImageDigest], keys: &KeySet) -> Option<Outcome> {
        let now = Instant::now();
        let st = lock(&self.inner.state);
        let mut failed: Option<Outcome> = None;
        let mut unknown = digests.is_empty();
        for d in digests {
            match st.cache.get(&(d.clone(), keys.id())) {
                Some(e) if e.fresh_until > now => {
                    if e.outcome.is_verified() {
                        self.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
                        return Some(e.outcome.clone());
                    }
                    failed.get_or_insert_with(|| e.outcome.clone());
                }
                _ => unknown = true,
            }
        }
        if unknown {
            self.inner.stats.misses.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            self.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
            failed
        }
    }

    /// [`Verifier::lookup`] for an image as a container names it (`Config.Image`) with the
    /// image's `RepoDigests`: `Some(Failed(NoRegistryDigest))` at once when there is no
    /// digest to verify (see [`super::subject`]).
    pub fn lookup_image(&self, image: &str, repo_digests: &[String], keys: &KeySet) -> Option<Outcome> {
        match super::digests_to_verify(image, repo_digests) {
            Ok(digests) => self.lookup(&digests, keys),
            Err(f) => Some(Outcome::Failed(f)),
        }
    }

    /// [`Verifier::verify`] for an image as a container names it, with its `RepoDigests`.
    pub async fn verify_image(&self, image: &str, repo_digests: &[String], keys: &KeySet) -> Outcome {
        match super::digests_to_verify(image, repo_digests) {
            Ok(digests) => self.verify(&digests, keys).await,
            Err(f) => {
                self.inner.stats.record(f.kind(), Duration::ZERO);
                Outcome::Failed(f)
            }
        }
    }

    /// Verifies (cached first): verified when any of `digests` carries a signature by one of
    /// `keys`. Concurrent calls for the same digest and keys share one flight; each flight
    /// is bounded by [`VerifierSettings::timeout`]. With several digests (an image named by
    /// ID) they are verified concurrently; a failure reported is the first transient one
    /// (the answer may change), else the first digest's.
    pub async fn verify(&self, digests: &[ImageDigest], keys: &KeySet) -> Outcome {
        if digests.is_empty() {
            return Outcome::Failed(Failure::NoRegistryDigest {
                detail: "no digest to verify".into(),
            });
        }
        let results = futures_util::future::join_all(digests.iter().map(|d| self.verify_one(d, keys))).await;
        if let Some(v) = results.iter().find(|o| o.is_verified()) {
            return v.clone();
        }
        results
            .iter()
            .find(|o| matches!(o, Outcome::Failed(f) if f.is_transient()))
            .unwrap_or(&results[0])
            .clone()
    }

    async fn verify_one(&self, d: &ImageDigest, keys: &KeySet) -> Outcome {
        let key = (d.clone(), keys.id());
        let now = Instant::now();
        let flight = {
            let mut st = lock(&self.inner.state);
            match st.cache.get(&key) {
                Some(e) if e.fresh_until > now => return e.outcome.clone(),
                Some(e) if e.outcome.is_verified() => {
                    // Stale but verified: answer it, re-verify in the background.
                    let stale = e.outcome.clone();
                    if !st.inflight.contains_key(&key) {
                        // Runs as a task: nobody needs to await it.
                        let _background = self.start(&mut st, key, keys.clone());
                    }
                    return stale;
                }
                _ => {}
            }
            match st.inflight.get(&key) {
                Some(f) => f.clone(),
                None => self.start(&mut st, key, keys.clone()),
            }
        };
        flight.await
    }

    /// Starts a flight (a task) for `key` and registers it; the caller holds the lock.
    fn start(&self, st: &mut State, key: CacheKey, keys: KeySet) -> Flight {
        let inner = self.inner.clone();
        let generation = st.generation;
        let image = key.0.clone();
        let flight_key = key.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let limit = inner.settings.timeout;
            let outcome = match tokio::time::timeout(limit, inner.check(&image, &keys)).await {
                Ok(o) => o,
                Err(_) => Outcome::Failed(Failure::Unreachable {
                    registry: image.registry.clone(),
                    message: format!("verification took longer than {} s", limit.as_secs_f32()),
                }),
            };
            let took = started.elapsed();
            inner.stats.record(outcome.kind(), took);
            if let Some(observe) = inner.observer.get() {
                observe(outcome.kind(), took);
            }
            inner.store(flight_key, generation, outcome)
        });
        let registry = key.0.registry.clone();
        let flight: Flight = async move {
            task.await.unwrap_or_else(|e| {
                Outcome::Failed(Failure::Unreachable {
                    registry,
                    message: format!("the verification task ended: {e}"),
                })
            })
        }
        .boxed()
        .shared();
        st.inflight.insert(key, flight.clone());
        flight
    }

    /// Forgets every result, and the results of verifications still in flight.
    pub fn clear(&self) {
        let mut st = lock(&self.inner.state);
        st.generation += 1;
        st.cache.clear();
        st.inflight.clear();
    }

    /// Keeps only the results of these key sets (the ones the policy now uses).
    pub fn retain_key_sets(&self, ids: &[KeySetId]) {
        let mut st = lock(&self.inner.state);
        st.cache.retain(|(_, id), _| ids.contains(id));
    }

    /// Cache entries held now.
    pub fn cached(&self) -> usize {
        lock(&self.inner.state).cache.len()
    }
}

impl Inner {
    /// Stores a flight's result by the cache rules and returns what its callers get.
    fn store(&self, key: CacheKey, generation: u64, outcome: Outcome) -> Outcome {
        let now = Instant::now();
        let mut st = lock(&self.state);
        if st.generation != generation {
            return outcome; // cleared meanwhile: the answer is for a policy that is gone
        }
        st.inflight.remove(&key);
        let s = &self.settings;
        let (outcome, ttl) = match &outcome {
            Outcome::Verified(_) => (outcome, s.positive_ttl),
            Outcome::Failed(f) if f.is_transient() => {
                if let Some(e) = st.cache.get_mut(&key)
                    && e.outcome.is_verified()
                {
                    tracing::warn!(
                        image = %key.0, reason = %f,
                        "signature could not be re-verified; keeping the earlier verified result"
                    );
                    e.fresh_until = now + s.transient_ttl;
                    return e.outcome.clone();
                }
                (outcome, s.transient_ttl)
            }
            Outcome::Failed(_) => (outcome, s.negative_ttl),
        };
        if st.cache.len() >= s.max_entries && !st.cache.contains_key(&key) {
            evict(&mut st.cache, now, s.max_entries);
        }
        st.cache.insert(
            key,
            Entry {
                outcome: outcome.clone(),
                fresh_until: now + ttl,
            },
        );
        outcome
    }

    fn client(&self, registry: &str) -> Result<Arc<RegistryClient>, RegistryError> {
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(registry) {
            return Ok(c.clone());
        }
        let c = Arc::new(RegistryClient::new(registry, self.registry.clone())?);
        clients.insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// One verification against the registry, uncached.
    async fn check(&self, image: &ImageDigest, keys: &KeySet) -> Outcome {
        match self.check_inner(image, keys).await {
            Ok(key) => Outcome::Verified(Verified {
                key,
                digest: image.clone(),
            }),
            Err(f) => Outcome::Failed(f),
        }
    }

    async fn check_inner(&self, image: &ImageDigest, keys: &KeySet) -> Result<String, Failure> {
        let s = &self.registry;
        let registry_failure = |e: RegistryError| match e {
            RegistryError::Unreachable(message) => Failure::Unreachable {
                registry: image.registry.clone(),
                message,
            },
            RegistryError::Denied(message) => Failure::Denied {
                registry: image.registry.clone(),
                message,
            },
            RegistryError::TooLarge { what, message } => Failure::TooLarge { what, message },
        };
        let client = self.client(&image.registry).map_err(registry_failure)?;
        let repo = &image.repository;
        let path = format!("/v2/{repo}/manifests/{}", image.signature_tag());
        let found = client
            .get(
                repo,
                &path,
                Some(MANIFEST_ACCEPT),
                s.max_manifest,
                "signature manifest",
            )
            .await
            .map_err(registry_failure)?;
        let Some(manifest) = found else {
            return Err(if self.has_bundle(&client, image).await {
                Failure::BundleUnsupported {
                    digest: image.digest.clone(),
                }
            } else {
                Failure::NoSignature {
                    digest: image.digest.clone(),
                }
            });
        };
        let layers = parse_signature_manifest(
            image,
            manifest.content_type.as_deref(),
            &manifest.body,
            s.max_layers,
        )?;
        let mut failures = Vec::new();
        for layer in signature_layers(image, &layers)? {
            if let Err(f) = check_descriptor(image, layer, s.max_blob) {
                failures.push(f);
                continue;
            }
            let path = format!("/v2/{repo}/blobs/{}", layer.digest);
            let blob = match client
                .get(repo, &path, None, s.max_blob, "signature payload")
                .await
            {
                Ok(Some(b)) => b.body,
                Ok(None) => {
                    failures.push(Failure::Malformed {
                        digest: image.digest.clone(),
                        message: format!("payload blob {} is not in the registry", layer.digest),
                    });
                    continue;
                }
                Err(e @ RegistryError::TooLarge { .. }) => {
                    failures.push(registry_failure(e));
                    continue;
                }
                Err(e) => return Err(registry_failure(e)),
            };
            match check_layer(image, layer, &blob, keys) {
                Ok(key) => return Ok(key),
                Err(f) => failures.push(f),
            }
        }
        Err(most_telling(failures).unwrap_or_else(|| Failure::Malformed {
            digest: image.digest.clone(),
            message: "no signature layer".into(),
        }))
    }

    /// Whether cosign v3 left a Sigstore bundle for the digest instead of a `.sig` tag: the
    /// referrers API, else the referrers tag schema's index (`sha256-<hex>`). Only asked
    /// when there is no `.sig` tag, to say why; any error reads as "no".
    async fn has_bundle(&self, client: &RegistryClient, image: &ImageDigest) -> bool {
        let s = &self.registry;
        let repo = &image.repository;
        let asks = [
            format!("/v2/{repo}/referrers/{}", image.digest),
            format!("/v2/{repo}/manifests/{}", image.digest.replace(':', "-")),
        ];
        for path in asks {
            if let Ok(Some(found)) = client
                .get(repo, &path, Some(OCI_INDEX), s.max_manifest, "referrers")
                .await
                && lists_bundle(&found.body)
            {
                return true;
            }
        }
        false
    }
}

/// Makes room: stale entries go first, then the tenth that would go stale soonest.
fn evict(cache: &mut HashMap<CacheKey, Entry>, now: Instant, max: usize) {
    cache.retain(|_, e| e.fresh_until > now || e.outcome.is_verified());
    if cache.len() < max {
        return;
    }
    let mut by_age: Vec<(Instant, CacheKey)> =
        cache.iter().map(|(k, e)| (e.fresh_until, k.clone())).collect();
    by_age.sort_by_key(|(t, _)| *t);
    for (_, k) in by_age.into_iter().take((max / 10).max(1)) {
        cache.remove(&k);
    }
}

#[cfg(test)]
mod tests;
