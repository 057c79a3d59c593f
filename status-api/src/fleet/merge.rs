//! The fleet's pure part: reading a node's answers and merging every node's into one. No
//! I/O, no clock: the poller ([`super::poll`]) feeds it bytes and states, and everything
//! here is tested with plain values.
//!
//! A node's container and decision objects are passed through as they are, byte for byte,
//! with a `"node"` member put in front: only the few fields the fleet filters, sorts, counts
//! and shows are read, leniently (a missing or oddly typed field reads as empty). So a
//! field that one version of status-api adds or retypes never breaks the fleet of another.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use common::engine::container::State;
use serde::Serialize;
use serde::de::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// What the fleet reads of one container object. Every field is lenient.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct Fields {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub image: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub state: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub health_class: String,
    /// `None`: the node runs without an allowlist.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub allowed: Option<bool>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub rule: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: String,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub spared: Option<bool>,
}

impl Fields {
    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Unknown)
    }

    /// Denied by the allowlist and live (running, paused, restarting): what the controller
    /// has not (yet) removed, or leaves alone in audit mode.
    pub fn denied_live(&self) -> bool {
        self.allowed == Some(false) && self.state().is_live()
    }
}

/// What the fleet reads of one decision object (the controller's record, opaque otherwise).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct DecisionFields {
    #[serde(default, deserialize_with = "lenient_string")]
    pub time: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub container: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub action: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub result: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub trigger: String,
}

impl DecisionFields {
    /// Sort key: the parsed time (RFC 3339 strings with and without fractions do not sort
    /// as text), else none.
    fn when(&self) -> Option<jiff::Timestamp> {
        self.time.parse().ok()
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_bool())
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_u64())
}

/// One object of a node's list: its bytes as the node sent them, and what was read of it.
#[derive(Debug, Clone)]
pub struct Raw<F> {
    pub json: Bytes,
    pub f: F,
}

/// A node's `GET /containers` answer, read.
#[derive(Debug, Default)]
pub struct Containers {
    pub items: Vec<Raw<Fields>>,
    pub synced: bool,
}

/// A node's `GET /decisions` answer, read.
#[derive(Debug, Default)]
pub struct Decisions {
    pub items: Vec<Raw<DecisionFields>>,
}

#[derive(serde::Deserialize)]
struct ContainerList<'a> {
    #[serde(borrow)]
    containers: Vec<&'a RawValue>,
    #[serde(default)]
    synced: bool,
}

#[derive(serde::Deserialize)]
struct DecisionList<'a> {
    #[serde(borrow, default)]
    decisions: Vec<&'a RawValue>,
}

/// The slice of `body` that `part` (a `&str` borrowed from it) covers.
fn slice_of(body: &Bytes, part: &str) -> Bytes {
    let start = (part.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    if start + part.len() <= body.len() {
        body.slice(start..start + part.len())
    } else {
        Bytes::copy_from_slice(part.as_bytes())
    }
}

fn read_objects<F: serde::de::DeserializeOwned>(
    body: &Bytes,
    raws: Vec<&RawValue>,
    what: &str,
) -> Result<Vec<Raw<F>>, String> {
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let text = raw.get();
            if !text.starts_with('{') {
                return Err(format!("{what} {i} is not a JSON object"));
            }
            let f = serde_json::from_str::<F>(text).map_err(|e| format!("{what} {i}: {e}"))?;
            Ok(Raw {
                json: slice_of(body, text),
                f,
            })
        })
        .collect()
}

/// Reads `{"containers":[{...}, ...], "synced": bool, ...}` (a node's `GET /containers`).
pub fn containers(body: &Bytes) -> Result<Containers, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let list: ContainerList =
        serde_json::from_str(text).map_err(|e| format!("not the containers JSON: {e}"))?;
    Ok(Containers {
        synced: list.synced,
        items: read_objects(body, list.containers, "container")?,
    })
}

/// Reads `{"decisions":[{...}, ...], ...}` (a node's `GET /decisions`).
pub fn decisions(body: &Bytes) -> Result<Decisions, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let list: DecisionList =
        serde_json::from_str(text).map_err(|e| format!("not the decisions JSON: {e}"))?;
    Ok(Decisions {
        items: read_objects(body, list.decisions, "decision")?,
    })
}

