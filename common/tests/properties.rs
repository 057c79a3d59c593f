//! Property tests (proptest, stable toolchain) of the two parsers that take operator and
//! engine input: the image-reference normaliser and the policy parser. Arbitrary input never
//! panics; normalisation is idempotent and `Display`/`parse` round-trip; every equivalent
//! spelling of a reference normalises alike (and is matched alike by a rule); every valid
//! generated policy parses with its rules at the right lines; every refusal points inside
//! the text, and an injected mistake is reported at its own line; a truncated file never
//! parses into a policy that is empty or allows a name the whole file does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::decision::{Decision, Identity, decide};
use common::engine::container::{Container, State};
use common::policy::reference::{Reference, looks_like_image_id, normalise_name, split_tag};
use common::policy::{Action, Mode, Policy, PolicyError};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// generators

/// One repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

/// A registry domain, or none (Docker Hub). Spelled the many ways Docker Hub is spelled.
fn domain() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some("docker.io".to_string())),
        1 => Just(Some("index.docker.io".to_string())),
        1 => Just(Some("localhost".to_string())),
        1 => "localhost:[0-9]{1,5}".prop_map(Some),
        2 => "[a-z0-9]{1,8}(-[a-z0-9]{1,4})?\\.[a-z]{2,5}(:[0-9]{1,5})?".prop_map(Some),
    ]
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

fn digest() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))
}

/// A valid reference as written by someone, and its normalised form as Docker would give.
#[derive(Debug, Clone)]
struct GenRef {
    written: String,
    /// Same reference, other spelling (explicit `docker.io/library/`, `index.docker.io`...).
    other_spelling: String,
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn reference() -> impl Strategy<Value = GenRef> {
    (
        domain(),
        prop::collection::vec(component(), 1..4),
        prop::option::of(tag()),
        prop::option::weighted(0.25, digest()),
    )
        .prop_filter(
            "first component of a domain-less name must not look like a domain",
            |(d, p, _, _)| d.is_some() || !(p[0].contains(['.', ':']) || p[0] == "localhost"),
        )
        .prop_map(|(domain, path, tag, digest)| {
            let path_s = path.join("/");
            let hub = matches!(domain.as_deref(), None | Some("docker.io" | "index.docker.io"));
            let name = if hub {
                if path.len() == 1 {
                    format!("docker.io/library/{path_s}")
                } else {
                    format!("docker.io/{path_s}")
                }
            } else {
                format!("{}/{path_s}", domain.as_deref().unwrap_or_default())
            };
            let suffix = |t: &Option<String>| {
                let mut s = String::new();
                if let Some(t) = t {
                    s.push(':');
                    s.push_str(t);
                }
                if let Some(d) = &digest {
                    s.push('@');
                    s.push_str(d);
                }
                s
            };
            let written = match &domain {
                Some(d) => format!("{d}/{path_s}{}", suffix(&tag)),
                None => format!("{path_s}{}", suffix(&tag)),
            };
            // The other spelling: fully qualified, with `:latest` spelled out when implied.
            let explicit_tag = match (&tag, &digest) {
                (None, None) => Some("latest".to_string()),
                (t, _) => t.clone(),
            };
            let other_spelling = if hub && path.len() == 1 {
                format!("index.docker.io/library/{path_s}{}", suffix(&explicit_tag))
            } else {
                format!("{name}{}", suffix(&explicit_tag))
            };
            GenRef {
                written,
                other_spelling,
                name,
                tag: explicit_tag,
                digest,
            }
        })
        .prop_filter("not an image ID", |r| !looks_like_image_id(&r.written))
}

// ---------------------------------------------------------------------------------------
// image references

/// The one decision, for a process that is no container's (nothing spared).
fn evaluate(p: &Policy, c: &Container) -> Decision {
    decide(p, c, &Identity::default())
}

fn allowed(p: &Policy, c: &Container) -> bool {
    evaluate(p, c).allowed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reference_parse_never_panics_and_round_trips(s in any::<String>()) {
        if let Ok(r) = Reference::parse(&s) {
            let shown = r.to_string();
            prop_assert_eq!(Reference::parse(&shown), Ok(r.clone()), "display {:?} of {:?}", shown, s);
            prop_assert_eq!(r.tagged().is_some(), r.tag.is_some());
            prop_assert_eq!(r.digested().is_some(), r.digest.is_some());
        }
    }

    #[test]
    fn reference_like_garbage_never_panics(s in "[a-zA-Z0-9:/@._-]{0,40}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
        }
    }

