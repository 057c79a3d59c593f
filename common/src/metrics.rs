//! The metrics both binaries export under the same names: the informer's picture and the
//! policy in force. Read at scrape time from the counters the informer and the reloader keep.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `dockwarden_containers{state}` | gauge | containers in the picture, by state |
//! | `dockwarden_informer_synced` | gauge | 1 while the picture is synced with the engine |
//! | `dockwarden_informer_events_total` | counter | engine events received |
//! | `dockwarden_informer_reconnects_total` | counter | sessions with the engine that ended |
//! | `dockwarden_informer_relists_total` | counter | full re-lists applied |
//! | `dockwarden_informer_inspect_errors_total` | counter | failed inspects (each try) |
//! | `dockwarden_informer_unjudgeable_total` | counter | containers whose metadata could not be read after bounded tries |
//! | `dockwarden_informer_overflows_total` | counter | times the consumer fell behind (a re-list followed) |
//! | `dockwarden_policy_generation` | gauge | generation of the policy in force (1 = loaded at start) |
//! | `dockwarden_policy_reloads_total{result}` | counter | reloads `accepted` or `rejected` |
//! | `dockwarden_policy_file_valid` | gauge | 0 while the file on disk is refused and an older policy is in force |
//! | `dockwarden_policy_audit` | gauge | 1 when the policy in force is in audit mode |

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};

use crate::engine::container::State;
use crate::informer::Stats;
use crate::informer::store::Store;
use crate::policy::Mode;
use crate::reload::PolicyHandle;

/// The content type of the exposition text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the shared metrics read; register it with `registry.register_collector` on a
/// registry without a prefix.
pub struct SharedMetrics {
    pub store: Store,
    pub informer: Arc<Stats>,
    pub policy: Option<PolicyHandle>,
}

impl fmt::Debug for SharedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMetrics").finish_non_exhaustive()
    }
}

/// Writes one counter.
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

/// Writes one gauge.
pub fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for SharedMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let containers = self.store.list();
        let by_state = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        for s in State::ALL {
            let n = containers.iter().filter(|c| c.state == s).count();
            by_state.get_or_create(&[("state", s.as_str())]).set(n as i64);
        }
        let m = enc.encode_descriptor(
            "dockwarden_containers",
            "Containers in the picture, by state",
            None,
            by_state.metric_type(),
        )?;
        by_state.encode(m)?;
        gauge(
            &mut enc,
            "dockwarden_informer_synced",
            "1 while the picture is synced with the engine",
            i64::from(self.store.is_ready()),
        )?;
        let i = &self.informer;
        for (name, help, v) in [
            ("dockwarden_informer_events", "Engine events received", &i.events),
            (
                "dockwarden_informer_reconnects",
                "Sessions with the engine that ended (stream broke, list failed, overflow)",
                &i.reconnects,
            ),
            ("dockwarden_informer_relists", "Full re-lists applied", &i.relists),
            (
                "dockwarden_informer_inspect_errors",
                "Failed container inspects (each try)",
                &i.inspect_errors,
            ),
            (
                "dockwarden_informer_unjudgeable",
                "Containers whose metadata could not be read after bounded tries (judged on what is known, denied unless that allows them)",
                &i.unjudgeable,
            ),
            (
                "dockwarden_informer_overflows",
                "Times the consumer fell behind the informer (a re-list followed)",
                &i.overflows,
            ),
        ] {
            counter(&mut enc, name, help, v.load(Relaxed))?;
        }
        if let Some(p) = &self.policy {
            let loaded = p.current();
            gauge(
                &mut enc,
                "dockwarden_policy_generation",
                "Generation of the policy in force (1 = loaded at start)",
                i64::try_from(loaded.generation).unwrap_or(i64::MAX),
            )?;
            let reloads = Family::<[(&'static str, &'static str); 1], Counter>::default();
            reloads
                .get_or_create(&[("result", "accepted")])
                .inc_by(p.stats.accepted.load(Relaxed));
            reloads
                .get_or_create(&[("result", "rejected")])
                .inc_by(p.stats.rejected.load(Relaxed));
            let m = enc.encode_descriptor(
                "dockwarden_policy_reloads",
                "Policy file reloads, by result (accepted, rejected: the last good policy stayed)",
                None,
                reloads.metric_type(),
            )?;
            reloads.encode(m)?;
            gauge(
                &mut enc,
                "dockwarden_policy_file_valid",
                "0 while the policy file on disk is refused and an older policy is in force",
                i64::from(p.stats.file_valid.load(Relaxed)),
            )?;
            gauge(
                &mut enc,
                "dockwarden_policy_audit",
                "1 when the policy in force is in audit mode",
                i64::from(loaded.policy.mode == Mode::Audit),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn renders_the_shared_names() {
        let mut r = Registry::default();
        let policy = crate::policy::Policy::parse("mode = \"audit\"\n[[allow]]\nname = \"a\"\n", "t")
            .unwrap_or_else(|e| panic!("{e}"));
        r.register_collector(Box::new(SharedMetrics {
            store: Store::new(),
            informer: Arc::default(),
            policy: Some(PolicyHandle::fixed(policy)),
        }));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap_or_else(|e| panic!("{e}"));
        for line in [
            "dockwarden_containers{state=\"running\"} 0",
            "dockwarden_informer_synced 0",
            "dockwarden_informer_events_total 0",
            "dockwarden_informer_unjudgeable_total 0",
            "dockwarden_policy_generation 1",
            "dockwarden_policy_reloads_total{result=\"rejected\"} 0",
            "dockwarden_policy_file_valid 1",
            "dockwarden_policy_audit 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