/// The object `{...}` with `"node":"<node>"` put first: `{"node":"n1","id":...}`.
pub fn with_node(object: &[u8], node: &str) -> Bytes {
    let quoted = serde_json::to_string(node).unwrap_or_else(|_| "\"\"".into());
    let inner = object.strip_prefix(b"{").unwrap_or(object);
    let empty = inner.trim_ascii_start().starts_with(b"}");
    let mut out = BytesMut::with_capacity(object.len() + quoted.len() + 10);
    out.put_slice(b"{\"node\":");
    out.put_slice(quoted.as_bytes());
    if !empty {
        out.put_u8(b',');
    }
    out.put_slice(inner);
    out.freeze()
}

/// One node's answers as the merge takes them.
#[derive(Debug, Clone)]
pub struct NodeInput {
    pub view: NodeView,
    /// Its containers, when it answered; left out of the merged list while it is
    /// unreachable (a last-known list would pass for the present).
    pub containers: Option<Arc<Containers>>,
    pub decisions: Option<Arc<Decisions>>,
}

/// A node as `GET /fleet/nodes` lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeView {
    /// Its name (its own answer), or its address while it never answered.
    pub node: String,
    /// Where it was asked (`host:port`); `local` for this node (no network hop).
    pub address: String,
    pub local: bool,
    pub reachable: bool,
    /// The figures below are its last answer's (also while it is unreachable).
    pub synced: Option<bool>,
    pub mode: Option<String>,
    pub action: Option<String>,
    pub policy_generation: Option<u64>,
    pub policy_sha256: Option<String>,
    pub policy_refused: Option<bool>,
    /// Its policy differs from the fleet's majority (or there is no majority).
    pub drift: bool,
    pub containers: Option<usize>,
    pub running: Option<usize>,
    pub denied_running: Option<usize>,
    /// Whether its controller's decisions can be read: `reachable`, `unreachable`, `not configured`.
    pub controller: Option<String>,
    /// When it last answered (RFC 3339, seconds).
    pub last_answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which policy digest most nodes enforce, and which nodes differ. Every node that ever
/// answered has a vote (an unreachable one with its last answer's policy: a node that goes
/// down does not turn the majority), but only nodes whose policy is known now are flagged
/// (reachable ones; this node always). A node without a policy counts as a policy of its
/// own. With a tie there is no majority and every flagged node drifts.
pub fn drift(nodes: &[NodeView]) -> (Option<Option<String>>, Vec<bool>) {
    let counted = |n: &NodeView| n.reachable || n.local;
    let votes = |n: &NodeView| counted(n) || n.synced.is_some();
    let mut tally: HashMap<&Option<String>, usize> = HashMap::new();
    for n in nodes.iter().filter(|n| votes(n)) {
        *tally.entry(&n.policy_sha256).or_default() += 1;
    }
    let mut best: Vec<(&Option<String>, usize)> = tally.into_iter().collect();
    best.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let majority = match best.as_slice() {
        [] => None,
        [(d, _)] => Some((*d).clone()),
        [(d, a), (_, b), ..] if a > b => Some((*d).clone()),
        _ => None,
    };
    let several = best.len() > 1;
    let flags = nodes
        .iter()
        .map(|n| {
            counted(n)
                && match &majority {
                    Some(m) => &n.policy_sha256 != m,
                    None => several,
                }
        })
        .collect();
    (majority, flags)
}

/// Everything merged, rendered as JSON once.
#[derive(Debug, Default)]
pub struct Merged {
    /// Sorted by name; `drift` set.
    pub nodes: Vec<NodeView>,
    /// The digest most nodes enforce (`Some(None)`: most run without a policy).
    pub majority: Option<Option<String>>,
    /// Every reachable node's containers, `"node"` added, sorted by node then name.
    pub containers: Vec<Item>,
    /// Every node's decisions, `"node"` added, oldest first, the newest [`MAX_DECISIONS`].
    pub decisions: Vec<DecisionItem>,
    /// Nodes whose decisions cannot be read, and why.
    pub decisions_unavailable: Vec<(String, String)>,
}

/// One container of the merged list.
#[derive(Debug, Clone)]
pub struct Item {
    pub node: Arc<str>,
    pub json: Bytes,
    pub f: Fields,
}

/// One decision of the merged list.
#[derive(Debug, Clone)]
pub struct DecisionItem {
    pub node: Arc<str>,
    pub json: Bytes,
    pub f: DecisionFields,
}

/// The merged decisions keep the newest this many (every node keeps its own 1,000).
pub const MAX_DECISIONS: usize = 1000;