    #[test]
    fn normalise_name_is_idempotent(s in any::<String>()) {
        let once = normalise_name(&s);
        prop_assert_eq!(normalise_name(&once), once.clone(), "input {:?}", s);
    }

    #[test]
    fn normalise_name_is_idempotent_on_reference_shaped_input(s in "[a-z0-9.:/_-]{0,30}") {
        let once = normalise_name(&s);
        prop_assert_eq!(normalise_name(&once), once);
    }

    #[test]
    fn split_tag_splits_without_losing_anything(s in any::<String>()) {
        match split_tag(&s) {
            (name, Some(tag)) => {
                prop_assert_eq!(format!("{name}:{tag}"), s.clone());
                prop_assert!(!tag.contains('/'));
            }
            (name, None) => prop_assert_eq!(name, s.as_str()),
        }
    }

    #[test]
    fn image_ids_are_never_references(h in "[0-9a-fA-F]{12,64}", prefixed in any::<bool>()) {
        let id = if prefixed { format!("sha256:{h}") } else { h };
        prop_assert!(looks_like_image_id(&id));
        prop_assert!(Reference::parse(&id).is_err());
    }

    #[test]
    fn valid_references_normalise_as_docker_does(r in reference()) {
        let parsed = Reference::parse(&r.written);
        prop_assert!(parsed.is_ok(), "{:?} refused: {:?}", r.written, parsed);
        let parsed = parsed.unwrap();
        prop_assert_eq!(&parsed.name, &r.name);
        prop_assert_eq!(&parsed.tag, &r.tag);
        prop_assert_eq!(&parsed.digest, &r.digest);
        // Every spelling of the same reference normalises alike, and Display round-trips.
        prop_assert_eq!(Reference::parse(&r.other_spelling), Ok(parsed.clone()));
        prop_assert_eq!(Reference::parse(&parsed.to_string()), Ok(parsed.clone()));
        prop_assert_eq!(normalise_name(split_tag(r.written.split('@').next().unwrap()).0), r.name.clone());
    }
}

// ---------------------------------------------------------------------------------------
// policies

/// One generated `[[allow]]` rule, with a container it must allow.
#[derive(Debug, Clone)]
struct GenRule {
    toml: String,
    /// Lines the rule takes, header included.
    lines: usize,
    /// A container this rule allows.
    sample: Container,
    /// Whether this rule has more than one field (a prefix of it may be wider).
    fields: usize,
}

fn name_pattern() -> impl Strategy<Value = (String, String)> {
    // (pattern, a name it matches)
    ("[a-z0-9][a-z0-9._-]{0,12}", any::<bool>()).prop_map(|(base, glob)| {
        if glob {
            (format!("{base}*"), format!("{base}-x1"))
        } else {
            (base.clone(), base)
        }
    })
}

