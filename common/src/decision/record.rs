//! One decision that acted (or would have, or refused), as both binaries keep and serve it:
//! the controller's `GET /decisions`, status-api's copy of it and its page. One schema, typed
//! fields, read leniently (a field a newer controller adds or an older one lacks never
//! blanks the feed).
//!
//! Wire form (`GET /decisions` → `{"capacity":N,"decisions":[...]}`, oldest first):
//! `{"time","container","id","image","verdict","rule","reason","why","action","result",
//! "latency_ms","trigger"}`; `result` is `ok`, `error: <msg>`, `audit` (would have acted),
//! `already gone` or `refused` (by the authorization plugin).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Decision, Verdict, WhyKind};
use crate::policy::Action;

/// One decision that acted or would have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub time: Timestamp,
    #[serde(default)]
    pub container: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub image: String,
    #[serde(default = "undecided")]
    pub verdict: Verdict,
    /// 1-based `[[allow]]` rule index, or null.
    #[serde(default)]
    pub rule: Option<usize>,
    /// The decision's text ([`Decision`]'s `Display`).
    #[serde(default)]
    pub reason: String,
    /// What kind of denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<WhyKind>,
    #[serde(default, deserialize_with = "lenient_action")]
    pub action: Option<Action>,
    #[serde(default)]
    pub result: ActionResult,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub trigger: Trigger,
}

fn undecided() -> Verdict {
    Verdict::Undecided
}

fn lenient_action<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Action>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(match s.as_deref() {
        Some("kill") => Some(Action::Kill),
        Some("stop") => Some(Action::Stop),
        Some("remove") => Some(Action::Remove),
        _ => None,
    })
}

impl DecisionRecord {
    /// A record of `decision` about a container, now.
    pub fn new(
        decision: &Decision,
        container: &str,
        id: &str,
        image: &str,
        action: Option<Action>,
        result: ActionResult,
        trigger: Trigger,
    ) -> DecisionRecord {
        DecisionRecord {
            time: now_millis(),
            container: container.to_string(),
            id: id.to_string(),
            image: image.to_string(),
            verdict: decision.verdict(),
            rule: decision.rule(),
            reason: decision.to_string(),
            why: decision.denied().map(|d| d.why.kind()),
            action,
            result,
            latency_ms: None,
            trigger,
        }
    }

    /// Whether dockwarden's action took effect (the container was killed, stopped or
    /// removed by it).
    pub fn acted(&self) -> bool {
        self.result == ActionResult::Ok
    }

    /// One sentence for a person: "killed 3 s after start by dockwarden: no rule allows
    /// it". `started`: when the container started, if known.
    pub fn sentence(&self, started: Option<Timestamp>) -> String {
        let action = self.action.map_or("act on", Action::as_str);
        let done = match self.action {
            Some(Action::Kill) => "killed",
            Some(Action::Stop) => "stopped",
            Some(Action::Remove) => "removed",
            None => "acted on",
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
        match &self.result {
            ActionResult::Ok => format!("{done}{when} by dockwarden{why}"),
            ActionResult::Audit => format!("would have been {done}{when} (audit mode: left alone){why}"),
            ActionResult::AlreadyGone => format!("already gone when dockwarden went to {action}{why}"),
            ActionResult::Refused => format!("refused by dockwarden before it existed{why}"),
            ActionResult::Error(e) => format!("dockwarden failed to {action} it{when} ({e}){why}"),
            ActionResult::Other(r) => format!("{action} → {r}{when}{why}"),
            ActionResult::Unknown => format!("{action}{when}{why}"),
        }
    }
}

/// The time now, to the millisecond (what records show).
pub fn now_millis() -> Timestamp {
    let t = Timestamp::now();
    t.round(jiff::Unit::Millisecond).unwrap_or(t)
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

/// What came of an action (or a refusal).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ActionResult {
    Ok,
    Error(String),
    /// Audit mode: would have acted (or refused).
    Audit,
    /// 404 or 409: the container was already gone or down.
    AlreadyGone,
    /// The authorization plugin refused the request: the container never ran.
    Refused,
    /// A result this build does not know, kept as sent.
    #[default]
    Unknown,
    Other(String),
}

impl ActionResult {
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ActionResult::Ok => "ok".into(),
            ActionResult::Error(e) => format!("error: {e}").into(),
            ActionResult::Audit => "audit".into(),
            ActionResult::AlreadyGone => "already gone".into(),
            ActionResult::Refused => "refused".into(),
            ActionResult::Unknown => "".into(),
            ActionResult::Other(s) => s.as_str().into(),
        }
    }

    pub fn parse(s: &str) -> ActionResult {
        match s {
            "ok" => ActionResult::Ok,
            "audit" => ActionResult::Audit,
            "already gone" => ActionResult::AlreadyGone,
            "refused" => ActionResult::Refused,
            "" => ActionResult::Unknown,
            s => match s.strip_prefix("error: ") {
                Some(e) => ActionResult::Error(e.to_string()),
                None => ActionResult::Other(s.to_string()),
            },
        }
    }
}

