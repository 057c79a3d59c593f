//! The fleet page (`/fleet` in a browser): one tile per node (containers, denied running,
//! reachable or not, policy drift), the containers of every reachable node with a node
//! column and a node filter, and the recent decisions of every node. Same rules as the
//! single-node page ([`crate::html`]): maud escapes every value, inline CSS only, no
//! scripts, refreshed every 10 s.

use maud::{Markup, html};

use super::merge::{Item, NodeView};
use super::{FleetFilter, FleetSnapshot};
use crate::html::page;

/// Recent decisions shown.
const RECENT: usize = 20;

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn tile(n: &NodeView) -> Markup {
    let class = if !n.reachable && !n.local {
        "tile unreachable"
    } else if n.drift {
        "tile drift"
    } else if n.denied_running.unwrap_or(0) > 0 {
        "tile denied"
    } else {
        "tile"
    };
    html! {
        div class=(class) id=(format!("node-{}", n.node)) data-node=(n.node)
            data-reachable=(n.reachable || n.local) data-drift=(n.drift) {
            h3 {
                a href=(format!("/fleet?node={}", urlencode(&n.node))) { (n.node) }
                @if n.local { span.badge.allowed { "this node" } }
                @if !n.reachable && !n.local { span.badge.down { "UNREACHABLE" } }
                @if n.drift { span.badge.drift title="its policy differs from the majority's" { "POLICY DRIFT" } }
            }
            div.figs {
                div { b { (opt(n.containers)) } "containers" }
                div { b { (opt(n.running)) } "running" }
                div class=(if n.denied_running.unwrap_or(0) > 0 { "denied-live bad" } else { "denied-live" }) {
                    b { (opt(n.denied_running)) } "denied, running"
                }
            }
            div.dh {
                @match (&n.mode, n.policy_generation) {
                    (Some(m), Some(g)) => { (m) " · policy generation " (g) }
                    _ => "no allowlist",
                }
                @if let Some(sha) = &n.policy_sha256 { " · " span.mono title=(sha) { (short(sha)) } }
                @if n.policy_refused == Some(true) { " · file on disk refused" }
            }
            div.dh {
                @if !n.local { (n.address) " · " }
                @match n.synced { Some(true) => "synced", Some(false) => "NOT synced with Docker", None => "" }
                @if let Some(c) = &n.controller { " · controller " (c) }
            }
            @if !n.reachable && !n.local {
                div.reason {
                    @match &n.last_answer { Some(t) => { "last answer " (t) }, None => "never answered" }
                    @if let Some(e) = &n.error { br; (e) }
                }
            }
        }
    }
}

