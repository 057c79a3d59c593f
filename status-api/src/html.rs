//! The page a browser gets: the same data as the JSON, readable at a glance. Self-contained
//! (inline CSS, no scripts, no external fonts or images; the CSP header forbids them
//! anyway). Every string that comes from Docker or the request is escaped with [`esc`].

use std::fmt::Write;
use std::time::SystemTime;

use common::container::State;

use crate::models::ContainerView;
use crate::query::ListFilter;
use crate::resources::HealthClass;
use crate::status::format_rfc3339;

/// Sent with every HTML page: nothing may load from anywhere, no script may run.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Page context besides the containers.
pub struct Page<'a> {
    pub synced: bool,
    /// `Some(generation)` when the server runs with an allowlist.
    pub policy_generation: Option<u64>,
    pub filter: &'a ListFilter,
    /// Containers in the picture before filtering.
    pub total: usize,
    pub now: SystemTime,
}

const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#dde3ea;--bg:#f6f8fa;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--off:#6e7781}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;gap:1rem;align-items:baseline;padding:.9rem 1.5rem;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:1.25rem;margin:0}
header .sub{color:var(--muted)}
main{padding:1rem 1.5rem}
.sync{margin-left:auto;font-weight:600}
.sync.ok{color:var(--ok)} .sync.bad{color:var(--bad)}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin-bottom:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.5rem .9rem;min-width:7.5rem}
.card b{display:block;font-size:1.4rem}
.card.bad b{color:var(--bad)} .card.warn b{color:var(--warn)} .card.ok b{color:var(--ok)}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted)}
form.filters input,form.filters select{font:inherit;padding:.25rem .4rem;border:1px solid var(--line);border-radius:5px;background:#fff}
form.filters button{font:inherit;padding:.3rem .9rem;border:1px solid var(--fg);border-radius:5px;background:var(--fg);color:#fff}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{padding:.45rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);background:#fbfcfd}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
tr.denied{background:#fff5f5;box-shadow:inset 4px 0 0 var(--bad)}
.mono,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.id,.reason,.dh{color:var(--muted);font-size:.8rem}
a{color:#0550ae;text-decoration:none} a:hover{text-decoration:underline}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.78rem;font-weight:600;border:1px solid currentColor}
.state-running,.class-healthy,.allowed{color:var(--ok)}
.state-paused,.state-restarting,.state-created,.class-warning,.class-unknown{color:var(--warn)}
.state-exited,.state-dead,.state-removing,.class-stopped,.state-unknown{color:var(--off)}
.class-critical{color:#fff;background:var(--bad);border-color:var(--bad)}
.badge.denied{color:#fff;background:var(--bad);border-color:var(--bad)}
meter{width:7rem;height:.6rem;display:block;margin-top:.2rem}
.empty{color:var(--muted);text-align:center;padding:2rem}
footer{color:var(--muted);font-size:.8rem;padding:1rem 1.5rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1.2rem;background:#fff;border:1px solid var(--line);padding:1rem;border-radius:8px}
dt{color:var(--muted)} dd{margin:0}
"#;

fn head(out: &mut String, title: &str, refresh: bool) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{}\
         <title>{}</title><style>{STYLE}</style></head><body>",
        if refresh {
            "<meta http-equiv=\"refresh\" content=\"10\">"
        } else {
            ""
        },
        esc(title)
    );
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

fn meter(out: &mut String, percent: f64, label: &str) {
    let _ = write!(
        out,
        "<meter min=\"0\" max=\"100\" low=\"75\" high=\"90\" optimum=\"0\" value=\"{:.1}\" title=\"{}\"></meter>",
        percent.clamp(0.0, 100.0),
        esc(label)
    );
}

fn cpu_cell(out: &mut String, c: &ContainerView) {
    match c
        .resources
        .as_ref()
        .and_then(|r| r.cpu_percent.map(|p| (p, r.online_cpus)))
    {
        Some((p, cpus)) => {
            let _ = write!(out, "{p:.1} %");
            meter(
                out,
                p / f64::from(cpus.max(1)),
                &format!("{p:.1} % of one CPU; {cpus} CPUs"),
            );
        }
        None => out.push_str("<span class=\"dh\">–</span>"),
    }
}

fn memory_cell(out: &mut String, c: &ContainerView) {
    match &c.resources {
        Some(r) => {
            out.push_str(&esc(&bytes(r.memory_bytes)));
            if let Some(limit) = r.memory_limit_bytes {
                let _ = write!(out, " / {}", esc(&bytes(limit)));
            }
            if let Some(p) = r.memory_percent {
                meter(out, p, &format!("{p:.1} % of the limit"));
            }
        }
        None => out.push_str("<span class=\"dh\">–</span>"),
    }
}

fn verdict_cell(out: &mut String, c: &ContainerView) {
    match &c.verdict {
        Some(v) if v.allowed => {
            let _ = write!(
                out,
                "<span class=\"badge allowed\">{}</span><div class=\"reason\">{}</div>",
                if v.spared { "spared" } else { "allowed" },
                esc(&v.reason)
            );
        }
        Some(v) => {
            let _ = write!(
                out,
                "<span class=\"badge denied\">DENIED</span><div class=\"reason\">{}</div>",
                esc(&v.reason)
            );
        }
        None => out.push_str("<span class=\"dh\">no allowlist</span>"),
    }
}

fn ports_text(c: &ContainerView) -> String {
    c.ports
        .iter()
        .map(|p| match (p.ip.as_deref(), p.public_port) {
            (Some(ip), Some(pp)) => format!("{ip}:{pp}→{}/{}", p.private_port, p.protocol),
            (None, Some(pp)) => format!("{pp}→{}/{}", p.private_port, p.protocol),
            _ => format!("{}/{}", p.private_port, p.protocol),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn health_cell(out: &mut String, c: &ContainerView) {
    let class = c.health_class.as_str();
    let _ = write!(out, "<span class=\"badge class-{class}\">{class}</span>");
    if let Some(h) = c.health {
        let _ = write!(out, "<div class=\"dh\">healthcheck: {}</div>", esc(h));
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `GET /containers` for a browser.
pub fn list_page(views: &[ContainerView], page: &Page) -> String {
    let mut out = String::with_capacity(4096 + views.len() * 1024);
    head(&mut out, "dockwarden · containers", true);
    let (sync_class, sync_text) = if page.synced {
        ("ok", "synced with Docker")
    } else {
        ("bad", "NOT synced with Docker: figures may be stale")
    };
    let _ = write!(
        out,
        "<header><h1>dockwarden</h1><span class=\"sub\">containers on this host</span>\
         <span class=\"sync {sync_class}\" id=\"sync\">{sync_text}</span></header><main>"
    );
    let count = |f: &dyn Fn(&ContainerView) -> bool| views.iter().filter(|v| f(v)).count();
    let running = count(&|v| v.state == State::Running);
    let denied = count(&|v| v.verdict.as_ref().is_some_and(|x| !x.allowed));
    let warning = count(&|v| v.health_class == HealthClass::Warning);
    let critical = count(&|v| v.health_class == HealthClass::Critical);
    let unhealthy = count(&|v| v.health == Some("unhealthy"));
    out.push_str("<section class=\"cards\">");
    let mut card = |class: &str, n: usize, label: &str| {
        let _ = write!(out, "<div class=\"card {class}\"><b>{n}</b>{}</div>", esc(label));
    };
    card("", views.len(), "shown");
    card("ok", running, "running");
    card("", views.len() - running, "not running");
    if page.policy_generation.is_some() {
        card(
            if denied > 0 { "bad" } else { "ok" },
            denied,
            "denied by the allowlist",
        );
    }
    card(if warning > 0 { "warn" } else { "" }, warning, "warning (≥ 75 %)");
    card(
        if critical > 0 { "bad" } else { "" },
        critical,
        "critical (> 90 %)",
    );
    card(
        if unhealthy > 0 { "bad" } else { "" },
        unhealthy,
        "healthcheck unhealthy",
    );
    out.push_str("</section>");
    filter_form(&mut out, page);
    out.push_str(
        "<table id=\"containers\"><thead><tr><th>State</th><th>Name</th><th>Image</th>\
         <th>Status</th><th>Health</th><th>CPU</th><th>Memory</th><th>Allowlist</th>\
         <th>Ports</th></tr></thead><tbody>",
    );
    if views.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"9\" class=\"empty\">No containers{}.</td></tr>",
            if page.total > 0 {
                " match these filters"
            } else {
                ""
            }
        );
    }
    for v in views {
        let denied = v.verdict.as_ref().is_some_and(|x| !x.allowed);
        let state = v.state.as_str();
        let _ = write!(
            out,
            "<tr class=\"container{}\" data-name=\"{}\" data-state=\"{state}\" data-class=\"{}\"{}>",
            if denied { " denied" } else { "" },
            esc(v.name),
            v.health_class.as_str(),
            match &v.verdict {
                Some(x) => format!(" data-allowed=\"{}\"", x.allowed),
                None => String::new(),
            }
        );
        let _ = write!(
            out,
            "<td><span class=\"badge state-{state}\">{state}</span></td>\
             <td class=\"name\"><a href=\"/containers/{}\">{}</a><div class=\"id\">{}</div></td>\
             <td class=\"mono\">{}</td><td>{}</td><td>",
            esc(v.id),
            esc(v.name),
            esc(short(v.id)),
            esc(v.image),
            esc(&v.status)
        );
        health_cell(&mut out, v);
        out.push_str("</td><td class=\"num\">");
        cpu_cell(&mut out, v);
        out.push_str("</td><td class=\"num\">");
        memory_cell(&mut out, v);
        out.push_str("</td><td>");
        verdict_cell(&mut out, v);
        let _ = write!(out, "</td><td class=\"mono\">{}</td></tr>", esc(&ports_text(v)));
    }
    out.push_str("</tbody></table></main>");
    footer(&mut out, page.now, page.policy_generation, true);
    out
}

fn filter_form(out: &mut String, page: &Page) {
    let f = page.filter;
    out.push_str("<form class=\"filters\" method=\"get\" action=\"/containers\">");
    let selected = f.states.as_ref().filter(|s| s.len() == 1).map(|s| s[0].as_str());
    out.push_str("<label>state<select name=\"state\"><option value=\"\">any</option>");
    for s in [
        "running",
        "created",
        "paused",
        "restarting",
        "exited",
        "dead",
        "removing",
    ] {
        let _ = write!(
            out,
            "<option{}>{s}</option>",
            if selected == Some(s) { " selected" } else { "" }
        );
    }
    out.push_str("</select></label>");
    if page.policy_generation.is_some() {
        out.push_str("<label>allowlist<select name=\"allowed\"><option value=\"\">any</option>");
        for (v, text) in [("true", "allowed"), ("false", "denied")] {
            let sel = f.allowed.map(|a| a.to_string()).as_deref() == Some(v);
            let _ = write!(
                out,
                "<option value=\"{v}\"{}>{text}</option>",
                if sel { " selected" } else { "" }
            );
        }
        out.push_str("</select></label>");
    }
    for (param, value, hint) in [
        ("name", f.name.as_ref().map(|p| p.text.as_str()), "web-*"),
        ("image", f.image.as_ref().map(|p| p.text.as_str()), "nginx:*"),
    ] {
        let _ = write!(
            out,
            "<label>{param}<input name=\"{param}\" value=\"{}\" placeholder=\"{hint}\"></label>",
            esc(value.unwrap_or(""))
        );
    }
    out.push_str("<button type=\"submit\">Filter</button><a href=\"/containers\">clear</a></form>");
}

fn footer(out: &mut String, now: SystemTime, generation: Option<u64>, refresh: bool) {
    let _ = write!(
        out,
        "<footer>Generated {}{} · {} · JSON: <span class=\"mono\">curl \
         http://HOST:8080/containers</span></footer></body></html>",
        esc(&format_rfc3339(now)),
        if refresh { " · refreshes every 10 s" } else { "" },
        match generation {
            Some(g) => format!("allowlist generation {g}"),
            None => "no allowlist".to_string(),
        }
    );
}

/// `GET /containers/{id}` for a browser.
pub fn detail_page(v: &ContainerView, now: SystemTime, generation: Option<u64>) -> String {
    let mut out = String::with_capacity(8192);
    head(&mut out, &format!("{} · dockwarden", v.name), false);
    let _ = write!(
        out,
        "<header><h1>{}</h1><span class=\"sub mono\">{}</span></header><main>\
         <p><a href=\"/containers\">← all containers</a> · \
         <a href=\"/containers/{}/logs?tail=100\">last 100 log lines</a></p><dl>",
        esc(v.name),
        esc(v.id),
        esc(v.id)
    );
    let mut row = |k: &str, html: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{html}</dd>", esc(k));
    };
    let state = v.state.as_str();
    row(
        "state",
        format!(
            "<span class=\"badge state-{state}\">{state}</span> {}",
            esc(&v.status)
        ),
    );
    let mut h = String::new();
    health_cell(&mut h, v);
    row("health", h);
    let mut a = String::new();
    verdict_cell(&mut a, v);
    row("allowlist", a);
    let mut cpu = String::new();
    cpu_cell(&mut cpu, v);
    row("CPU", cpu);
    let mut mem = String::new();
    memory_cell(&mut mem, v);
    row("memory", mem);
    row("image", format!("<span class=\"mono\">{}</span>", esc(v.image)));
    row(
        "image ID",
        format!("<span class=\"mono\">{}</span>", esc(v.image_id)),
    );
    row("created", esc(v.created));
    row("started", esc(v.started_at.unwrap_or("–")));
    row("finished", esc(v.finished_at.unwrap_or("–")));
    row(
        "exit code",
        v.exit_code.map_or_else(|| "–".to_string(), |c| c.to_string()),
    );
    row("restarts", v.restart_count.to_string());
    let ports = ports_text(v);
    row(
        "ports",
        if ports.is_empty() {
            "–".into()
        } else {
            esc(&ports)
        },
    );
    let labels = v
        .labels
        .iter()
        .map(|(k, val)| format!("<div class=\"mono\">{}={}</div>", esc(k), esc(val)))
        .collect::<String>();
    row("labels", if labels.is_empty() { "–".into() } else { labels });
    out.push_str("</dl></main>");
    footer(&mut out, now, generation, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::container::Container;
    use std::collections::BTreeMap;

    #[test]
    fn escapes_everything() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn page_marks_denied_and_escapes_docker_strings() {
        let c = Container {
            id: "0123456789abcdef".into(),
            name: "web<1>".into(),
            image: "evil\"><script>x</script>".into(),
            image_id: "sha256:1".into(),
            state: State::Running,
            health: Some("unhealthy".into()),
            labels: BTreeMap::from([("k".to_string(), "<b>v</b>".to_string())]),
            ..Default::default()
        };
        let verdict = common::policy::Verdict {
            allowed: false,
            rule: None,
            reason: "no [[allow]] rule matches".into(),
        };
        let now = SystemTime::now();
        let v = ContainerView::new(&c, None, Some(verdict), now);
        let f = ListFilter::default();
        let page = Page {
            synced: true,
            policy_generation: Some(1),
            filter: &f,
            total: 1,
            now,
        };
        let html = list_page(std::slice::from_ref(&v), &page);
        assert!(html.contains("class=\"container denied\""));
        assert!(html.contains("DENIED"));
        assert!(!html.contains("<script>"), "unescaped image");
        assert!(html.contains("web&lt;1&gt;"));
        let detail = detail_page(&v, now, Some(1));
        assert!(!detail.contains("<b>v</b>") && detail.contains("&lt;b&gt;v&lt;/b&gt;"));
        assert!(!detail.contains("<script>"));
    }
}
