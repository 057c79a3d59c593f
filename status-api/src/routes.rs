//! The routes of the API and their path templates. The warp path filters that match them
//! are in [`crate::filters::matched`] (a test there checks that every route of the table has
//! one); the metrics label requests with the templates, and error messages list them. A path
//! no route matches is a 404 whatever the method; a route asked with another method than
//! GET or HEAD is a 405 (the API is read-only).

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
}

/// The routes, for the message a lost client gets.
pub fn list() -> String {
    TABLE.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_label_and_list() {
        assert_eq!(Route::Logs.template(), "/containers/{id}/logs");
        assert_eq!(Route::Metrics.template(), "/metrics");
        assert!(list().starts_with("/containers, /containers/{id}, "));
        assert!(!Route::Healthz.needs_token() && Route::Metrics.needs_token());
    }
}
