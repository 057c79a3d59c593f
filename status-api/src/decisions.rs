//! What dockwarden did: the controller's recent decisions that acted or would have acted,
//! fetched in the background from its `GET /decisions` (given `--controller-url`), never per
//! page request. One GET every [`POLL`], bounded in time ([`FETCH_TIMEOUT`]) and size
//! ([`MAX_BODY`]); the last good answer stays on show while the controller is unreachable,
//! and the page says so.
//!
//! The contract is [`common::decision::record`]'s: `GET /decisions` →
//! `{"capacity":1000,"decisions":[DecisionRecord, ...]}`, oldest first, read leniently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use common::decision::DecisionRecord;
use common::http::client::{Client, Target};
use hyper::header::{self, HeaderValue};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Time between two fetches: a decision shows here well within a second of the
/// controller's.
pub const POLL: Duration = Duration::from_millis(400);
/// A fetch that takes longer counts as a failure.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer accepted (1,000 decisions take about 400 KB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// `GET /decisions`, the controller's and ours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    #[serde(default)]
    pub capacity: usize,
    #[serde(default)]
    pub decisions: Vec<DecisionRecord>,
}

impl Feed {
    /// The decisions about a container given by name or ID prefix (`?container=`).
    pub fn about<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a DecisionRecord> + 'a {
        self.decisions
            .iter()
            .filter(move |d| !key.is_empty() && (d.container == key || d.id.starts_with(key)))
    }
}

/// What the feed looks like now.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `--controller-url`, when given.
    pub url: Option<String>,
    /// The last good answer, with the JSON as we serve it.
    pub feed: Option<Arc<Feed>>,
    pub body: Option<Bytes>,
    /// The latest decision per container ID.
    latest: HashMap<String, usize>,
    /// Why the last fetch failed; `None` when it succeeded.
    pub error: Option<String>,
    pub fetched_at: Option<Timestamp>,
}

impl Snapshot {
    pub fn configured(&self) -> bool {
        self.url.is_some()
    }

    pub fn reachable(&self) -> bool {
        self.configured() && self.error.is_none() && self.feed.is_some()
    }

    /// The latest decision about the container with this full ID.
    pub fn latest_for(&self, id: &str) -> Option<&DecisionRecord> {
        let feed = self.feed.as_ref()?;
        self.latest.get(id).and_then(|i| feed.decisions.get(*i))
    }

    /// The most recent decisions, newest first.
    pub fn recent(&self, n: usize) -> Vec<&DecisionRecord> {
        self.feed
            .as_ref()
            .map(|f| f.decisions.iter().rev().take(n).collect())
            .unwrap_or_default()
    }
}

/// The shared feed; clone freely.
#[derive(Clone, Default)]
pub struct Decisions {
    now: Arc<RwLock<Arc<Snapshot>>>,
    /// Bumped whenever what the page shows changes (new decisions, reachability).
    version: Arc<AtomicU64>,
}

impl Decisions {
    pub fn new(url: Option<String>) -> Decisions {
        let d = Decisions::default();
        d.publish(Snapshot {
            url,
            ..Default::default()
        });
        d
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.now.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Relaxed)
    }

    fn publish(&self, s: Snapshot) {
        *self.now.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
        self.version.fetch_add(1, Relaxed);
    }

    /// Applies one fetch's outcome; publishes only when something visible changed.
    pub fn apply(&self, outcome: Result<Bytes, String>) {
        let cur = self.current();
        let mut next = Snapshot {
            url: cur.url.clone(),
            feed: cur.feed.clone(),
            body: cur.body.clone(),
            latest: cur.latest.clone(),
            error: None,
            fetched_at: cur.fetched_at,
        };
        match outcome {
            Ok(bytes) if cur.body.as_ref() == Some(&bytes) && cur.error.is_none() => return,
            Ok(bytes) => match serde_json::from_slice::<Feed>(&bytes) {
                Ok(feed) => {
                    next.latest = feed
                        .decisions
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (d.id.clone(), i))
                        .collect();
                    next.fetched_at = Some(Timestamp::now());
                    next.body = Some(bytes);
                    next.feed = Some(Arc::new(feed));
                }
                Err(e) => {
                    next.error = Some(format!("the controller's answer is not the decisions JSON: {e}"))
                }
            },
            Err(e) => next.error = Some(e),
        }
        if next.error != cur.error {
            match &next.error {
                Some(e) => {
                    tracing::warn!(error = %e, "cannot read the controller's decisions; will keep trying")
                }
                None => tracing::info!("reading the controller's decisions"),
            }
        } else if next.error.is_some() {
            return;
        }
        self.publish(next);
    }

    /// Fetches forever, every [`POLL`].
    pub async fn run(self, url: String) {
        let (client, path) = match client_for(&url) {
            Ok(c) => c,
            Err(e) => {
                self.apply(Err(e));
                return std::future::pending().await;
            }
        };
        let accept = [(header::ACCEPT, HeaderValue::from_static("application/json"))];
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let outcome = client
                .get("read the controller's decisions", &path, &accept, MAX_BODY)
                .await
                .map(|(_, body)| body)
                .map_err(|e| e.to_string());
            self.apply(outcome);
        }
    }
}

