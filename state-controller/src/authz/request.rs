//! What an authorization request asks, read exactly the way the engine will read it (moby's
//! router and its Go `encoding/json` decoding of request bodies), so that a request built
//! to look harmless to a careless plugin is judged as what it does:
//! - the path is percent-decoded and cleaned, with or without a `/vX.Y` prefix;
//! - query values are the **first** of their name (Go's `FormValue`): the create name, a
//!   plugin's `remote`, a service update's `rollback`;
//! - body keys match struct fields case-insensitively with Go's folding (`ſ` is `s`, the
//!   Kelvin sign is `k`), at every depth, in document order, a later duplicate decoding into
//!   what the earlier one left (see [`gojson`]); `null` leaves a string or bool unchanged and
//!   clears a slice, map or pointer; a second `Labels` object merges into the first.
//!
//! Bodies read here: `containers/create` ([`create_body`]: identity, user, and the host
//! power of `HostConfig`, including the top-level `HostConfig` fields engines before 27
//! still read), `exec` ([`exec_body`]), a `start` with a body on API versions before 1.24
//! ([`start_body`]: engines before 26 apply it as the container's new `HostConfig`), and
//! Swarm service specs ([`service_body`]). Engine plugin routes carry the plugin reference
//! to judge ([`Route::EnginePlugin`]).
//!
//! Anything this reader cannot be sure the engine reads the same way is an error, and the
//! caller denies.

mod gojson;
mod service;

use std::collections::BTreeMap;
use std::fmt;

use common::power::{HostConfigSpec, Power, User};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use gojson::{GoDecode, GoFields, InPlace, StructVisitor, decode_body, go_struct};
pub use service::{ServiceBody, ServiceContainer, service_body};

/// The requests dockwarden judges; everything else is allowed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /containers/create`, with the name as the engine will read it (`None` when the
    /// engine picks a random one). Its body: [`create_body`].
    Create {
        name: Option<String>,
    },
    /// `POST /containers/{id}/start`, `/restart`, `/unpause`: `what` is which.
    /// `host_config_body`: a `start` on an API version before 1.24, whose body (when it has
    /// one) engines before 26 apply as the container's new `HostConfig` ([`start_body`]).
    Run {
        container: String,
        what: &'static str,
        host_config_body: bool,
    },
    /// `POST /containers/{id}/exec`. Its body: [`exec_body`].
    Exec {
        container: String,
    },
    /// `POST /services/create`. Its body: [`service_body`].
    ServiceCreate,
    /// `POST /services/{id}/update`, whose body is the whole new spec ([`service_body`]).
    /// `rollback`: `?rollback=previous`, where the engine runs the service's previous spec
    /// instead of the body.
    ServiceUpdate {
        service: String,
        rollback: bool,
    },
    /// A managed engine plugin installed, enabled, upgraded or configured: `reference` is
    /// what to judge ([`common::policy::Policy::judge_engine_plugin`]): the `remote` pulled
    /// (`pull`, `upgrade`), or the plugin's local name (`create`, `enable`, `set`; a local
    /// name may be an alias chosen at install: look the plugin up for its remote).
    EnginePlugin {
        action: PluginAction,
        reference: String,
    },
    Other,
}

/// What is done to an engine plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginAction {
    /// `POST /plugins/pull?remote=...` (`docker plugin install`).
    Pull,
    /// `POST /plugins/create?name=...`: a plugin built from an uploaded directory (its name
    /// says nothing of its content).
    Create,
    /// `POST /plugins/{name}/enable`.
    Enable,
    /// `POST /plugins/{name}/upgrade?remote=...`.
    Upgrade,
    /// `POST /plugins/{name}/set`: settings, which can point a plugin's mounts and devices
    /// at other host paths.
    Set,
}

impl PluginAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginAction::Pull => "plugin_pull",
            PluginAction::Create => "plugin_create",
            PluginAction::Enable => "plugin_enable",
            PluginAction::Upgrade => "plugin_upgrade",
            PluginAction::Set => "plugin_set",
        }
    }
}

impl Route {
    /// The endpoint's name for metrics and logs.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Route::Create { .. } => "create",
            Route::Run { what, .. } => what,
            Route::Exec { .. } => "exec",
            Route::ServiceCreate => "service_create",
            Route::ServiceUpdate { .. } => "service_update",
            Route::EnginePlugin { action, .. } => action.as_str(),
            Route::Other => "other",
        }
    }
}

