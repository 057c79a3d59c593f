//! The one route table. The request filter dispatches on it, the metrics label requests
//! with its templates, and the 404/405 logic asks it whether a path exists: a path not in
//! the table is a 404 whatever the method; a path in it with another method than GET or
//! HEAD is a 405 (the API is read-only).

/// Every route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /containers?state=&allowed=&name=&image=`
    Containers,
    /// `GET /containers/{id-or-prefix-or-name}`
    Container,
    /// `GET /containers/{id}/logs?tail=N` (off unless a token is set or `--logs` is given)
    Logs,
    /// `GET /decisions?container=` (what the controller did; needs `--controller-url`)
    Decisions,
    /// `GET /healthz` (no token needed: liveness probes carry none)
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
    /// `GET /node` (this node's summary, what the fleet's peers ask)
    Node,
    /// `GET /fleet` (the fleet page; JSON clients get `/fleet/containers`)
    Fleet,
    /// `GET /fleet/containers?node=&state=&allowed=&name=&image=`
    FleetContainers,
    /// `GET /fleet/nodes`
    FleetNodes,
    /// `GET /fleet/decisions?node=&container=`
    FleetDecisions,
}

/// The table: each route with its path template, in the order error messages list them.
pub const TABLE: [(Route, &str); 12] = [
    (Route::Containers, "/containers"),
    (Route::Container, "/containers/{id}"),
    (Route::Logs, "/containers/{id}/logs"),
    (Route::Decisions, "/decisions"),
    (Route::Healthz, "/healthz"),
    (Route::Readyz, "/readyz"),
    (Route::Metrics, "/metrics"),
    (Route::Node, "/node"),
    (Route::Fleet, "/fleet"),
    (Route::FleetContainers, "/fleet/containers"),
    (Route::FleetNodes, "/fleet/nodes"),
    (Route::FleetDecisions, "/fleet/decisions"),
];

/// A request path matched against the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: Route,
    /// The `{id}` segment, percent-decoded (not yet checked: see `handlers::check_key`).
    pub id: Option<String>,
}

impl Route {
    /// The path template, used as the metrics label.
    pub fn template(self) -> &'static str {
        TABLE.iter().find(|(r, _)| *r == self).map_or("other", |(_, t)| t)
    }

    /// Whether the token guards this route.
    pub fn needs_token(self) -> bool {
        self != Route::Healthz
    }

    /// Matches a raw request path (as sent, still percent-encoded). `None`: no such route.
    pub fn parse(path: &str) -> Option<Matched> {
        let rest = path.strip_prefix('/')?;
        let mut seg = rest.split('/');
        let (a, b, c, d) = (seg.next(), seg.next(), seg.next(), seg.next());
        let id = |s: &str| -> Option<String> { (!s.is_empty()).then(|| percent_decode(s)) };
        let (route, key) = match (a?, b, c, d) {
            ("containers", None, _, _) => (Route::Containers, None),
            ("containers", Some(k), None, _) => (Route::Container, Some(id(k)?)),
            ("containers", Some(k), Some("logs"), None) => (Route::Logs, Some(id(k)?)),
            ("decisions", None, _, _) => (Route::Decisions, None),
            ("healthz", None, _, _) => (Route::Healthz, None),
            ("readyz", None, _, _) => (Route::Readyz, None),
            ("metrics", None, _, _) => (Route::Metrics, None),
            ("node", None, _, _) => (Route::Node, None),
            ("fleet", None, _, _) => (Route::Fleet, None),
            ("fleet", Some("containers"), None, _) => (Route::FleetContainers, None),
            ("fleet", Some("nodes"), None, _) => (Route::FleetNodes, None),
            ("fleet", Some("decisions"), None, _) => (Route::FleetDecisions, None),
            _ => return None,
        };
        Some(Matched { route, id: key })
    }
}

/// The routes, for the message a lost client gets.
pub fn list() -> String {
    TABLE.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(", ")
}

/// Decodes `%XX` escapes; a result that is not UTF-8 keeps replacement characters, which
/// the key check later refuses.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_routes_and_labels() {
        let m = |p: &str| Route::parse(p).map(|m| (m.route, m.id));
        assert_eq!(m("/containers"), Some((Route::Containers, None)));
        assert_eq!(m("/containers/abc"), Some((Route::Container, Some("abc".into()))));
        assert_eq!(m("/containers/abc/logs"), Some((Route::Logs, Some("abc".into()))));
        assert_eq!(
            m("/containers/%2e%2e"),
            Some((Route::Container, Some("..".into())))
        );
        assert_eq!(m("/containers/a%2"), Some((Route::Container, Some("a%2".into()))));
        assert_eq!(m("/decisions"), Some((Route::Decisions, None)));
        assert_eq!(m("/node"), Some((Route::Node, None)));
        assert_eq!(m("/fleet"), Some((Route::Fleet, None)));
        assert_eq!(m("/fleet/containers"), Some((Route::FleetContainers, None)));
        assert_eq!(m("/fleet/nodes"), Some((Route::FleetNodes, None)));
        assert_eq!(m("/fleet/decisions"), Some((Route::FleetDecisions, None)));
        assert_eq!(m("/fleet/nope"), None);
        assert_eq!(m("/fleet/nodes/x"), None);
        for none in [
            "/",
            "",
            "/nope",
            "/containers/",
            "/containers/a/b",
            "/containers/a/logs/x",
            "/containers//logs",
        ] {
            assert_eq!(m(none), None, "{none}");
        }
        let label = |p: &str| Route::parse(p).map_or("other", |m| m.route.template());
        assert_eq!(label("/containers/abc/logs"), "/containers/{id}/logs");
        assert_eq!(label("/containers/../etc"), "other");
        assert_eq!(label("/metrics"), "/metrics");
        assert!(list().starts_with("/containers, /containers/{id}, "));
        assert!(!Route::Healthz.needs_token() && Route::Metrics.needs_token());
    }
}
