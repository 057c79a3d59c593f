//! Query parameters, checked strictly: an unknown parameter, a repeated one or a bad value
//! is a 400 that names the parameter, never silently ignored. An empty value (`name=`) means
//! the parameter is not given, as HTML forms send empty fields.
//!
//! `GET /containers` filters (all given must match):
//! - `state=running` or a comma-separated list (`state=exited,dead`): Docker's states.
//! - `allowed=true|false`: the allowlist's verdict (needs `--allowlist`).
//! - `name=web-*`, `image=nginx:*`: globs with the allowlist's syntax (`*`, `?`, `[...]`,
//!   `{a,b}`, `\` escapes; whole string, case-sensitive; `*` crosses `/`). A value without
//!   glob characters matches exactly. `image` matches the reference as given to
//!   `docker run`.
//!
//! `GET /containers/{id}/logs`: `tail=N`, 1 ≤ N ≤ 10000, default 100.
//!
//! `GET /decisions`: `container=NAME-OR-ID-PREFIX`.

use common::decision::Decision;
use common::engine::container::{Container, State};
use globset::{GlobBuilder, GlobMatcher};

use crate::errors::{ApiError, show};

/// Bounds of `tail`.
pub const TAIL_DEFAULT: u32 = 100;
pub const TAIL_MAX: u32 = 10_000;
/// Longest accepted parameter value: filters are short; longer is a mistake or an attack.
const MAX_VALUE: usize = 512;

const STATES: &str = "created, running, paused, restarting, removing, exited, dead";

/// A `name` or `image` filter.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    glob: Option<GlobMatcher>,
}

impl Pattern {
    pub fn parse(param: &str, text: &str) -> Result<Pattern, ApiError> {
        let glob = if text.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            let g = GlobBuilder::new(text)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| ApiError::bad_param(param, format!("bad glob {}: {}", show(text), e.kind())))?;
            Some(g.compile_matcher())
        } else {
            None
        };
        Ok(Pattern {
            text: text.to_string(),
            glob,
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        match &self.glob {
            Some(g) => g.is_match(s),
            None => self.text == s,
        }
    }
}

/// The filters of `GET /containers`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: Option<Vec<State>>,
    pub allowed: Option<bool>,
    pub name: Option<Pattern>,
    pub image: Option<Pattern>,
}