/// Why a request cannot be read the way the engine will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads method and request URI into a [`Route`]. Only POSTs change anything; the method is
/// compared case-insensitively (stricter than the engine). Everything else is ruled out
/// before any decoding: this runs on every API call of the host.
pub fn route(method: &str, uri: &str) -> Result<Route, Unreadable> {
    if !method.eq_ignore_ascii_case("POST") {
        return Ok(Route::Other);
    }
    let (raw_path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, q),
        None => (uri, ""),
    };
    // Fast path: a path that names none of the judged resources, and escapes nothing.
    if !raw_path.contains('%')
        && !raw_path.contains("containers")
        && !raw_path.contains("services")
        && !raw_path.contains("plugins")
    {
        return Ok(Route::Other);
    }
    // Like Go's `path.Clean`: the engine's router redirects unclean paths; judging the
    // clean one is stricter.
    let path = common::power::path::clean(
        &percent_decode(raw_path)
            .ok_or_else(|| Unreadable(format!("bad percent-encoding in {raw_path:?}")))?,
    );
    let (version, path) = split_version(&path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let r = match segments.as_slice() {
        ["containers", "create"] => Route::Create {
            name: create_name(query)?,
        },
        ["containers", id, action] if !id.is_empty() => {
            let run = |what| Route::Run {
                container: id.to_string(),
                what,
                host_config_body: what == "start" && version.is_some_and(|v| version_below(v, 1, 24)),
            };
            match *action {
                "start" => run("start"),
                "restart" => run("restart"),
                "unpause" => run("unpause"),
                "exec" => Route::Exec {
                    container: id.to_string(),
                },
                _ => Route::Other,
            }
        }
        ["services", "create"] => Route::ServiceCreate,
        ["services", id, "update"] if !id.is_empty() => Route::ServiceUpdate {
            service: id.to_string(),
            rollback: query_first(query, "rollback")?.as_deref() == Some("previous"),
        },
        ["plugins", "pull"] => Route::EnginePlugin {
            action: PluginAction::Pull,
            reference: query_required(query, "remote")?,
        },
        ["plugins", "create"] => Route::EnginePlugin {
            action: PluginAction::Create,
            reference: query_required(query, "name")?,
        },
        // `/plugins/{name:.*}/<action>`: a plugin's name may hold slashes.
        ["plugins", name @ .., action] if !name.is_empty() => {
            let name = name.join("/");
            match *action {
                "enable" => Route::EnginePlugin {
                    action: PluginAction::Enable,
                    reference: name,
                },
                "set" => Route::EnginePlugin {
                    action: PluginAction::Set,
                    reference: name,
                },
                "upgrade" => Route::EnginePlugin {
                    action: PluginAction::Upgrade,
                    reference: query_required(query, "remote")?,
                },
                _ => Route::Other,
            }
        }
        _ => Route::Other,
    };
    Ok(r)
}

/// `/v1.41/containers/...` → (`Some("1.41")`, `/containers/...`) (the engine routes both).
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let (version, after) = rest.split_at(end);
        if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return (Some(version), after);
        }
    }
    (None, path)
}

/// Whether API `version` is before `major.minor`, compared as moby's `versions.LessThan`
/// does (numeric components, a missing or unreadable one is 0).
fn version_below(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v < (major, minor)
}

/// Percent-decodes (no `+` handling: that is for query strings). `None` on a bad escape.
fn percent_decode(s: &str) -> Option<String> {
    decode_bytes(s, false)
}

fn decode_bytes(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(v);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The first value of `key` in a query, as Go's `url.ParseQuery` and `Form.Get` read it. A
/// query Go would refuse (a `;`, a bad escape) is unreadable: the engine answers 400, and
/// the plugin denies.
fn query_first(query: &str, key: &str) -> Result<Option<String>, Unreadable> {
    let mut first = None;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(';') {
            return Err(Unreadable("a ';' in the query (the engine refuses it)".into()));
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k =
            decode_bytes(k, true).ok_or_else(|| Unreadable(format!("bad escape in the query key {k:?}")))?;
        let v = decode_bytes(v, true)
            .ok_or_else(|| Unreadable(format!("bad escape in the query value {v:?}")))?;
        if k == key && first.is_none() {
            first = Some(v);
        }
    }
    Ok(first)
}

/// A query value the engine needs (it refuses the request without it).
fn query_required(query: &str, key: &str) -> Result<String, Unreadable> {
    query_first(query, key)?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Unreadable(format!("no {key} in the query (the engine refuses it)")))
}