/// Merges every node's answers.
pub fn merge(mut inputs: Vec<NodeInput>) -> Merged {
    inputs.sort_by(|a, b| {
        a.view
            .node
            .cmp(&b.view.node)
            .then(a.view.address.cmp(&b.view.address))
    });
    let views: Vec<NodeView> = inputs.iter().map(|i| i.view.clone()).collect();
    let (majority, flags) = drift(&views);
    let mut containers = Vec::new();
    let mut decisions = Vec::new();
    let mut decisions_unavailable = Vec::new();
    let mut nodes = Vec::with_capacity(inputs.len());
    for (input, drifted) in inputs.into_iter().zip(flags) {
        let mut view = input.view;
        view.drift = drifted;
        let node: Arc<str> = Arc::from(view.node.as_str());
        if view.reachable
            && let Some(list) = &input.containers
        {
            let mut mine: Vec<Item> = list
                .items
                .iter()
                .map(|r| Item {
                    node: node.clone(),
                    json: with_node(&r.json, &node),
                    f: r.f.clone(),
                })
                .collect();
            mine.sort_by(|a, b| a.f.name.cmp(&b.f.name).then_with(|| a.f.id.cmp(&b.f.id)));
            containers.extend(mine);
        }
        match &input.decisions {
            Some(list) => decisions.extend(list.items.iter().map(|r| DecisionItem {
                node: node.clone(),
                json: with_node(&r.json, &node),
                f: r.f.clone(),
            })),
            None => {
                if let Some(why) = view.controller.as_deref().filter(|c| *c != "reachable") {
                    decisions_unavailable.push((view.node.clone(), why.to_string()));
                }
            }
        }
        nodes.push(view);
    }
    // Oldest first, as each controller serves them; a time that does not parse sorts first.
    decisions.sort_by_cached_key(|d| (d.f.when(), d.node.clone()));
    if decisions.len() > MAX_DECISIONS {
        decisions.drain(..decisions.len() - MAX_DECISIONS);
    }
    Merged {
        nodes,
        majority,
        containers,
        decisions,
        decisions_unavailable,
    }
}