impl Serialize for ActionResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_text())
    }
}

impl<'de> Deserialize<'de> for ActionResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ActionResult::parse(
            &Option::<String>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// The container events that prompt a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Create,
    Start,
    Restart,
    Unpause,
    Rename,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Create,
        EventKind::Start,
        EventKind::Restart,
        EventKind::Unpause,
        EventKind::Rename,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Create => "create",
            EventKind::Start => "start",
            EventKind::Restart => "restart",
            EventKind::Unpause => "unpause",
            EventKind::Rename => "rename",
        }
    }
}

/// The requests the authorization plugin judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Create,
    Start,
    Restart,
    Unpause,
    Exec,
    ServiceCreate,
    ServiceUpdate,
    PluginPull,
    PluginCreate,
    PluginEnable,
    PluginUpgrade,
    PluginSet,
    /// An authorization request that could not be read.
    Request,
    /// Everything the plugin does not judge (allowed at once).
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 14] = [
        Endpoint::Create,
        Endpoint::Start,
        Endpoint::Restart,
        Endpoint::Unpause,
        Endpoint::Exec,
        Endpoint::ServiceCreate,
        Endpoint::ServiceUpdate,
        Endpoint::PluginPull,
        Endpoint::PluginCreate,
        Endpoint::PluginEnable,
        Endpoint::PluginUpgrade,
        Endpoint::PluginSet,
        Endpoint::Request,
        Endpoint::Other,
    ];

    /// As metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Create => "create",
            Endpoint::Start => "start",
            Endpoint::Restart => "restart",
            Endpoint::Unpause => "unpause",
            Endpoint::Exec => "exec",
            Endpoint::ServiceCreate => "service_create",
            Endpoint::ServiceUpdate => "service_update",
            Endpoint::PluginPull => "plugin_pull",
            Endpoint::PluginCreate => "plugin_create",
            Endpoint::PluginEnable => "plugin_enable",
            Endpoint::PluginUpgrade => "plugin_upgrade",
            Endpoint::PluginSet => "plugin_set",
            Endpoint::Request => "request",
            Endpoint::Other => "other",
        }
    }

    /// What the refusal calls the object (`container`, `service`, `engine plugin`).
    pub fn object(self) -> &'static str {
        match self {
            Endpoint::ServiceCreate | Endpoint::ServiceUpdate => "service",
            Endpoint::PluginPull
            | Endpoint::PluginCreate
            | Endpoint::PluginEnable
            | Endpoint::PluginUpgrade
            | Endpoint::PluginSet => "engine plugin",
            _ => "container",
        }
    }
}

/// What prompted a decision; latency is measured from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// The engine's event, decided on what the event shows.
    Event(EventKind),
    /// The inspect that followed the event decided; the event is the clock.
    AfterEvent(EventKind),
    /// An inspect with no event before it (a re-list, a refresh).
    Inspect,
    /// A new policy was applied to everything running.
    NewPolicy,
    /// A failed action was retried.
    Retry,
    /// A signature verification the decision waited for ended.
    Verified,
    /// The authorization plugin, before the engine acts.
    Authz(Endpoint),
    /// A trigger this build does not know, kept as sent.
    Other(String),
    #[default]
    Unknown,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Event(e) => write!(f, "{} event", e.as_str()),
            Trigger::AfterEvent(e) => write!(f, "inspect after {} event", e.as_str()),
            Trigger::Inspect => f.write_str("inspect"),
            Trigger::NewPolicy => f.write_str("new policy"),
            Trigger::Retry => f.write_str("retry"),
            Trigger::Verified => f.write_str("signature verified"),
            Trigger::Authz(Endpoint::Request) => f.write_str("authz request"),
            Trigger::Authz(e) => write!(f, "authz {}", e.as_str()),
            Trigger::Other(s) => f.write_str(s),
            Trigger::Unknown => Ok(()),
        }
    }
}

