//! Prometheus metrics of the controller: the informer and policy metrics are
//! [`common::metrics::SharedMetrics`], the same names status-api exports; the controller
//! adds its decisions, actions, authorization answers and signature verifications. Served by
//! [`crate::endpoint`].

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use common::informer::Stats as InformerStats;
use common::informer::store::Store;
use common::metrics::{SharedMetrics, counter, gauge};
use common::provenance::Verifier;
use common::reload::PolicyHandle;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::enforcer::Tally;

type Labels = [(&'static str, &'static str); 2];

/// Counters the executor updates as it goes, and what is read at scrape time.
pub struct Metrics {
    registry: Registry,
    actions: Family<Labels, Counter>,
    /// From what triggered an action (the engine's event, a new policy) to its completion.
    pub latency: Histogram,
    /// Actions on a container name that had been acted on before.
    pub recurring: Counter,
    /// The enforcer's tally, mirrored after every step of its loop.
    pub tally: Arc<Mutex<Tally>>,
    /// Containers the enforcer holds a record for.
    pub tracked: Arc<AtomicUsize>,
    /// Live containers the enforcer's latest decisions deny.
    pub denied_live: Arc<AtomicUsize>,
    authz: Family<Labels, Counter>,
    authz_latency: Histogram,
}

/// What the enforcer mirrored, read at scrape time.
struct Scrape {
    tally: Arc<Mutex<Tally>>,
    tracked: Arc<AtomicUsize>,
    denied_live: Arc<AtomicUsize>,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let decisions = Family::<[(&'static str, &'static str); 1], Counter>::default();
        for (verdict, n) in [("allow", t.allow), ("deny", t.deny), ("spare", t.spare)] {
            decisions.get_or_create(&[("verdict", verdict)]).inc_by(n);
        }
        let m = enc.encode_descriptor(
            "dockwarden_decisions",
            "Containers judged, by verdict (once per container and policy generation)",
            None,
            decisions.metric_type(),
        )?;
        decisions.encode(m)?;
        counter(
            &mut enc,
            "dockwarden_spared",
            "Containers spared as dockwarden's own",
            t.spare,
        )?;
        counter(
            &mut enc,
            "dockwarden_unjudgeable_denied",
            "Containers denied because their metadata could not be read",
            t.unjudgeable,
        )?;
        counter(
            &mut enc,
            "dockwarden_action_retries",
            "Retries of failed actions",
            t.retries,
        )?;
        gauge(
            &mut enc,
            "dockwarden_enforcer_tracked",
            "Containers the enforcer holds a record for",
            self.tracked.load(Relaxed) as i64,
        )?;
        gauge(
            &mut enc,
            "dockwarden_denied_live",
            "Live containers the policy in force denies (in enforce mode they are being acted on; in audit mode they run)",
            self.denied_live.load(Relaxed) as i64,
        )
    }
}

/// The verifier's cache hits and misses, read at scrape time.
#[derive(Debug)]
struct SignatureCache(Verifier);

impl Collector for SignatureCache {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let stats = self.0.stats();
        counter(
            &mut enc,
            "dockwarden_signature_cache_hits",
            "Signature decisions answered from the verifier's cache",
            stats.cache_hits(),
        )?;
        counter(
            &mut enc,
            "dockwarden_signature_cache_misses",
            "Signature decisions the cache could not answer (a verification followed)",
            stats.cache_misses(),
        )
    }
}

impl Metrics {
    pub fn new(
        store: &Store,
        policy: &PolicyHandle,
        informer: Arc<InformerStats>,
        verifier: &Verifier,
    ) -> Self {
        let mut registry = Registry::default();
        let actions = Family::<Labels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let recurring = Counter::default();
        registry.register(
            "dockwarden_actions",
            "Actions on denied containers, by action and result (ok, error, audit: what audit mode would have done)",
            actions.clone(),
        );
        registry.register(
            "dockwarden_action_latency_seconds",
            "From what triggered an action (the container's event, a new policy) to its completion",
            latency.clone(),
        );
        registry.register(
            "dockwarden_recurring",
            "Actions on a container name that was acted on before: it keeps coming back",
            recurring.clone(),
        );
        let authz = Family::<Labels, Counter>::default();
        let authz_latency = Histogram::new(exponential_buckets(0.000_005, 2.0, 16));
        registry.register(
            "dockwarden_authz_requests",
            "Authorization-plugin requests, by endpoint (create, start, restart, unpause, exec, other) and result (allow, deny, audit: would deny)",
            authz.clone(),
        );
        registry.register(
            "dockwarden_authz_decision_seconds",
            "Time the authorization plugin took to answer",
            authz_latency.clone(),
        );
        let verify_latency =
            Family::<[(&'static str, &'static str); 1], Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
            });
        registry.register(
            "dockwarden_signature_verification_seconds",
            "Signature verifications against a registry, by result, and their time",
            verify_latency.clone(),
        );
        verifier.set_observer(move |kind, took| {
            verify_latency
                .get_or_create(&[("result", kind.as_str())])
                .observe(took.as_secs_f64());
        });
        registry.register_collector(Box::new(SignatureCache(verifier.clone())));
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let tracked: Arc<AtomicUsize> = Arc::default();
        let denied_live: Arc<AtomicUsize> = Arc::default();
        registry.register_collector(Box::new(SharedMetrics {
            store: store.clone(),
            informer,
            policy: Some(policy.clone()),
        }));
        registry.register_collector(Box::new(Scrape {
            tally: tally.clone(),
            tracked: tracked.clone(),
            denied_live: denied_live.clone(),
        }));
        Metrics {
            registry,
            actions,
            latency,
            recurring,
            tally,
            tracked,
            denied_live,
            authz,
            authz_latency,
        }
    }

    /// Counts one authorization answer and its time.
    pub fn authz(
        &self,
        endpoint: common::decision::Endpoint,
        result: &'static str,
        since: std::time::Instant,
    ) {
        self.authz
            .get_or_create(&[("endpoint", endpoint.as_str()), ("result", result)])
            .inc();
        self.authz_latency.observe(since.elapsed().as_secs_f64());
    }

    pub fn action(&self, action: &'static str, result: &'static str) {
        self.actions
            .get_or_create(&[("action", action), ("result", result)])
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