/// The create name as the engine reads it: the first `name` value of the query, without a
/// leading `/`.
fn create_name(query: &str) -> Result<Option<String>, Unreadable> {
    Ok(query_first(query, "name")?
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty()))
}

/// What the create body says that the policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateBody {
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `User`; empty when the body sets none (the image's user then decides).
    pub user: String,
    /// `HostConfig` as every engine reads it when the body has one (absent or `null`: the
    /// zero value).
    pub host_config: HostConfigSpec,
    /// When the body has no `HostConfig` (or `null`), the `HostConfig` fields written at the
    /// top level of the body, which engines before 27 read instead (`None` when there are
    /// none, or when `HostConfig` is there).
    pub legacy_host_config: Option<HostConfigSpec>,
}

impl CreateBody {
    /// The host power the container asks, on any engine: what `HostConfig` asks, and what
    /// the top-level fields ask where older engines read them (both readings count, so no
    /// engine grants more than was judged). With no `User`, the image's user is a
    /// [`common::power::Reference::Image`] to resolve (under `restricted`).
    pub fn power(&self) -> Power {
        let user = if self.user.is_empty() {
            User::FromImage(self.image.clone())
        } else {
            User::Set(self.user.clone())
        };
        let mut p = Power::from_host_config(&self.host_config, user.clone());
        if let Some(legacy) = &self.legacy_host_config {
            p.merge(Power::from_host_config(legacy, user));
        }
        p
    }
}

/// A create body (and a legacy start body) as the engine's `ContainerConfigWrapper` has it:
/// the container `Config` fields and `HostConfig` at the top level, plus, for engines
/// before 27, every `HostConfig` field promoted to the top level too.
#[derive(Default)]
struct Wrapper {
    image: String,
    labels: BTreeMap<String, String>,
    user: String,
    inner: Option<HostConfigSpec>,
    top: HostConfigSpec,
}

impl GoFields for Wrapper {
    fn decode_field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        if go_fold_eq(key, "Image") {
            map.next_value_seed(InPlace(&mut self.image))?;
        } else if go_fold_eq(key, "Labels") {
            map.next_value_seed(InPlace(&mut self.labels))?;
        } else if go_fold_eq(key, "User") {
            map.next_value_seed(InPlace(&mut self.user))?;
        } else if go_fold_eq(key, "HostConfig") {
            map.next_value_seed(InPlace(&mut self.inner))?;
        } else {
            return self.top.decode_field(key, map);
        }
        Ok(true)
    }
}

impl GoDecode for Wrapper {
    fn decode<'de, D: de::Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(StructVisitor {
            target: self,
            what: "a JSON object",
        })
    }
}

/// Decodes a create body the way the engine's Go decoder does (see the module doc). Only
/// the first JSON value is what the engine reads; content after it is refused here.
pub fn create_body(body: &[u8]) -> Result<CreateBody, Unreadable> {
    let mut w = Wrapper::default();
    decode_body(body, &mut w).map_err(Unreadable)?;
    if w.image.is_empty() {
        return Err(Unreadable("no image in the body".into()));
    }
    let legacy = match &w.inner {
        None if w.top != HostConfigSpec::default() => Some(w.top),
        _ => None,
    };
    Ok(CreateBody {
        image: w.image,
        labels: w.labels,
        user: w.user,
        host_config: w.inner.unwrap_or_default(),
        legacy_host_config: legacy,
    })
}

/// What the power of a `start` body is (API before 1.24, engines before 26): the engine
/// reads it as a create body and applies its `HostConfig` (or, without one, the top-level
/// fields) as the container's new `HostConfig`, keeping the container's user. Judge it
/// together with the container as it exists: both are what runs.
pub fn start_body(body: &[u8]) -> Result<Power, Unreadable> {
    let mut w = Wrapper::default();
    decode_body(body, &mut w).map_err(Unreadable)?;
    let spec = w.inner.unwrap_or(w.top);
    Ok(Power::from_host_config(&spec, User::NotAsked))
}