/// `--controller-url http://host:port[/base]` → a client and the path of `/decisions`.
fn client_for(url: &str) -> Result<(Client, String), String> {
    let (target, base) = Target::from_http_url(url).map_err(|e| format!("--controller-url {e}"))?;
    let client = Client::new(target, format!("the controller at {url}"), FETCH_TIMEOUT);
    Ok((client, format!("{base}/decisions")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"{"capacity":1000,"decisions":[
      {"time":"2026-12-02T14:00:00.123Z","container":"web","id":"aaaa1111","image":"busybox:1","verdict":"deny","rule":null,"reason":"no [[allow]] rule matches","action":"kill","result":"ok","latency_ms":12.3,"trigger":"start event"},
      {"time":"2026-12-02T14:00:05Z","container":"db","id":"bbbb2222","image":"pg","verdict":"deny","rule":null,"reason":"no [[allow]] rule matches","action":"kill","result":"audit","latency_ms":null,"trigger":"start event"},
      {"time":"2026-12-02T14:00:09Z","container":"web","id":"aaaa1111","image":"busybox:1","verdict":"deny","rule":null,"reason":"no [[allow]] rule matches","action":"kill","result":"already gone","latency_ms":1.0,"trigger":"re-list"}
    ]}"#;

    #[test]
    fn parses_filters_and_tells_the_latest() {
        let d = Decisions::new(Some("http://c:9090".into()));
        assert!(d.current().configured() && !d.current().reachable());
        let v0 = d.version();
        d.apply(Ok(Bytes::from_static(FEED.as_bytes())));
        let s = d.current();
        assert!(s.reachable());
        assert!(d.version() > v0);
        let feed = s.feed.as_ref().unwrap();
        assert_eq!(feed.decisions.len(), 3);
        assert_eq!(feed.about("web").count(), 2);
        assert_eq!(feed.about("bbbb").count(), 1);
        assert_eq!(feed.about("").count(), 0);
        assert_eq!(
            s.latest_for("aaaa1111").unwrap().result,
            common::decision::ActionResult::AlreadyGone
        );
        assert_eq!(s.recent(1)[0].trigger.to_string(), "re-list");
        // Same bytes again: nothing visible changed, no new version.
        let v1 = d.version();
        d.apply(Ok(Bytes::from_static(FEED.as_bytes())));
        assert_eq!(d.version(), v1);
        // Unreachable: the last good feed stays, the error shows.
        d.apply(Err("connection refused".into()));
        let s = d.current();
        assert!(!s.reachable() && s.feed.is_some());
        assert_eq!(s.error.as_deref(), Some("connection refused"));
        let v2 = d.version();
        d.apply(Err("connection refused".into()));
        assert_eq!(d.version(), v2, "the same failure is not news");
        d.apply(Ok(Bytes::from_static(b"<html>")));
        assert!(
            d.current()
                .error
                .as_deref()
                .unwrap()
                .contains("not the decisions JSON")
        );
    }

    #[test]
    fn controller_urls() {
        let (c, path) = client_for("http://state-controller:9090").unwrap();
        assert_eq!(*c.target(), Target::Tcp("state-controller:9090".into()));
        assert_eq!(path, "/decisions");
        let (_, path) = client_for("http://127.0.0.1:9090/base/").unwrap();
        assert_eq!(path, "/base/decisions");
        assert!(client_for("https://x").is_err());
        assert!(client_for("not a url").is_err());
    }
}