fn opt(v: Option<usize>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn verdict(i: &Item) -> Markup {
    let f = &i.f;
    match f.allowed {
        None => html! { span.dh { "no allowlist" } },
        Some(true) if f.spared == Some(true) => html! { span.badge.allowed { "spared" } },
        Some(true) => html! {
            span.badge.allowed { @match f.rule { Some(r) => { "allowed by rule " (r) }, None => "allowed" } }
            div.reason { (f.reason) }
        },
        Some(false) if f.denied_live() => html! { span.badge.denied { "DENIED" } div.reason { (f.reason) } },
        Some(false) => html! { span.badge.gone { "exited, denied" } div.reason { (f.reason) } },
    }
}

fn filter_form(s: &FleetSnapshot, f: &FleetFilter) -> Markup {
    let node = f.node.as_ref().map_or("", |p| p.text.as_str());
    let selected = f
        .list
        .states
        .as_ref()
        .filter(|s| s.len() == 1)
        .map(|s| s[0].as_str());
    let allowed = f.list.allowed.map(|a| a.to_string());
    html! {
        form.filters method="get" action="/fleet" {
            label { "node" select name="node" {
                option value="" { "any" }
                @for n in &s.merged.nodes { option selected[node == n.node] { (n.node) } }
            } }
            label { "state" select name="state" {
                option value="" { "any" }
                @for st in ["running", "created", "paused", "restarting", "exited", "dead", "removing"] {
                    option selected[selected == Some(st)] { (st) }
                }
            } }
            @if s.any_policy {
                label { "allowlist" select name="allowed" {
                    option value="" { "any" }
                    option value="true" selected[allowed.as_deref() == Some("true")] { "allowed" }
                    option value="false" selected[allowed.as_deref() == Some("false")] { "denied" }
                } }
            }
            label { "name" input name="name" value=(f.list.name.as_ref().map_or("", |p| p.text.as_str())) placeholder="web-*"; }
            label { "image" input name="image" value=(f.list.image.as_ref().map_or("", |p| p.text.as_str())) placeholder="nginx:*"; }
            button type="submit" { "Filter" }
            a href="/fleet" { "clear" }
        }
    }
}

/// `/fleet` for a browser; `filter` is `None` for the unfiltered page.
pub fn fleet_page(s: &FleetSnapshot, filter: Option<&FleetFilter>) -> String {
    let default = FleetFilter::default();
    let f = filter.unwrap_or(&default);
    let shown: Vec<&Item> = s.merged.containers.iter().filter(|i| f.matches(i)).collect();
    let nodes = &s.merged.nodes;
    let unreachable: Vec<&NodeView> = nodes.iter().filter(|n| !n.reachable && !n.local).collect();
    let drifted: Vec<&NodeView> = nodes.iter().filter(|n| n.drift).collect();
    let denied_live: usize = nodes
        .iter()
        .filter(|n| n.reachable || n.local)
        .filter_map(|n| n.denied_running)
        .sum();
    let total: usize = shown.len();
    let body = html! {
        header {
            h1 { a href="/fleet" { "dockwarden" } }
            span.sub { "fleet: " (nodes.len()) " nodes, seen from " (s.me) }
            span #sync class=(if unreachable.is_empty() { "sync ok" } else { "sync bad" }) {
                @if unreachable.is_empty() { "every node answers" } @else { (unreachable.len()) " unreachable" }
            }
        }
        @if !unreachable.is_empty() {
            div.banner.bad #unreachable {
                strong { "Unreachable: " }
                @for (i, n) in unreachable.iter().enumerate() { @if i > 0 { ", " } (n.node) }
                ". Their containers are not listed (not known now); their tiles show the last answer."
            }
        }
        @if !drifted.is_empty() {
            div.banner.warn #drift {
                strong { "Policy drift" }
                @match &s.merged.majority {
                    Some(Some(m)) => { ": the policy in force differs from the majority's (" span.mono { (short(m)) } ") on " }
                    Some(None) => ": most nodes run without an allowlist, unlike ",
                    None => ": the nodes disagree and no policy has a majority: ",
                }
                @for (i, n) in drifted.iter().enumerate() { @if i > 0 { ", " } strong { (n.node) } }
                ". Bring allowlist.toml on those nodes in line."
            }
        }
        @if let Some(e) = &s.discovery_error {
            div.banner.warn #discovery { strong { "Discovery: " } (e) " (the last known addresses are used)" }
        }
        main {
            section.cards {
                div.card { b { (nodes.len()) } "nodes" }
                div #fleet-containers .card { b { (s.merged.containers.len()) } "containers" }
                div #fleet-denied-live class=(if denied_live > 0 { "card bad" } else { "card ok" }) { b { (denied_live) } "denied, running" }
                div #fleet-unreachable class=(if unreachable.is_empty() { "card ok" } else { "card bad" }) { b { (unreachable.len()) } "unreachable" }
                div #fleet-drift class=(if drifted.is_empty() { "card ok" } else { "card warn" }) { b { (drifted.len()) } "policy drift" }
            }
            section.tiles #nodes { @for n in nodes { (tile(n)) } }
            (filter_form(s, f))
            table #containers {
                thead { tr {
                    th { "Node" } th { "State" } th { "Name" } th { "Image" } th { "Status" } th { "Health" } th { "Allowlist" }
                } }
                tbody {
                    @if shown.is_empty() {
                        tr { td colspan="7" .empty { "No containers" @if filter.is_some() { " match these filters" } "." } }
                    }
                    @for i in &shown {
                        @let state = i.f.state().as_str();
                        @let row = if i.f.denied_live() { "container denied" } else { "container" };
                        tr class=(row) data-node=(&*i.node) data-name=(i.f.name) data-state=(state) {
                            td.node { a href=(format!("/fleet?node={}", urlencode(&i.node))) { (&*i.node) } }
                            td { span class=(format!("badge state-{state}")) { (state) } }
                            td.name {
                                @if &*i.node == s.me.as_str() { a href=(format!("/containers/{}", i.f.id)) { (i.f.name) } } @else { (i.f.name) }
                                div.id { (i.f.id.get(..12).unwrap_or(&i.f.id)) }
                            }
                            td.mono { (i.f.image) }
                            td { (i.f.status) }
                            td { @if !i.f.health_class.is_empty() { span class=(format!("badge class-{}", i.f.health_class)) { (i.f.health_class) } } }
                            td { (verdict(i)) }
                        }
                    }
                }
            }
            h2 #recent { "What dockwarden did recently, on every node" }
            @if s.merged.decisions.is_empty() {
                p.dh { "Nothing known: no node's controller reported a decision." }
            } @else {
                table #actions {
                    thead { tr { th { "Time (UTC)" } th { "Node" } th { "Container" } th { "Action" } th { "Result" } th { "Reason" } th { "Trigger" } } }
                    tbody {
                        @for d in s.merged.decisions.iter().rev().take(RECENT) {
                            tr data-node=(&*d.node) {
                                td.num { (d.f.time) }
                                td { (&*d.node) }
                                td { (d.f.container) }
                                td { (d.f.action) }
                                td { (d.f.result) }
                                td.reason { (d.f.reason) }
                                td { (d.f.trigger) }
                            }
                        }
                    }
                }
            }
            @if !s.merged.decisions_unavailable.is_empty() {
                p.dh #decisions-unavailable {
                    "Decisions not known from: "
                    @for (i, (n, why)) in s.merged.decisions_unavailable.iter().enumerate() { @if i > 0 { "; " } (n) " (controller " (why) ")" }
                }
            }
        }
        footer {
            (total) " containers shown · peers " span.mono { (s.peers) } " · built " (crate::status::format_seconds(s.built))
            " · refreshes every 10 s · JSON: " span.mono { "/fleet/containers, /fleet/nodes, /fleet/decisions" }
            " · " a href="/containers" { "this node only" }
        }
    };
    page("dockwarden · fleet", true, body)
}

/// The 404 page of a node without `--peers`.
pub fn not_configured_page(how: &str) -> String {
    let body = html! {
        header { h1 { a href="/containers" { "dockwarden" } } span.sub { "fleet view" } }
        main {
            div.banner.warn #fleet-off { strong { "No fleet view on this node. " } (how) }
            p { a href="/containers" { "This node's containers" } }
        }
    };
    page("dockwarden · fleet view off", false, body)
}