/// `{"<key>":[o1,o2,...],"count":N` + `tail` + `}` from objects already serialised.
pub fn list_json<'a>(key: &str, objects: impl Iterator<Item = &'a Bytes> + Clone, tail: &[u8]) -> Bytes {
    let (count, len) = objects
        .clone()
        .fold((0usize, 0usize), |(n, l), o| (n + 1, l + o.len() + 1));
    let mut out = BytesMut::with_capacity(len + tail.len() + 64);
    out.put_slice(format!("{{\"{key}\":[").as_bytes());
    for (i, o) in objects.enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(o);
    }
    out.put_slice(format!("],\"count\":{count}").as_bytes());
    out.put_slice(tail);
    out.put_u8(b'}');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(node: &str, sha: Option<&str>, reachable: bool) -> NodeView {
        NodeView {
            node: node.into(),
            address: format!("{node}:8080"),
            reachable,
            policy_sha256: sha.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn containers_pass_through_with_their_node() {
        let body = Bytes::from_static(
            br#"{"containers":[{"id":"a1","name":"web","image":"nginx:1","state":"running","allowed":false,"future":{"x":[1,2]}},{"id":"b2","name":"db","state":"exited","allowed":true,"rule":2}],"count":2,"synced":true}"#,
        );
        let c = containers(&body).unwrap();
        assert!(c.synced);
        assert_eq!(c.items.len(), 2);
        assert_eq!(c.items[0].f.name, "web");
        assert!(c.items[0].f.denied_live());
        assert!(!c.items[1].f.denied_live());
        assert_eq!(c.items[1].f.rule, Some(2));
        let tagged = with_node(&c.items[0].json, "n\"1");
        let v: serde_json::Value = serde_json::from_slice(&tagged).unwrap();
        assert_eq!(v["node"], "n\"1");
        assert_eq!(v["future"]["x"][1], 2, "unknown fields pass through");
        assert_eq!(&tagged[..], &br#"{"node":"n\"1","id":"a1","name":"web","image":"nginx:1","state":"running","allowed":false,"future":{"x":[1,2]}}"#[..]);
        assert_eq!(&with_node(b"{ }", "x")[..], &br#"{"node":"x" }"#[..]);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&with_node(b"{ }", "x")).unwrap()["node"],
            "x"
        );
    }

    #[test]
    fn odd_fields_read_as_empty_and_bad_answers_are_errors() {
        let body = Bytes::from_static(br#"{"containers":[{"name":7,"state":null,"allowed":"yes"}]}"#);
        let c = containers(&body).unwrap();
        assert_eq!(c.items[0].f.name, "7");
        assert_eq!(c.items[0].f.state(), State::Unknown);
        assert_eq!(c.items[0].f.allowed, None);
        assert!(containers(&Bytes::from_static(b"<html>")).is_err());
        assert!(containers(&Bytes::from_static(br#"{"containers":[1]}"#)).is_err());
        assert!(containers(&Bytes::from_static(br#"{"nope":[]}"#)).is_err());
        assert!(
            decisions(&Bytes::from_static(br#"{"capacity":1000}"#))
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[test]
    fn drift_is_a_difference_from_the_majority() {
        let nodes = [
            view("a", Some("x"), true),
            view("b", Some("x"), true),
            view("c", Some("y"), true),
            view("d", Some("y"), false),
            view("e", Some("z"), false),
        ];
        let (majority, flags) = drift(&nodes);
        assert_eq!(majority, Some(Some("x".into())));
        assert_eq!(
            flags,
            [false, false, true, false, false],
            "never-answered nodes do not count"
        );
        // A node that answered before and is down now keeps its vote, but is not flagged.
        let mut down = view("b", Some("x"), false);
        down.synced = Some(true);
        let (majority, flags) = drift(&[view("a", Some("x"), true), down, view("c", Some("y"), true)]);
        assert_eq!(
            (majority, flags),
            (Some(Some("x".into())), vec![false, false, true])
        );
        // A tie: no majority, every counted node drifts.
        let (majority, flags) = drift(&nodes[1..3]);
        assert_eq!((majority, flags), (None, vec![true, true]));
        // One node without a policy among policies.
        let (majority, flags) = drift(&[
            view("a", Some("x"), true),
            view("b", None, true),
            view("c", Some("x"), true),
        ]);
        assert_eq!(
            (majority, flags),
            (Some(Some("x".into())), vec![false, true, false])
        );
        // All the same, or alone: no drift.
        assert_eq!(drift(&[view("a", None, true)]).1, [false]);
        assert_eq!(drift(&[]).0, None);
        let mut local = view("l", Some("q"), false);
        local.local = true;
        assert_eq!(drift(&[local]).1, [false], "this node always counts");
    }

    #[test]
    fn merge_sorts_tags_and_leaves_out_what_is_not_known_now() {
        let list = |body: &'static str| {
            Some(Arc::new(
                containers(&Bytes::from_static(body.as_bytes())).unwrap(),
            ))
        };
        let feed =
            |body: &'static str| Some(Arc::new(decisions(&Bytes::from_static(body.as_bytes())).unwrap()));
        let mut b = view("node-b", Some("x"), true);
        b.controller = Some("reachable".into());
        let mut a = view("node-a", Some("x"), true);
        a.controller = Some("not configured".into());
        let c = view("node-c", Some("y"), false);
        let merged = merge(vec![
            NodeInput {
                view: b,
                containers: list(r#"{"containers":[{"name":"z"},{"name":"m"}],"synced":true}"#),
                decisions: feed(
                    r#"{"decisions":[{"time":"2026-12-02T14:00:00Z","container":"z"},{"time":"2026-12-02T14:00:00.5Z","container":"m"}]}"#,
                ),
            },
            NodeInput {
                view: a,
                containers: list(r#"{"containers":[{"name":"k"}],"synced":true}"#),
                decisions: None,
            },
            NodeInput {
                view: c,
                containers: list(r#"{"containers":[{"name":"stale"}],"synced":true}"#),
                decisions: feed(r#"{"decisions":[{"time":"2026-12-02T13:59:59.9Z","container":"old"}]}"#),
            },
        ]);
        let names: Vec<(&str, &str)> = merged
            .containers
            .iter()
            .map(|i| (&*i.node, i.f.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [("node-a", "k"), ("node-b", "m"), ("node-b", "z")],
            "the unreachable node's list is left out"
        );
        assert_eq!(
            merged.nodes.iter().map(|n| n.drift).collect::<Vec<_>>(),
            [false, false, false]
        );
        let order: Vec<&str> = merged.decisions.iter().map(|d| d.f.container.as_str()).collect();
        assert_eq!(
            order,
            ["old", "z", "m"],
            "by time, fractions included; a node's last known decisions stay"
        );
        assert_eq!(
            merged.decisions_unavailable,
            [("node-a".to_string(), "not configured".to_string())]
        );
        let body = list_json(
            "containers",
            merged.containers.iter().map(|i| &i.json),
            b",\"x\":1",
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["count"], 3);
        assert_eq!(v["x"], 1);
        assert_eq!(v["containers"][1]["node"], "node-b");
    }
}