/// What an exec body asks (`POST /containers/{id}/exec`, moby `ExecCreateRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecBody {
    pub privileged: bool,
    /// Empty: the container's user.
    pub user: String,
}

go_struct!(ExecBody, "an exec object", |e| {
    "Privileged" => InPlace(&mut e.privileged),
    "User" => InPlace(&mut e.user),
});

impl ExecBody {
    /// The host power the exec asks ([`Power::from_exec`]).
    pub fn power(&self) -> Power {
        Power::from_exec(self.privileged, &self.user)
    }
}

/// Decodes an exec body as the engine does.
pub fn exec_body(body: &[u8]) -> Result<ExecBody, Unreadable> {
    let mut e = ExecBody::default();
    decode_body(body, &mut e).map_err(Unreadable)?;
    Ok(e)
}

/// Go's case-insensitive field match: ASCII letters fold, and so do the two non-ASCII
/// characters that fold onto ASCII letters (`ſ` onto `s`, the Kelvin sign onto `k`).
pub fn go_fold_eq(key: &str, field: &str) -> bool {
    let fold = |c: char| match c {
        '\u{017F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    key.chars().map(fold).eq(field.chars().map(fold))
}

/// The authorization request dockerd sends (moby `pkg/authorization.Request`). Names are
/// matched case-insensitively here, like the engine's own decoder would.
#[derive(Debug, Default)]
pub struct AuthzRequest {
    pub user: String,
    pub method: String,
    pub uri: String,
    /// `RequestBody`: base64, still encoded; decoded only for the requests judged.
    pub body_b64: Option<String>,
    pub headers: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for AuthzRequest {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AuthzRequest;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an authorization request object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AuthzRequest, A::Error> {
                let mut r = AuthzRequest::default();
                while let Some(key) = map.next_key::<String>()? {
                    let k = key.to_ascii_lowercase();
                    match k.as_str() {
                        "user" => r.user = map.next_value::<Option<String>>()?.unwrap_or_default(),
                        "requestmethod" => r.method = map.next_value::<Option<String>>()?.unwrap_or_default(),
                        "requesturi" => r.uri = map.next_value::<Option<String>>()?.unwrap_or_default(),
                        "requestbody" => r.body_b64 = map.next_value::<Option<String>>()?,
                        "requestheaders" => {
                            r.headers = map
                                .next_value::<Option<BTreeMap<String, String>>>()?
                                .unwrap_or_default()
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

impl AuthzRequest {
    /// The request's `Content-Type`, as the header map has it (any case of the name).
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    /// The body bytes; an error when absent or not base64.
    pub fn body(&self) -> Result<Vec<u8>, Unreadable> {
        use base64::Engine as _;
        let b64 = self
            .body_b64
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Unreadable("the engine forwarded no body (chunked, over 1 MiB, or not plain application/json): it cannot be judged".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| Unreadable(format!("the body is not base64: {e}")))
    }
}

#[cfg(test)]
mod power_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: Option<&str>) -> Route {
        Route::Create {
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn routes_as_the_engine_reads_them() {
        assert_eq!(
            route("POST", "/containers/create?name=x").unwrap(),
            create(Some("x"))
        );
        assert_eq!(route("POST", "/v1.41/containers/create").unwrap(), create(None));
        assert_eq!(route("post", "/v1.41/containers/create").unwrap(), create(None));
        assert_eq!(
            route("POST", "/containers/cr%65ate?name=%2Fweb").unwrap(),
            create(Some("web"))
        );
        assert_eq!(
            route("POST", "/v1.41//containers/./create").unwrap(),
            create(None)
        );
        assert_eq!(route("POST", "/containers%2Fcreate").unwrap(), create(None));
        assert_eq!(
            route("POST", "/containers/create?name=ok-1&name=evil").unwrap(),
            create(Some("ok-1"))
        );
        assert_eq!(
            route("POST", "/containers/create?name=a+b").unwrap(),
            create(Some("a b"))
        );
        assert!(route("POST", "/containers/create?name=x;name=y").is_err());
        assert!(route("POST", "/containers/create%zz").is_err());
        assert_eq!(
            route("POST", "/v1.24/containers/abc/start").unwrap(),
            Route::Run {
                container: "abc".into(),
                what: "start",
                host_config_body: false,
            }
        );
        assert_eq!(
            route("POST", "/containers/abc/exec").unwrap(),
            Route::Exec {
                container: "abc".into()
            }
        );
        assert_eq!(route("GET", "/containers/json").unwrap(), Route::Other);
        assert_eq!(route("POST", "/containers/abc/kill").unwrap(), Route::Other);
        assert_eq!(route("POST", "/images/create?fromImage=x").unwrap(), Route::Other);
        assert_eq!(
            route("POST", "/vx/containers/create").unwrap(),
            Route::Other,
            "not a version: no route"
        );
    }

    fn body(s: &str) -> Result<CreateBody, Unreadable> {
        create_body(s.as_bytes())
    }

    #[test]
    fn create_bodies_decode_as_go_does() {
        let b = body(r#"{"Image":"nginx","Labels":{"a":"1"}}"#).unwrap();
        assert_eq!(
            (b.image.as_str(), b.labels.get("a").map(String::as_str)),
            ("nginx", Some("1"))
        );
        // Lower-case keys match.
        assert_eq!(body(r#"{"image":"x"}"#).unwrap().image, "x");
        // The last duplicate wins, plain or case-folded.
        assert_eq!(body(r#"{"Image":"ok","Image":"evil"}"#).unwrap().image, "evil");
        assert_eq!(body(r#"{"Image":"ok","iMAGE":"evil"}"#).unwrap().image, "evil");
        // Go's folding beyond ASCII: the long s and the Kelvin sign.
        let b =
            body("{\"Image\":\"x\",\"Labels\":{\"t\":\"ok\"},\"Label\u{017F}\":{\"t\":\"evil\"}}").unwrap();
        assert_eq!(b.labels["t"], "evil");
        assert!(go_fold_eq("\u{212A}ey", "Key"));
        assert!(!go_fold_eq("Imagé", "Image"));
        // null leaves a string unchanged, clears a map; a second Labels merges.
        assert_eq!(body(r#"{"Image":"ok","Image":null}"#).unwrap().image, "ok");
        let b = body(r#"{"Image":"x","Labels":{"a":"1"},"labels":{"b":"2","a":"3"}}"#).unwrap();
        assert_eq!(
            b.labels,
            BTreeMap::from([("a".into(), "3".into()), ("b".into(), "2".into())])
        );
        assert!(
            body(r#"{"Image":"x","Labels":{"a":"1"},"Labels":null}"#)
                .unwrap()
                .labels
                .is_empty()
        );
        assert_eq!(
            body(r#"{"Image":"x","Labels":{"a":null}}"#).unwrap().labels["a"],
            ""
        );
        // What the engine would refuse, or read differently, is refused.
        assert!(body(r#"{"Image":5}"#).is_err());
        assert!(body(r#"{"Image":"x","Labels":{"a":1}}"#).is_err());
        assert!(body(r#"{"Image":"x"} {"Image":"y"}"#).is_err());
        assert!(body(r#"["Image"]"#).is_err());
        assert!(body(r#"{"Labels":{}}"#).is_err(), "no image");
        assert!(body("").is_err());
        assert!(create_body(b"{\"Image\":\"\xff\"}").is_err());
        // Other fields are skipped whatever they hold.
        assert_eq!(
            body(r#"{"HostConfig":{"Isolation":"Default"},"Image":"x","Cmd":null}"#)
                .unwrap()
                .image,
            "x"
        );
    }

    #[test]
    fn authorization_requests_decode_whatever_the_key_case() {
        let r: AuthzRequest = serde_json::from_str(
            r#"{"User":"u","RequestMethod":"POST","RequestUri":"/containers/create","RequestURI":"/x",
                "RequestBody":"eyJJbWFnZSI6IngifQ==","RequestHeaders":{"Content-Type":"application/json"}}"#,
        )
        .unwrap();
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("POST", "/x"));
        assert_eq!(r.content_type(), Some("application/json"));
        assert_eq!(r.body().unwrap(), br#"{"Image":"x"}"#);
        let empty: AuthzRequest = serde_json::from_str("{}").unwrap();
        assert!(empty.body().is_err());
    }
}