fn rule() -> impl Strategy<Value = GenRule> {
    (
        prop::option::of(name_pattern()),
        prop::option::of((reference(), any::<bool>())),
        prop::collection::btree_map("[a-z][a-z0-9.]{0,10}", "[a-zA-Z0-9._-]{1,10}", 0..3),
        any::<bool>(),
    )
        .prop_filter("a rule needs a field", |(n, i, l, _)| {
            n.is_some() || i.is_some() || !l.is_empty()
        })
        .prop_map(|(name, image, labels, inline_labels)| {
            let mut toml = String::from("[[allow]]\n");
            let mut lines = 1;
            let mut fields = 0;
            let mut sample = Container {
                id: "0123abcd".into(),
                name: "unmatched-by-any-generated-name".into(),
                image: "dwtest/never:matched".into(),
                image_id: format!("sha256:{}", "e".repeat(64)),
                state: State::Running,
                ..Default::default()
            };
            if let Some((pattern, matching)) = &name {
                toml.push_str(&format!("name = \"{pattern}\"\n"));
                lines += 1;
                fields += 1;
                sample.name = matching.clone();
            }
            if let Some((r, any_tag)) = &image {
                // Tag rules only (a digest rule needs repo digests, tested below).
                let base = split_tag(r.written.split('@').next().unwrap()).0.to_string();
                let pattern = if *any_tag {
                    format!("{base}:*")
                } else {
                    format!("{base}:{}", r.tag.clone().unwrap_or_else(|| "latest".into()))
                };
                toml.push_str(&format!("image = \"{pattern}\"\n"));
                lines += 1;
                fields += 1;
                // The container is started with the other spelling of the same reference.
                let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
                sample.image = format!("{}:{tag}", r.name);
            }
            if !labels.is_empty() {
                fields += labels.len();
                if inline_labels {
                    let kv: Vec<String> = labels.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"")).collect();
                    toml.push_str(&format!("labels = {{ {} }}\n", kv.join(", ")));
                    lines += 1;
                } else {
                    // A sub-table, the other way TOML spells the same map.
                    toml.push_str("[allow.labels]\n");
                    lines += 1;
                    for (k, v) in &labels {
                        toml.push_str(&format!("\"{k}\" = \"{v}\"\n"));
                        lines += 1;
                    }
                }
                sample.labels = labels.into_iter().collect();
            }
            GenRule {
                toml,
                lines,
                sample,
                fields,
            }
        })
}

#[derive(Debug, Clone)]
struct GenPolicy {
    text: String,
    mode: Option<Mode>,
    action: Option<Action>,
    rules: Vec<GenRule>,
    /// Line of each rule's `[[allow]]` header.
    rule_lines: Vec<usize>,
}

