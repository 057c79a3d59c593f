//! The page a browser gets: the same data as the JSON, readable at a glance. Built with maud,
//! which escapes every interpolated value unless it is explicitly marked pre-escaped (only
//! the fixed style sheet is). Self-contained: inline CSS, no scripts, no external fonts or
//! images; the CSP header forbids them anyway.
//!
//! What it tells, honestly: whether the policy is in audit or enforce mode; when the policy
//! file on disk was refused and an older policy is in force; Docker's own healthcheck above
//! the resource figures; denied containers that still run apart from those dockwarden
//! already killed; published ports apart from EXPOSE-only ones; and what the controller
//! did, or that it cannot be reached.

use std::sync::Arc;

use common::engine::container::{Port, State};
use common::policy::Mode;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::query::ListFilter;
use crate::reply::Rendered;
use crate::resources::HealthClass;
use crate::status::format_seconds;
use crate::views::{Entry, Snapshot};
use common::decision::{Decision, DecisionRecord};

/// Content type of every page.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Sent with every answer: nothing may load from anywhere, no script may run.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Recent actions listed on the page.
const RECENT: usize = 10;

const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#dde3ea;--bg:#f6f8fa;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--off:#6e7781;--info:#0550ae}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:baseline;padding:.9rem 1.5rem;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:1.25rem;margin:0}
header .sub{color:var(--muted)}
main{padding:1rem 1.5rem}
.sync{margin-left:auto;font-weight:600}
.sync.ok{color:var(--ok)} .sync.bad{color:var(--bad)}
.mode{font-weight:700;padding:.1rem .6rem;border-radius:5px;border:1px solid currentColor}
.mode.audit{color:var(--warn);background:#fff8c5} .mode.enforce{color:#fff;background:var(--fg);border-color:var(--fg)} .mode.none{color:var(--muted)}
.banner{padding:.6rem .9rem;border-radius:8px;margin-bottom:.75rem;border:1px solid}
.banner.bad{background:#ffebe9;border-color:#ff818266;color:#82071e}
.banner.warn{background:#fff8c5;border-color:#d4a72c66;color:#4d2d00}
.banner code{font-size:.85rem;white-space:pre-wrap}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin-bottom:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.5rem .9rem;min-width:7.5rem}
.card b{display:block;font-size:1.4rem}
.card.bad b{color:var(--bad)} .card.warn b{color:var(--warn)} .card.ok b{color:var(--ok)} .card.off b{color:var(--off)}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted)}
form.filters input,form.filters select{font:inherit;padding:.25rem .4rem;border:1px solid var(--line);border-radius:5px;background:#fff}
form.filters button{font:inherit;padding:.3rem .9rem;border:1px solid var(--fg);border-radius:5px;background:var(--fg);color:#fff}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{padding:.45rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);background:#fbfcfd}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
tr.denied{background:#fff5f5;box-shadow:inset 4px 0 0 var(--bad)}
tr.audit{background:#fffbea;box-shadow:inset 4px 0 0 var(--warn)}
.mono,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.id,.reason,.dh{color:var(--muted);font-size:.8rem}
a{color:var(--info);text-decoration:none} a:hover{text-decoration:underline}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.78rem;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.state-running,.class-healthy,.allowed{color:var(--ok)}
.class-running{color:var(--info)}
.state-paused,.state-restarting,.state-created,.class-warning,.class-starting,.class-unknown{color:var(--warn)}
.state-exited,.state-dead,.state-removing,.class-stopped,.state-unknown,.gone{color:var(--off)}
.class-critical{color:#fff;background:var(--bad);border-color:var(--bad)}
.badge.denied{color:#fff;background:var(--bad);border-color:var(--bad)}
.badge.audit{color:#4d2d00;background:#fff8c5;border-color:var(--warn)}
.exposed{color:var(--muted)}
meter{width:7rem;height:.6rem;display:block;margin-top:.2rem}
.empty{color:var(--muted);text-align:center;padding:2rem}
h2{font-size:1rem;margin:1.5rem 0 .5rem}
footer{color:var(--muted);font-size:.8rem;padding:1rem 1.5rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1.2rem;background:#fff;border:1px solid var(--line);padding:1rem;border-radius:8px}
dt{color:var(--muted)} dd{margin:0}
ul.actions{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.6rem 1.6rem;margin:0}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.75rem;margin-bottom:1rem}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.6rem .9rem}
.tile h3{margin:0 0 .3rem;font-size:1rem;display:flex;gap:.4rem;align-items:baseline;flex-wrap:wrap}
.tile.unreachable{background:#f3f4f6;box-shadow:inset 4px 0 0 var(--off)}
.tile.drift{box-shadow:inset 4px 0 0 var(--warn)}
.tile.denied{box-shadow:inset 4px 0 0 var(--bad)}
.tile .figs{display:flex;gap:1rem} .tile .figs b{display:block;font-size:1.2rem}
.badge.drift{color:#4d2d00;background:#fff8c5;border-color:var(--warn)}
.badge.down{color:#fff;background:var(--off);border-color:var(--off)}
"#;

/// The page skeleton (also the fleet page's, `crate::fleet::page`).
pub(crate) fn page(title: &str, refresh: bool, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="10"; }
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn meter(percent: f64, label: &str) -> Markup {
    html! {
        meter min="0" max="100" low="75" high="90" optimum="0"
            value=(format!("{:.1}", percent.clamp(0.0, 100.0))) title=(label) {}
    }
}

fn dash() -> Markup {
    html! { span.dh { "–" } }
}

fn cpu_cell(e: &Entry) -> Markup {
    match e
        .sample
        .as_ref()
        .and_then(|s| s.cpu_percent.map(|p| (p, s.online_cpus)))
    {
        Some((p, cpus)) => html! {
            (format!("{p:.1} %"))
            (meter(p / f64::from(cpus.max(1)), &format!("{p:.1} % of one CPU; {cpus} CPUs")))
        },
        None => dash(),
    }
}

fn memory_cell(e: &Entry) -> Markup {
    match &e.sample {
        Some(s) => html! {
            (bytes(s.memory_bytes))
            @if let Some(limit) = s.memory_limit_bytes { " / " (bytes(limit)) }
            @if let Some(p) = s.memory_percent() { (meter(p, &format!("{p:.1} % of the limit"))) }
        },
        None => dash(),
    }
}

/// One badge, worst of Docker's healthcheck and the figures, with what it rests on.
fn health_cell(e: &Entry) -> Markup {
    let class = e.health_class.as_str();
    let text = match (e.c.health.as_deref(), e.health_class) {
        (Some("unhealthy"), HealthClass::Critical) => "unhealthy",
        _ => class,
    };
    let docker = match (e.c.state, e.c.health.as_deref()) {
        (State::Running, Some(h)) => format!("healthcheck: {h}"),
        (State::Running, None) => "no healthcheck".to_string(),
        _ => String::new(),
    };
    html! {
        span class=(format!("badge class-{class}")) { (text) }
        @if !docker.is_empty() { div.dh { (docker) } }
    }
}

/// What dockwarden makes of the container: allowed, spared, denied and running (enforce),
/// denied and left alone (audit), or denied and already stopped (killed by dockwarden, or
/// exited on its own).
fn verdict_cell(e: &Entry, mode: Option<Mode>) -> Markup {
    let Some(v) = &e.verdict else {
        return html! { span.dh { "no allowlist" } };
    };
    html! {
        (verdict_badge(e, v, mode))
        @if !e.power.is_empty() || !e.power_known {
            div.dh.power {
                "host power: " (e.power.join("; "))
                @if !e.power_known { " (not all known)" }
            }
        }
    }
}

/// The verdict's badge and reason.
fn verdict_badge(e: &Entry, v: &Decision, mode: Option<Mode>) -> Markup {
    if v.allowed() {
        let text = match v {
            Decision::Spare(_) => "spared".to_string(),
            _ => match v.rule() {
                Some(r) => format!("allowed by rule {r}"),
                None => "allowed".to_string(),
            },
        };
        return html! { span.badge.allowed { (text) } div.reason { (v) } };
    }
    if !e.c.state.is_live() {
        let killed = e.last_action.as_ref().is_some_and(DecisionRecord::acted);
        return html! {
            span.badge.gone { (if killed { "killed by dockwarden" } else { "exited, denied" }) }
            div.reason {
                @match &e.last_action {
                    Some(d) => (d.sentence(e.times.started)),
                    None => (v),
                }
            }
        };
    }
    match mode {
        Some(Mode::Audit) => html! {
            span.badge.audit { "DENIED · audit" }
            div.reason { "would be killed; audit mode leaves it running. " (v) }
        },
        _ => html! { span.badge.denied { "DENIED" } div.reason { (v) } },
    }
}

/// Published ports as `host address:port → container port`; EXPOSE-only ones marked.
fn ports_cell(ports: &[Port]) -> Markup {
    if ports.is_empty() {
        return dash();
    }
    html! {
        @for p in ports {
            div {
                @match (p.public_port, p.ip.as_deref()) {
                    (Some(pp), Some(ip)) => { (format!("{ip}:{pp} → {}/{}", p.private_port, p.protocol)) }
                    (Some(pp), None) => { (format!("{pp} → {}/{}", p.private_port, p.protocol)) }
                    (None, _) => {
                        span.exposed title="declared with EXPOSE, not published on the host" {
                            (format!("{}/{} exposed only", p.private_port, p.protocol))
                        }
                    }
                }
            }
        }
    }
}

fn mode_of(s: &Snapshot) -> Option<Mode> {
    s.policy.as_ref().map(|p| p.policy.mode)
}

/// Header, mode and the warnings every page carries.
fn top(s: &Snapshot, subtitle: Markup) -> Markup {
    let (sync_class, sync_text) = if s.synced {
        ("ok", "synced with Docker")
    } else {
        ("bad", "NOT synced with Docker: figures may be stale")
    };
    html! {
        header {
            h1 { a href="/containers" { "dockwarden" } }
            (subtitle)
            @match &s.policy {
                Some(p) if p.policy.mode == Mode::Audit => {
                    span.mode.audit #mode title="denied containers are reported, never touched" { "AUDIT mode: reports, touches nothing" }
                }
                Some(p) => {
                    span.mode.enforce #mode { "ENFORCE mode: denied containers are " (past(p.policy.action.as_str())) }
                }
                None => { span.mode.none #mode { "no allowlist given: no verdicts" } }
            }
            span #sync class=(format!("sync {sync_class}")) { (sync_text) }
        }
        @if let Some(why) = &s.policy_refused {
            div.banner.bad #policy-refused {
                strong { "The allowlist file on disk was refused" }
                @if let Some(p) = &s.policy { " — the older policy (generation " (p.generation) ") stays in force." }
                " Fix the file; it is re-read on every change."
                br; code { (why) }
            }
        }
        @if s.decisions.configured() && !s.decisions.reachable() {
            div.banner.warn #controller-unreachable {
                strong { "The controller cannot be reached" }
                ": what dockwarden did recently is unknown"
                @if s.decisions.feed.is_some() { " (the actions below are the last known)" }
                ". Everything else on this page is current."
                @if let Some(e) = &s.decisions.error { br; code { (e) } }
            }
        }
    }
}

fn past(action: &str) -> &str {
    match action {
        "kill" => "killed",
        "stop" => "stopped",
        "remove" => "removed",
        other => other,
    }
}

fn footer(s: &Snapshot, refresh: bool) -> Markup {
    html! {
        footer {
            @match &s.policy {
                Some(p) => {
                    "allowlist generation " (p.generation) " · mode " (p.policy.mode.as_str())
                    " · action " (p.policy.action.as_str()) " · " (p.policy.rules.len()) " rules"
                }
                None => "no allowlist",
            }
            @if refresh { " · refreshes every 10 s" }
            " · JSON: " span.mono { "curl http://HOST:8080/containers" }
        }
    }
}

/// The unfiltered list page of a snapshot: rendered once per snapshot, on first demand.
pub fn list(s: &Snapshot) -> Arc<Rendered> {
    s.html_with(render_list)
}

/// Renders the unfiltered list page (what [`crate::views::Views`] caches).
pub fn render_list(s: &Snapshot) -> Rendered {
    Rendered::new(list_page(s, &s.entries, None).into(), CONTENT_TYPE)
}

/// `GET /containers` for a browser: `filter` is `None` for the unfiltered page.
pub fn list_page(s: &Snapshot, shown: &[impl AsRef<Entry>], filter: Option<&ListFilter>) -> String {
    let shown: Vec<&Entry> = shown.iter().map(AsRef::as_ref).collect();
    let mode = mode_of(s);
    let count = |f: &dyn Fn(&Entry) -> bool| shown.iter().filter(|e| f(e)).count();
    let running = count(&|e| e.c.state == State::Running);
    let denied_live = count(&|e| e.denied() && e.c.state.is_live());
    let killed = count(&|e| {
        e.denied() && !e.c.state.is_live() && e.last_action.as_ref().is_some_and(DecisionRecord::acted)
    });
    let warning = count(&|e| e.health_class == HealthClass::Warning);
    let critical = count(&|e| e.health_class == HealthClass::Critical);
    let unhealthy = count(&|e| e.c.health.as_deref() == Some("unhealthy") && e.c.state == State::Running);
    let default = ListFilter::default();
    let f = filter.unwrap_or(&default);
    let body = html! {
        (top(s, html! { span.sub { "containers on this host" } }))
        main {
            section.cards {
                div.card { b { (shown.len()) } "shown" }
                div.card.ok { b { (running) } "running" }
                div.card { b { (shown.len() - running) } "not running" }
                @if s.policy.is_some() {
                    @let label = if mode == Some(Mode::Audit) { "denied, running (audit: left alone)" } else { "denied, running" };
                    div #denied-live class=(if denied_live > 0 { "card bad" } else { "card ok" }) { b { (denied_live) } (label) }
                    div #killed .card.off { b { (killed) } "killed by dockwarden" }
                }
                div class=(if warning > 0 { "card warn" } else { "card" }) { b { (warning) } "warning (≥ 75 %)" }
                div class=(if critical > 0 { "card bad" } else { "card" }) { b { (critical) } "critical" }
                div class=(if unhealthy > 0 { "card bad" } else { "card" }) { b { (unhealthy) } "healthcheck unhealthy" }
            }
            (filter_form(f, s.policy.is_some()))
            table #containers {
                thead { tr {
                    th { "State" } th { "Name" } th { "Image" } th { "Status" } th { "Health" }
                    th { "CPU" } th { "Memory" } th { "Allowlist" } th { "Ports" }
                } }
                tbody {
                    @if shown.is_empty() {
                        tr { td colspan="9" .empty {
                            "No containers" @if !s.entries.is_empty() { " match these filters" } "."
                        } }
                    }
                    @for e in &shown {
                        @let state = e.c.state.as_str();
                        @let live_denied = e.denied() && e.c.state.is_live();
                        @let row = match (live_denied, mode) {
                            (true, Some(Mode::Audit)) => "container audit",
                            (true, _) => "container denied",
                            _ => "container",
                        };
                        tr class=(row) data-name=(e.c.name) data-state=(state) data-class=(e.health_class.as_str())
                            data-allowed=[e.verdict.as_ref().map(|v| v.allowed().to_string())] {
                            td { span class=(format!("badge state-{state}")) { (state) } }
                            td.name {
                                a href=(format!("/containers/{}", e.c.id)) { (e.c.name) }
                                div.id { (e.c.short_id()) }
                            }
                            td.mono { (e.c.image) }
                            td { (e.status) }
                            td { (health_cell(e)) }
                            td.num { (cpu_cell(e)) }
                            td.num { (memory_cell(e)) }
                            td { (verdict_cell(e, mode)) }
                            td.mono { (ports_cell(&e.c.ports)) }
                        }
                    }
                }
            }
            (recent_actions(s))
        }
        (footer(s, true))
    };
    page("dockwarden · containers", true, body)
}

/// The controller's recent actions (with `--controller-url`).
fn recent_actions(s: &Snapshot) -> Markup {
    if !s.decisions.configured() {
        return html! {};
    }
    let recent = s.decisions.recent(RECENT);
    html! {
        h2 #recent { "What dockwarden did recently" }
        @if recent.is_empty() {
            p.dh { @if s.decisions.feed.is_some() { "Nothing yet: no container was denied since the controller started." } @else { "Not known yet." } }
        } @else {
            table #actions {
                thead { tr { th { "Time (UTC)" } th { "Container" } th { "What happened" } th { "Trigger" } th { "Latency" } } }
                tbody {
                    @for d in recent {
                        @let started = s.get(&d.id).and_then(|e| e.times.started);
                        tr {
                            td.num { (format_seconds(d.time)) }
                            td { a href=(format!("/containers/{}", d.id)) { (d.container) } div.id.mono { (d.image) } }
                            td { (d.sentence(started)) }
                            td { (d.trigger) }
                            td.num { @match d.latency_ms { Some(ms) => (format!("{ms:.1} ms")), None => "–" } }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(f: &ListFilter, with_policy: bool) -> Markup {
    let selected = f.states.as_ref().filter(|s| s.len() == 1).map(|s| s[0].as_str());
    let allowed = f.allowed.map(|a| a.to_string());
    html! {
        form.filters method="get" action="/containers" {
            label { "state" select name="state" {
                option value="" { "any" }
                @for s in ["running", "created", "paused", "restarting", "exited", "dead", "removing"] {
                    option selected[selected == Some(s)] { (s) }
                }
            } }
            @if with_policy {
                label { "allowlist" select name="allowed" {
                    option value="" { "any" }
                    option value="true" selected[allowed.as_deref() == Some("true")] { "allowed" }
                    option value="false" selected[allowed.as_deref() == Some("false")] { "denied" }
                } }
            }
            label { "name" input name="name" value=(f.name.as_ref().map_or("", |p| p.text.as_str())) placeholder="web-*"; }
            label { "image" input name="image" value=(f.image.as_ref().map_or("", |p| p.text.as_str())) placeholder="nginx:*"; }
            button type="submit" { "Filter" }
            a href="/containers" { "clear" }
        }
    }
}

/// `GET /containers/{id}` for a browser.
pub fn detail_page(s: &Snapshot, e: &Entry) -> String {
    let c = &e.c;
    let state = c.state.as_str();
    let about: Vec<&DecisionRecord> = s
        .decisions
        .feed
        .as_ref()
        .map(|f| f.decisions.iter().filter(|d| d.id == c.id).rev().collect())
        .unwrap_or_default();
    let body = html! {
        (top(s, html! { span.sub.mono { (c.name) } }))
        main {
            p {
                a href="/containers" { "← all containers" }
                " · " a href=(format!("/containers/{}/logs?tail=100", c.id)) { "last 100 log lines" }
            }
            dl {
                dt { "ID" } dd.mono { (c.id) }
                dt { "state" } dd { span class=(format!("badge state-{state}")) { (state) } " " (e.status) }
                dt { "health" } dd { (health_cell(e)) }
                dt { "allowlist" } dd { (verdict_cell(e, mode_of(s))) }
                dt { "CPU" } dd { (cpu_cell(e)) }
                dt { "memory" } dd { (memory_cell(e)) }
                dt { "image" } dd.mono { (c.image) }
                dt { "image ID" } dd.mono { (c.image_id) }
                dt { "created" } dd { (c.created) }
                dt { "started" } dd { (c.started_at.as_deref().unwrap_or("–")) }
                dt { "finished" } dd { (c.finished_at.as_deref().unwrap_or("–")) }
                // Docker reports 0 for a container that never exited: only show a real one.
                dt { "exit code" } dd { @match c.exit_code.filter(|_| matches!(c.state, State::Exited | State::Dead)) { Some(x) => (x), None => "–" } }
                dt { "restarts" } dd { (c.restart_count) }
                dt { "ports" } dd.mono { (ports_cell(&c.ports)) }
                dt { "labels" } dd {
                    @if c.labels.is_empty() { "–" }
                    @for (k, v) in &c.labels { div.mono { (k) "=" (v) } }
                }
            }
            @if s.decisions.configured() {
                h2 #what-dockwarden-did { "What dockwarden did" }
                @if about.is_empty() {
                    p.dh { @if s.decisions.reachable() { "Nothing: the controller has not acted on this container." } @else { "Unknown: the controller cannot be reached." } }
                } @else {
                    ul.actions {
                        @for d in about {
                            li { span.mono { (format_seconds(d.time)) } " — " (d.sentence(e.times.started)) " (" (d.trigger) ")" }
                        }
                    }
                }
            }
        }
        (footer(s, false))
    };
    page(&format!("{} · dockwarden", c.name), false, body)
}
