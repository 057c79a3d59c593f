//! What dockwarden did: the controller's recent decisions that acted or would have acted,
//! fetched in the background from its `GET /decisions` (given `--controller-url`), never per
//! page request. One GET every [`POLL`], bounded in time ([`FETCH_TIMEOUT`]) and size
//! ([`MAX_BODY`]); the last good answer stays on show while the controller is unreachable,
//! and the page says so.
//!
//! The contract (the controller's side): `GET /decisions` →
//! `{"capacity":1000,"decisions":[{"time","container","id","image","verdict","rule",
//! "reason","action","result","latency_ms","trigger"}, ...]}`, oldest first; `result` is
//! `ok`, `error: <msg>`, `audit` (would have acted) or `already gone`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
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

/// One decision, as the controller reports it. Missing fields default, so one field the
/// controller stops sending does not blank the whole feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub time: Timestamp,
    #[serde(default)]
    pub container: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub verdict: String,
    /// 1-based `[[allow]]` rule index, or null.
    #[serde(default)]
    pub rule: Option<usize>,
    #[serde(default)]
    pub reason: String,
    /// `kill`, `stop`, `remove`.
    #[serde(default)]
    pub action: String,
    /// `ok`, `error: <msg>`, `audit`, `already gone`.
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub trigger: String,
}

/// `GET /decisions`, the controller's and ours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    #[serde(default)]
    pub capacity: usize,
    #[serde(default)]
    pub decisions: Vec<Decision>,
}

impl Feed {
    /// The decisions about a container given by name or ID prefix (`?container=`).
    pub fn about<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Decision> + 'a {
        self.decisions
            .iter()
            .filter(move |d| !key.is_empty() && (d.container == key || d.id.starts_with(key)))
    }
}

impl Decision {
    /// Whether dockwarden's action took effect (the container was killed, stopped or
    /// removed by it).
    pub fn acted(&self) -> bool {
        self.result == "ok"
    }

    /// One sentence for a person: "killed 3 s after start by dockwarden: no rule allows
    /// it". `started`: when the container started, if known.
    pub fn sentence(&self, started: Option<Timestamp>) -> String {
        let done = match self.action.as_str() {
            "kill" => "killed",
            "stop" => "stopped",
            "remove" => "removed",
            other => other,
        };
        let when = match started {
            Some(s) if self.time >= s => {
                format!(" {} after start", short_duration(self.time.duration_since(s)))
            }
            _ => String::new(),
        };
        let why = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        match self.result.as_str() {
            "ok" => format!("{done}{when} by dockwarden{why}"),
            "audit" => format!("would have been {done}{when} (audit mode: left alone){why}"),
            "already gone" => format!("already gone when dockwarden went to {}{why}", self.action),
            r => match r.strip_prefix("error: ") {
                Some(e) => format!("dockwarden failed to {} it{when} ({e}){why}", self.action),
                None => format!("{} → {r}{when}{why}", self.action),
            },
        }
    }
}

/// "850 ms", "3 s", "4 min".
fn short_duration(d: jiff::SignedDuration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{} s", ms / 1000)
    } else if ms < 7_200_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
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
    pub fn latest_for(&self, id: &str) -> Option<&Decision> {
        let feed = self.feed.as_ref()?;
        self.latest.get(id).and_then(|i| feed.decisions.get(*i))
    }

    /// The most recent decisions, newest first.
    pub fn recent(&self, n: usize) -> Vec<&Decision> {
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

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

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
        assert_eq!(s.latest_for("aaaa1111").unwrap().result, "already gone");
        assert_eq!(s.recent(1)[0].trigger, "re-list");
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
    fn sentences_for_people() {
        let feed: Feed = serde_json::from_str(FEED).unwrap();
        let started = Some(ts("2026-12-02T13:59:57.100Z"));
        assert_eq!(
            feed.decisions[0].sentence(started),
            "killed 3 s after start by dockwarden: no [[allow]] rule matches"
        );
        assert_eq!(
            feed.decisions[1].sentence(None),
            "would have been killed (audit mode: left alone): no [[allow]] rule matches"
        );
        assert!(feed.decisions[2].sentence(None).starts_with("already gone"));
        let mut e = feed.decisions[0].clone();
        e.result = "error: 500 boom".into();
        assert!(e.sentence(None).contains("failed to kill it (500 boom)"));
        let json = serde_json::to_value(&feed).unwrap();
        assert_eq!(json["decisions"][0]["time"], "2026-12-02T14:00:00.123Z");
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