impl ListFilter {
    /// Parses the decoded query pairs. `policy` tells whether `allowed` can be answered.
    pub fn parse(params: &[(String, String)], policy: bool) -> Result<ListFilter, ApiError> {
        check(params, &["state", "allowed", "name", "image"])?;
        let mut f = ListFilter::default();
        for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
            match k.as_str() {
                "state" => {
                    let states = v
                        .split(',')
                        .map(|s| {
                            State::parse(s.trim())
                                .filter(|s| *s != State::Unknown)
                                .ok_or_else(|| {
                                    ApiError::bad_param(
                                        k,
                                        format!("unknown state {}; one of {STATES}", show(s)),
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    f.states = Some(states);
                }
                "allowed" => {
                    if !policy {
                        return Err(ApiError::bad_param(
                            k,
                            "this server runs without --allowlist, so it has no verdicts to filter on",
                        ));
                    }
                    f.allowed = Some(match v.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(ApiError::bad_param(
                                k,
                                format!("expected true or false, got {}", show(other)),
                            ));
                        }
                    });
                }
                "name" => f.name = Some(Pattern::parse(k, v)?),
                "image" => f.image = Some(Pattern::parse(k, v)?),
                _ => return Err(ApiError::bad_param(k, "unknown parameter")),
            }
        }
        Ok(f)
    }

    /// No filter given: the unfiltered (cached) list.
    pub fn is_empty(&self) -> bool {
        self.states.is_none() && self.allowed.is_none() && self.name.is_none() && self.image.is_none()
    }

    pub fn matches(&self, c: &Container, verdict: Option<&Decision>) -> bool {
        self.states.as_ref().is_none_or(|s| s.contains(&c.state))
            && self.name.as_ref().is_none_or(|p| p.matches(&c.name))
            && self.image.as_ref().is_none_or(|p| p.matches(&c.image))
            && self
                .allowed
                .is_none_or(|want| verdict.is_some_and(|v| v.allowed() == want))
    }
}

/// `tail` of the logs route.
pub fn parse_tail(params: &[(String, String)]) -> Result<u32, ApiError> {
    check(params, &["tail"])?;
    match params.iter().find(|(_, v)| !v.is_empty()) {
        None => Ok(TAIL_DEFAULT),
        Some((k, v)) => {
            let bad = || {
                ApiError::bad_param(
                    k,
                    format!("expected a whole number from 1 to {TAIL_MAX}, got {}", show(v)),
                )
            };
            if v.len() > 6 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u32 = v.parse().map_err(|_| bad())?;
            if (1..=TAIL_MAX).contains(&n) {
                Ok(n)
            } else {
                Err(bad())
            }
        }
    }
}

/// `container` of `GET /decisions`: a name or ID prefix; `None` when not given.
pub fn parse_container(params: &[(String, String)]) -> Result<Option<String>, ApiError> {
    check(params, &["container"])?;
    Ok(params.iter().find(|(_, v)| !v.is_empty()).map(|(_, v)| v.clone()))
}

/// For routes that take no parameter.
pub fn parse_none(params: &[(String, String)]) -> Result<(), ApiError> {
    check(params, &[])
}

/// Unknown, repeated, empty or oversized parameters.
fn check(params: &[(String, String)], known: &[&str]) -> Result<(), ApiError> {
    for (i, (k, v)) in params.iter().enumerate() {
        if !known.contains(&k.as_str()) {
            let hint = if known.is_empty() {
                "this route takes no parameters".to_string()
            } else {
                format!("known parameters: {}", known.join(", "))
            };
            return Err(ApiError::bad_param(k, format!("unknown parameter; {hint}")));
        }
        if params[..i].iter().any(|(p, _)| p == k) {
            return Err(ApiError::bad_param(k, "given more than once"));
        }
        if v.len() > MAX_VALUE {
            return Err(ApiError::bad_param(
                k,
                format!("value longer than {MAX_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A parsed query string from literal pairs (the fleet's tests use it too).
    pub(crate) fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn container(name: &str, image: &str, state: State) -> Container {
        Container {
            id: "0123".into(),
            name: name.into(),
            image: image.into(),
            image_id: "sha256:1".into(),
            state,
            ..Default::default()
        }
    }

    #[test]
    fn filters_match_globs_exact_names_states_and_verdicts() {
        let web = container("web-1", "nginx:1.27", State::Running);
        let db = container("db", "docker.io/library/postgres:16", State::Exited);
        let f = ListFilter::parse(&q(&[("name", "web-*")]), false).unwrap();
        assert!(f.matches(&web, None) && !f.matches(&db, None));
        let f = ListFilter::parse(&q(&[("name", "web")]), false).unwrap();
        assert!(!f.matches(&web, None), "no glob characters: exact");
        let f = ListFilter::parse(&q(&[("image", "*postgres:*")]), false).unwrap();
        assert!(f.matches(&db, None) && !f.matches(&web, None));
        let f = ListFilter::parse(&q(&[("state", "exited,dead")]), false).unwrap();
        assert!(f.matches(&db, None) && !f.matches(&web, None));
        let f = ListFilter::parse(&q(&[("allowed", "false")]), true).unwrap();
        let denied = Decision::Deny(common::decision::Denied {
            why: common::decision::Why::NoRule(None),
            plan: common::decision::Plan::Nothing,
            audit: false,
        });
        assert!(f.matches(&web, Some(&denied)));
        assert!(!f.matches(&web, None));
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = |pairs: &[(&str, &str)], policy| ListFilter::parse(&q(pairs), policy).unwrap_err().message;
        assert!(err(&[("stat", "running")], true).contains("\"stat\""));
        assert!(err(&[("state", "sleeping")], true).contains("\"state\""));
        assert!(err(&[("state", "running,")], true).contains("\"state\""));
        assert!(err(&[("allowed", "yes")], true).contains("\"allowed\""));
        assert!(err(&[("allowed", "true")], false).contains("--allowlist"));
        assert!(err(&[("name", "[a")], true).contains("bad glob"));
        assert!(err(&[("name", "a"), ("name", "b")], true).contains("more than once"));
        assert!(
            ListFilter::parse(&q(&[("image", ""), ("state", "")]), true).is_ok(),
            "empty = not given"
        );
    }

    #[test]
    fn tail_is_bounded() {
        assert_eq!(parse_tail(&q(&[])).unwrap(), TAIL_DEFAULT);
        assert_eq!(parse_tail(&q(&[("tail", "1")])).unwrap(), 1);
        assert_eq!(parse_tail(&q(&[("tail", "10000")])).unwrap(), 10_000);
        for bad in [
            "0",
            "10001",
            "-1",
            "abc",
            "1e3",
            " 5",
            "99999999999999999999",
            "all",
        ] {
            let e = parse_tail(&q(&[("tail", bad)])).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert!(e.message.contains("\"tail\""), "{bad}: {}", e.message);
        }
        assert!(parse_tail(&q(&[("lines", "5")])).is_err());
        assert!(parse_none(&q(&[("x", "1")])).is_err());
        assert!(parse_none(&q(&[])).is_ok());
    }
}