impl Trigger {
    pub fn parse(s: &str) -> Trigger {
        let event = |name: &str| EventKind::ALL.into_iter().find(|e| e.as_str() == name);
        if let Some(e) = s.strip_suffix(" event") {
            if let Some(k) = e.strip_prefix("inspect after ").and_then(event) {
                return Trigger::AfterEvent(k);
            }
            if let Some(k) = event(e) {
                return Trigger::Event(k);
            }
        }
        if let Some(e) = s.strip_prefix("authz ")
            && let Some(ep) = Endpoint::ALL.into_iter().find(|ep| ep.as_str() == e)
        {
            return Trigger::Authz(ep);
        }
        match s {
            "inspect" => Trigger::Inspect,
            "new policy" => Trigger::NewPolicy,
            "retry" => Trigger::Retry,
            "signature verified" => Trigger::Verified,
            "" => Trigger::Unknown,
            other => Trigger::Other(other.to_string()),
        }
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Trigger::parse(
            &Option::<String>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"[
      {"time":"2026-12-02T14:00:00.123Z","container":"web","id":"aaaa1111","image":"busybox:1","verdict":"deny","rule":null,"reason":"no [[allow]] rule matches","why":"no_rule","action":"kill","result":"ok","latency_ms":12.3,"trigger":"start event"},
      {"time":"2026-12-02T14:00:05Z","container":"db","verdict":"deny","action":"kill","result":"audit","trigger":"inspect after create event","future":1},
      {"time":"2026-12-02T14:00:09Z","container":"web","id":"aaaa1111","verdict":"something new","action":"nuke","result":"error: 500 boom","trigger":"a new trigger","why":"some_new_kind"}
    ]"#;

    #[test]
    fn records_read_leniently_and_write_back_the_same_wire_form() {
        let r: Vec<DecisionRecord> = serde_json::from_str(FEED).unwrap();
        assert_eq!(r[0].trigger, Trigger::Event(EventKind::Start));
        assert_eq!(r[0].why, Some(WhyKind::NoRule));
        assert_eq!(r[1].trigger, Trigger::AfterEvent(EventKind::Create));
        assert_eq!(r[1].result, ActionResult::Audit);
        assert_eq!(r[2].verdict, Verdict::Undecided);
        assert_eq!(r[2].action, None);
        assert_eq!(r[2].result, ActionResult::Error("500 boom".into()));
        assert_eq!(r[2].trigger, Trigger::Other("a new trigger".into()));
        assert_eq!(r[2].why, Some(WhyKind::Other));
        let json = serde_json::to_value(&r[0]).unwrap();
        assert_eq!(json["time"], "2026-12-02T14:00:00.123Z");
        assert_eq!(json["result"], "ok");
        assert_eq!(json["trigger"], "start event");
        assert_eq!(json["action"], "kill");
        assert_eq!(json["verdict"], "deny");
        for t in [
            Trigger::Event(EventKind::Rename),
            Trigger::AfterEvent(EventKind::Unpause),
            Trigger::Inspect,
            Trigger::NewPolicy,
            Trigger::Retry,
            Trigger::Verified,
            Trigger::Authz(Endpoint::Create),
            Trigger::Authz(Endpoint::Request),
        ] {
            assert_eq!(Trigger::parse(&t.to_string()), t, "{t}");
        }
    }

    #[test]
    fn sentences_for_people() {
        let r: Vec<DecisionRecord> = serde_json::from_str(FEED).unwrap();
        let started = Some("2026-12-02T13:59:57.100Z".parse().unwrap());
        assert_eq!(
            r[0].sentence(started),
            "killed 3 s after start by dockwarden: no [[allow]] rule matches"
        );
        assert_eq!(
            r[1].sentence(None),
            "would have been killed (audit mode: left alone)"
        );
        let mut gone = r[0].clone();
        gone.result = ActionResult::AlreadyGone;
        assert!(
            gone.sentence(None)
                .starts_with("already gone when dockwarden went to kill")
        );
        let mut failed = r[0].clone();
        failed.result = ActionResult::Error("500 boom".into());
        assert!(failed.sentence(None).contains("failed to kill it (500 boom)"));
        let mut refused = r[0].clone();
        refused.result = ActionResult::Refused;
        assert!(refused.sentence(None).starts_with("refused by dockwarden"));
    }
}