fn policy() -> impl Strategy<Value = GenPolicy> {
    (
        prop::option::of(prop_oneof![Just(Mode::Enforce), Just(Mode::Audit)]),
        prop::option::of(prop_oneof![
            Just(Action::Kill),
            Just(Action::Stop),
            Just(Action::Remove)
        ]),
        prop::option::of(0u64..=300),
        prop::collection::vec(rule(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(mode, action, timeout, rules, comments)| {
            let mut text = String::new();
            let mut line = 1;
            if comments {
                text.push_str("# generated policy\n\n");
                line += 2;
            }
            if let Some(m) = mode {
                text.push_str(&format!("mode = \"{}\"\n", m.as_str()));
                line += 1;
            }
            if let Some(a) = action {
                text.push_str(&format!("action = \"{}\"\n", a.as_str()));
                line += 1;
            }
            if let Some(t) = timeout {
                text.push_str(&format!("stop_timeout_secs = {t}\n"));
                line += 1;
            }
            let mut rule_lines = Vec::new();
            for r in &rules {
                text.push('\n');
                line += 1;
                rule_lines.push(line);
                text.push_str(&r.toml);
                line += r.lines;
            }
            GenPolicy {
                text,
                mode,
                action,
                rules,
                rule_lines,
            }
        })
}

/// A container no generated rule allows: a name, image and labels no generator produces.
fn stranger() -> Container {
    Container {
        id: "feedface".into(),
        name: "ZZ_stranger".into(),
        image: "registry.invalid:1/zz/stranger:never".into(),
        image_id: format!("sha256:{}", "d".repeat(64)),
        state: State::Running,
        ..Default::default()
    }
}

/// The (line, column) of an `Invalid` error, checked to lie inside `text`.
fn assert_position_inside(text: &str, e: &PolicyError) -> Result<(usize, usize), TestCaseError> {
    match e {
        PolicyError::Invalid { line, column, .. } => {
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(
                *line >= 1 && *line <= lines.len(),
                "line {} outside 1..={} in {:?}",
                line,
                lines.len(),
                text
            );
            let width = lines[*line - 1].chars().count();
            prop_assert!(
                *column >= 1 && *column <= width + 1,
                "column {} outside 1..={} on line {}: {:?}",
                column,
                width + 1,
                line,
                text
            );
            prop_assert!(
                e.to_string().starts_with(&format!("t.toml:{line}:{column}: ")),
                "{}",
                e
            );
            Ok((*line, *column))
        }
        PolicyError::Read { .. } => Err(TestCaseError::fail("parse() returned a read error")),
    }
}

/// TOML-ish text: the policy's own vocabulary glued together at random, mostly invalid.
fn tomlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[[allow]]\n".to_string()),
        Just("[allow]\n".to_string()),
        Just("[allow.labels]\n".to_string()),
        Just("name = ".to_string()),
        Just("image = ".to_string()),
        Just("labels = { ".to_string()),
        Just(" }\n".to_string()),
        Just("mode = ".to_string()),
        Just("action = ".to_string()),
        Just("stop_timeout_secs = ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\n".to_string()),
        Just(" = ".to_string()),
        Just("# comment\n".to_string()),
        "[a-z*?\\[\\]{}!,\\\\/:@.-]{0,8}",
        "\"[a-zA-Z0-9*?\\[\\]{}!,/:@._-]{0,12}\"\n",
        "[0-9]{1,22}\n",
        "[\\PC]{0,4}",
    ];
    prop::collection::vec(piece, 0..25).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn policy_parse_never_panics_and_errors_point_inside(text in any::<String>()) {
        if let Err(e) = Policy::parse(&text, "t.toml") {
            assert_position_inside(&text, &e)?;
        }
    }

    #[test]
    fn policy_like_garbage_never_panics_and_errors_point_inside(text in tomlish()) {
        match Policy::parse(&text, "t.toml") {
            Err(e) => { assert_position_inside(&text, &e)?; }
            // Whatever is accepted has a rule, and no empty rule: it cannot allow a stranger
            // unless a pattern really is that wide.
            Ok(p) => prop_assert!(!p.rules.is_empty()),
        }
    }

    #[test]
    fn every_valid_generated_policy_parses(g in policy()) {
        let p = Policy::parse(&g.text, "t.toml");
        prop_assert!(p.is_ok(), "refused: {:?}\n{}", p.as_ref().err().map(|e| e.to_string()), g.text);
        let p = p.unwrap();
        prop_assert_eq!(p.mode, g.mode.unwrap_or(Mode::Enforce));
        prop_assert_eq!(p.action, g.action.unwrap_or(Action::Kill));
        prop_assert_eq!(p.rules.len(), g.rules.len());
        for (i, (rule, line)) in p.rules.iter().zip(&g.rule_lines).enumerate() {
            prop_assert_eq!(rule.index, i + 1);
            prop_assert_eq!(rule.line, *line, "rule {} line\n{}", i + 1, g.text);
            let head = format!("allow[{}]", i + 1);
            prop_assert!(rule.to_string().starts_with(&head), "{} vs {}", rule, head);
        }
        // Each rule allows its sample container (the image given in another spelling), and
        // the verdict names the first rule that does.
        for (i, r) in g.rules.iter().enumerate() {
            let v = evaluate(&p, &r.sample);
            prop_assert!(v.allowed(), "rule {} does not allow its sample {:?}\n{}", i + 1, r.sample, g.text);
            prop_assert!(v.rule().unwrap() <= i + 1);
        }
        prop_assert!(!allowed(&p, &stranger()), "a stranger is allowed by\n{}", g.text);
        // Windows line ends (an editor's choice) change nothing, positions included.
        let crlf = g.text.replace('\n', "\r\n");
        let q = Policy::parse(&crlf, "t.toml");
        prop_assert!(q.is_ok(), "CRLF refused: {:?}", q.as_ref().err().map(|e| e.to_string()));
        let q = q.unwrap();
        prop_assert_eq!(
            q.rules.iter().map(|r| r.line).collect::<Vec<_>>(),
            p.rules.iter().map(|r| r.line).collect::<Vec<_>>()
        );
        for r in &g.rules {
            prop_assert_eq!(evaluate(&q, &r.sample), evaluate(&p, &r.sample));
        }
    }

    #[test]
    fn an_image_rule_matches_every_spelling_of_its_reference(r in reference(), any_tag in any::<bool>()) {
        // The rule written one way, the container started the other way, and back.
        let strip = |s: &str| split_tag(s.split('@').next().unwrap()).0.to_string();
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let rule_tag = if any_tag { "*".to_string() } else { tag.clone() };
        for (rule_ref, run_ref) in [(&r.written, &r.other_spelling), (&r.other_spelling, &r.written)] {
            let text = format!("[[allow]]\nimage = \"{}:{rule_tag}\"\n", strip(rule_ref));
            let p = Policy::parse(&text, "t.toml");
            prop_assert!(p.is_ok(), "{:?}: {}", p.as_ref().err().map(|e| e.to_string()), text);
            let p = p.unwrap();
            let mut c = stranger();
            c.image = format!("{}:{tag}", strip(run_ref));
            prop_assert!(allowed(&p, &c), "{} does not allow {}", text, c.image);
            c.image = format!("{}:{tag}x", strip(run_ref));
            prop_assert_eq!(allowed(&p, &c), any_tag, "{} vs {}", text, c.image);
        }
    }

    #[test]
    fn an_injected_unknown_key_is_reported_at_its_line(g in policy(), which in any::<prop::sample::Index>()) {
        // Insert `colour = "red"` right after one rule's header.
        let i = which.index(g.rule_lines.len());
        let at = g.rule_lines[i]; // the header's line; the key goes on the next one
        let mut lines: Vec<&str> = g.text.split('\n').collect();
        lines.insert(at, "colour = \"red\"");
        let text = lines.join("\n");
        let e = Policy::parse(&text, "t.toml").err();
        prop_assert!(e.is_some(), "accepted an unknown key:\n{}", text);
        let e = e.unwrap();
        let (line, column) = assert_position_inside(&text, &e)?;
        prop_assert_eq!((line, column), (at + 1, 1), "{}\n{}", e, text);
        prop_assert!(e.to_string().contains("colour"), "{}", e);
    }

    #[test]
    fn a_truncated_file_never_empties_the_policy_or_admits_a_stranger(g in policy(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(g.text.len() + 1);
        let Some(prefix) = g.text.get(..cut) else { return Ok(()) };
        match Policy::parse(prefix, "t.toml") {
            Err(e) => { assert_position_inside(prefix, &e)?; }
            Ok(p) => {
                prop_assert!(!p.rules.is_empty());
                prop_assert!(!allowed(&p, &stranger()), "prefix admits a stranger:\n{}", prefix);
                // Single-field rules cut at a line end are the same rules or fewer: nothing
                // the whole file denies becomes allowed. (A multi-field rule cut after its
                // first field IS wider: see docs/state-controller.md on in-place writes.)
                if g.rules.iter().all(|r| r.fields == 1) {
                    prop_assert!(p.rules.len() <= g.rules.len());
                }
            }
        }
    }

    #[test]
    fn digest_rules_match_exactly_their_digest(r in reference(), other in digest()) {
        let d = r.digest.clone().unwrap_or_else(|| format!("sha256:{}", "a".repeat(64)));
        prop_assume!(d != other);
        let repo = split_tag(r.written.split('@').next().unwrap()).0.to_string();
        let text = format!("[[allow]]\nimage = \"{repo}@{d}\"\n");
        let p = Policy::parse(&text, "t.toml");
        prop_assert!(p.is_ok(), "{:?}: {}", p.err().map(|e| e.to_string()), text);
        let p = p.unwrap();
        let mut c = stranger();
        c.image = format!("{}:whatever", r.name);
        prop_assert!(!allowed(&p, &c));
        c.image_digests = vec![format!("{}@{other}", r.name)];
        prop_assert!(!allowed(&p, &c), "wrong digest allowed");
        c.image_digests.push(format!("{}@{d}", r.other_spelling.split('@').next().map(|s| split_tag(s).0).unwrap()));
        prop_assert!(allowed(&p, &c), "{:?} not allowed by\n{}", c.image_digests, text);
    }
}
