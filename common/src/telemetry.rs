//! Logging set-up shared by both binaries: one line per event, logfmt text for
//! `docker-compose logs` (`key=value`, quoting exactly the values that hold spaces, quotes,
//! `=` or nothing, so `grep 'verdict=deny'` finds every denial), or JSON for log pipelines.
//! `RUST_LOG` overrides the level.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (expected text or json)")),
        }
    }
}

/// Installs the global subscriber. Colours only on a terminal: `docker-compose logs` must
/// not show escape codes.
pub fn init(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder
            .fmt_fields(Logfmt)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already set up: {e}");
    }
}

/// Formats an event's fields as logfmt: the message first, then `key=value` pairs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<'w> FormatFields<'w> for Logfmt {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = LogfmtVisitor::default();
        fields.record(&mut v);
        writer.write_str(&v.message)?;
        if !v.message.is_empty() && !v.pairs.is_empty() {
            writer.write_char(' ')?;
        }
        writer.write_str(&v.pairs)
    }
}

#[derive(Default)]
struct LogfmtVisitor {
    message: String,
    pairs: String,
}

impl LogfmtVisitor {
    fn pair(&mut self, key: &str, value: &str) {
        if key == "message" {
            self.message.push_str(value);
            return;
        }
        if !self.pairs.is_empty() {
            self.pairs.push(' ');
        }
        self.pairs.push_str(key);
        self.pairs.push('=');
        quote_into(&mut self.pairs, value);
    }
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field.name(), &format!("{value:?}"));
    }
}

/// Appends `value` as logfmt writes it: bare, or quoted (with `\` and `"` escaped, control
/// characters as escapes) when it is empty or holds a space, a quote, `=` or a control
/// character.
pub fn quote_into(out: &mut String, value: &str) {
    let needs = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn quotes_exactly_what_needs_it() {
        let q = |v: &str| {
            let mut s = String::new();
            quote_into(&mut s, v);
            s
        };
        assert_eq!(q("deny"), "deny");
        assert_eq!(q("no [[allow]] rule matches"), "\"no [[allow]] rule matches\"");
        assert_eq!(q("a=b"), "\"a=b\"");
        assert_eq!(q(""), "\"\"");
        assert_eq!(q("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(q("a\nb"), "\"a\\nb\"");
        assert_eq!(q("12.5"), "12.5");
    }

    #[test]
    fn decision_lines_grep_as_the_docs_say() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .fmt_fields(Logfmt)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            let reason = "no [[allow]] rule matches";
            tracing::warn!(container = "bad-1", verdict = "deny", %reason, latency_ms = 12.5, ok = true, "decision");
        });
        let text =
            String::from_utf8(buf.0.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default();
        assert_eq!(
            text.trim(),
            "WARN decision container=bad-1 verdict=deny reason=\"no [[allow]] rule matches\" latency_ms=12.5 ok=true"
        );
    }
}
