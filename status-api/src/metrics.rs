//! `/metrics` in OpenMetrics text (prometheus-client): requests by route, method and status,
//! their latency, and, read at scrape time, the informer and policy metrics under the names
//! both binaries share ([`common::metrics::SharedMetrics`]), the resource collector's rounds
//! and the denied containers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use common::informer::Stats as InformerStats;
use common::informer::store::Store;
use common::metrics::{counter, gauge};
use common::reload::PolicyHandle;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::resources::CollectorStats;

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The registry and the request metrics the HTTP layer updates.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    /// Denied live containers in the view cache's current snapshot (-1: no allowlist).
    denied_live: Arc<AtomicI64>,
}

/// What the scrape-time collector reads.
pub struct Sources {
    pub store: Store,
    pub informer: Arc<InformerStats>,
    pub policy: Option<PolicyHandle>,
    pub resources: Arc<CollectorStats>,
    /// The HTTP server's connections.
    pub http: Arc<common::http::Stats>,
}

/// What the scrape-time collector reads besides the sources.
#[derive(Debug)]
struct Scrape {
    sources: Sources,
    denied_live: Arc<AtomicI64>,
}

impl Metrics {
    pub fn new(sources: Sources) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "status_api_http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let durations: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register(
            "status_api_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            durations.clone(),
        );
        registry.register_collector(Box::new(common::metrics::SharedMetrics {
            store: sources.store.clone(),
            informer: sources.informer.clone(),
            policy: sources.policy.clone(),
        }));
        let denied_live = Arc::new(AtomicI64::new(-1));
        registry.register_collector(Box::new(Scrape {
            sources,
            denied_live: denied_live.clone(),
        }));
        Metrics {
            registry,
            requests,
            durations,
            denied_live,
        }
    }

    /// Counts one answered request (called by the request filter for every response);
    /// `route` is the route table's template, or `other`.
    pub fn observe(&self, route: &'static str, method: &warp::http::Method, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// The denied live containers of the snapshot being served (`None`: no allowlist), as
    /// the view cache counted them: the same decisions the page and the JSON show.
    pub fn set_denied_live(&self, n: Option<usize>) {
        let v = n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.denied_live.store(v, Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Clients may send any method name; only the standard ones become label values.
fn method_label(m: &warp::http::Method) -> &'static str {
    use warp::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.sources;
        gauge(
            &mut enc,
            "status_api_http_connections_open",
            "HTTP connections open now",
            i64::try_from(s.http.open.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut enc,
            "status_api_http_connections",
            "HTTP connections accepted",
            s.http.accepted.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "status_api_http_connection_errors",
            "HTTP connections that ended with an error (timeout, reset, malformed request)",
            s.http.errors.load(Relaxed),
        )?;
        let r = &s.resources;
        counter(
            &mut enc,
            "status_api_resource_rounds",
            "Resource collection rounds",
            r.rounds.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "status_api_resource_errors",
            "Failed stats calls",
            r.errors.load(Relaxed),
        )?;
        gauge(
            &mut enc,
            "status_api_resource_last_round_microseconds",
            "Duration of the last resource collection round",
            i64::try_from(r.last_round_micros.load(Relaxed)).unwrap_or(i64::MAX),
        )?;
        let denied = self.denied_live.load(Relaxed);
        if denied >= 0 {
            gauge(
                &mut enc,
                "status_api_containers_denied",
                "Live containers the policy in force denies (in enforce mode the controller acts on them; in audit mode they run)",
                denied,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics() {
        let m = Metrics::new(Sources {
            store: Store::new(),
            informer: Arc::default(),
            policy: None,
            resources: Arc::default(),
            http: Arc::default(),
        });
        m.observe("/containers", &warp::http::Method::GET, 200, 0.001);
        let text = m.render().unwrap();
        assert!(
            text.contains(
                r#"status_api_http_requests_total{route="/containers",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"dockwarden_containers{state="running"} 0"#),
            "{text}"
        );
        assert!(text.contains("dockwarden_informer_events_total 0"), "{text}");
        assert!(text.contains("dockwarden_informer_synced 0"), "{text}");
        assert!(text.contains("status_api_http_connections_open 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        assert!(
            !text.contains("status_api_containers_denied"),
            "no allowlist, no verdicts"
        );
        m.set_denied_live(Some(2));
        let text = m.render().unwrap();
        assert!(text.contains("status_api_containers_denied 2"), "{text}");
    }
}
