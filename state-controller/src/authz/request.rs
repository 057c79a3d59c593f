//! What an authorization request asks, read exactly the way the engine will read it (moby's
//! router and its Go `encoding/json` decoding of the create body), so that a request built
//! to look harmless to a careless plugin is judged as what it does:
//! - the path is percent-decoded and cleaned, with or without a `/vX.Y` prefix;
//! - the create name is the **first** `name` query value (Go's `FormValue`);
//! - body keys match struct fields case-insensitively with Go's folding (`ſ` is `s`, the
//!   Kelvin sign is `k`), in document order, the last one winning; `null` leaves a string
//!   unchanged and clears a map; a second `Labels` object merges into the first.
//!
//! Anything this reader cannot be sure the engine reads the same way is an error, and the
//! caller denies.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// The requests dockwarden judges; everything else is allowed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /containers/create`, with the name as the engine will read it (`None` when the
    /// engine picks a random one).
    Create {
        name: Option<String>,
    },
    /// `POST /containers/{id}/start`, `/restart`, `/unpause`: `what` is which.
    Run {
        container: String,
        what: &'static str,
    },
    /// `POST /containers/{id}/exec`.
    Exec {
        container: String,
    },
    Other,
}

impl Route {
    /// The endpoint's name for metrics and logs.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Route::Create { .. } => "create",
            Route::Run { what, .. } => what,
            Route::Exec { .. } => "exec",
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
/// compared case-insensitively (stricter than the engine).
pub fn route(method: &str, uri: &str) -> Result<Route, Unreadable> {
    if !method.eq_ignore_ascii_case("POST") {
        return Ok(Route::Other);
    }
    let (raw_path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    // Fast path: nothing under /containers is cheap to rule out.
    if !raw_path.contains("containers") && !raw_path.contains('%') {
        return Ok(Route::Other);
    }
    let path = clean(
        &percent_decode(raw_path)
            .ok_or_else(|| Unreadable(format!("bad percent-encoding in {raw_path:?}")))?,
    );
    let path = strip_version(&path);
    let mut seg = path.trim_start_matches('/').split('/');
    let r = match (seg.next(), seg.next(), seg.next(), seg.next()) {
        (Some("containers"), Some("create"), None, _) => Route::Create {
            name: create_name(query.unwrap_or(""))?,
        },
        (Some("containers"), Some(id), Some(action), None) if !id.is_empty() => match action {
            "start" => Route::Run {
                container: id.to_string(),
                what: "start",
            },
            "restart" => Route::Run {
                container: id.to_string(),
                what: "restart",
            },
            "unpause" => Route::Run {
                container: id.to_string(),
                what: "unpause",
            },
            "exec" => Route::Exec {
                container: id.to_string(),
            },
            _ => Route::Other,
        },
        _ => Route::Other,
    };
    Ok(r)
}

/// `/v1.41/containers/...` → `/containers/...` (the engine routes both).
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let version = &rest[..end];
        if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return &rest[end..];
        }
    }
    path
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

/// Like Go's `path.Clean` on an absolute path: no empty, `.` or `..` segments, no trailing
/// slash (the engine's router redirects unclean paths; judging the clean one is stricter).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The create name as the engine reads it: the first `name` value of the query (Go's
/// `url.ParseQuery` + `FormValue`), without a leading `/`. A query Go would refuse (a `;`,
/// a bad escape) is unreadable: the engine answers 400, and the plugin denies.
fn create_name(query: &str) -> Result<Option<String>, Unreadable> {
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
        if k == "name" && first.is_none() {
            first = Some(v);
        }
    }
    Ok(first
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty()))
}

/// What the create body says that the policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateBody {
    pub image: String,
    pub labels: BTreeMap<String, String>,
}

/// Decodes a create body the way the engine's Go decoder does (see the module doc). Only
/// the first JSON value is what the engine reads; content after it is refused here.
pub fn create_body(body: &[u8]) -> Result<CreateBody, Unreadable> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut out = CreateBody::default();
    let mut has_labels = false;
    Top {
        out: &mut out,
        has_labels: &mut has_labels,
    }
    .deserialize(&mut de)
    .map_err(|e| Unreadable(format!("the body is not what the engine would read: {e}")))?;
    de.end()
        .map_err(|_| Unreadable("content after the JSON body (engines differ on it)".into()))?;
    if out.image.is_empty() {
        return Err(Unreadable("no image in the body".into()));
    }
    Ok(out)
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

struct Top<'a> {
    out: &'a mut CreateBody,
    has_labels: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if go_fold_eq(&key, "Image") {
                // A string sets it; null leaves it as it was; anything else is an error
                // the engine answers with 400.
                if let Some(s) = map.next_value::<Option<String>>()? {
                    self.out.image = s;
                }
            } else if go_fold_eq(&key, "Labels") {
                match map.next_value::<Option<BTreeMap<String, Option<String>>>>()? {
                    // null clears the map.
                    None => {
                        self.out.labels.clear();
                        *self.has_labels = false;
                    }
                    // An object merges into the map there is (later keys win); a null
                    // value is the empty string.
                    Some(m) => {
                        *self.has_labels = true;
                        for (k, v) in m {
                            self.out.labels.insert(k, v.unwrap_or_default());
                        }
                    }
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
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
                what: "start"
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
