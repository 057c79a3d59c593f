//! Registry credentials from a Docker `config.json` the operator names: its `auths` map
//! (`auth` = base64 of `user:password`, or `username` + `password`), keyed by registry host
//! (`https://index.docker.io/v1/` is Docker Hub). Credential helpers (`credsStore`,
//! `credHelpers`) are not run: that would execute programs named by a file; they are noted.
//!
//! Secrets never reach a log line, an error or `Debug` output: errors name the file and the
//! registry key, never a value (the JSON is read as a tree and checked here, so the
//! decoder's own messages, which quote values, are never shown).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hyper::header::HeaderValue;
use serde_json::Value;

/// Why the credentials file cannot be used. Names the file and the registry, never a value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("registry config {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// User and password for one registry. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Basic {
    user: String,
    password: String,
}

impl fmt::Debug for Basic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Basic(<redacted>)")
    }
}

impl Basic {
    /// `Authorization: Basic …`, marked sensitive (hyper keeps it out of its debug output).
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password));
        let mut v = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// The credentials of a `config.json`, by registry. Empty by default (anonymous pulls).
#[derive(Clone, Default)]
pub struct RegistryCredentials {
    by_registry: BTreeMap<String, Basic>,
    /// What was left out and why, for one log line at start (no secrets).
    notes: Vec<String>,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("registries", &self.registries())
            .finish()
    }
}

/// The key a registry's credentials are filed under: its host (and port), without scheme or
/// path, lowercase; Docker Hub's several names are `docker.io`.
pub fn registry_key(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        _ => host,
    }
}

impl RegistryCredentials {
    /// No credentials: every registry is asked anonymously.
    pub fn none() -> RegistryCredentials {
        RegistryCredentials::default()
    }

    /// Reads a Docker `config.json`.
    pub fn load(path: &Path) -> Result<RegistryCredentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a `config.json`; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<RegistryCredentials, CredentialsError> {
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // serde_json's syntax errors give a line and column, never the text.
        let root: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("not JSON (line {}, column {})", e.line(), e.column())))?;
        let root = root
            .as_object()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        let mut out = RegistryCredentials::default();
        if root.contains_key("credsStore") || root.contains_key("credHelpers") {
            out.notes.push(
                "credsStore/credHelpers are not run: only credentials written in `auths` are used".into(),
            );
        }
        let Some(auths) = root.get("auths") else {
            return Ok(out);
        };
        let auths = auths
            .as_object()
            .ok_or_else(|| invalid("`auths` is not an object".into()))?;
        for (key, entry) in auths {
            let entry = entry
                .as_object()
                .ok_or_else(|| invalid(format!("auths.{key:?} is not an object")))?;
            let text_field = |name: &str| -> Result<Option<&str>, CredentialsError> {
                match entry.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if s.is_empty() => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s)),
                    Some(_) => Err(invalid(format!("auths.{key:?}.{name} is not a string"))),
                }
            };
            let basic = if let Some(auth) = text_field("auth")? {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| invalid(format!("auths.{key:?}.auth is not base64 of user:password")))?;
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| invalid(format!("auths.{key:?}.auth is not base64 of user:password")))?;
                Some(Basic {
                    user: user.to_string(),
                    password: password.to_string(),
                })
            } else {
                match (text_field("username")?, text_field("password")?) {
                    (Some(user), Some(password)) => Some(Basic {
                        user: user.to_string(),
                        password: password.to_string(),
                    }),
                    (Some(_), None) | (None, Some(_)) => {
                        return Err(invalid(format!(
                            "auths.{key:?} has a username or a password without the other"
                        )));
                    }
                    (None, None) => None,
                }
            };
            match basic {
                Some(b) => {
                    out.by_registry.insert(registry_key(key), b);
                }
                None if text_field("identitytoken")?.is_some() || text_field("registrytoken")?.is_some() => {
                    out.notes.push(format!(
                        "auths.{key:?}: identity and registry tokens are not supported; left out"
                    ));
                }
                None => out
                    .notes
                    .push(format!("auths.{key:?} holds no credentials; left out")),
            }
        }
        Ok(out)
    }

    /// The registries that have credentials (no secrets): for a log line at start.
    pub fn registries(&self) -> Vec<String> {
        self.by_registry.keys().cloned().collect()
    }

    /// What was left out of the file and why (no secrets).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub(crate) fn for_registry(&self, registry: &str) -> Option<&Basic> {
        self.by_registry.get(&registry_key(registry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistryCredentials, CredentialsError> {
        RegistryCredentials::parse(Path::new("/etc/dockwarden/config.json"), text)
    }

    #[test]
    fn auth_and_username_password_forms_and_docker_hub_names() {
        let c = parse(
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
                "ghcr.io":{"username":"bot","password":"s3cret"},
                "127.0.0.1:5000":{"auth":"","identitytoken":"tok"}
            },"credsStore":"desktop"}"#,
        )
        .unwrap();
        assert_eq!(c.registries(), vec!["docker.io", "ghcr.io"]);
        let hub = c.for_registry("docker.io").unwrap();
        assert_eq!((hub.user.as_str(), hub.password.as_str()), ("user", "pa:ss"));
        assert!(c.for_registry("registry-1.docker.io").is_some());
        assert!(c.for_registry("GHCR.io").is_some());
        assert!(c.for_registry("127.0.0.1:5000").is_none());
        assert_eq!(c.notes().len(), 2, "{:?}", c.notes());
        let h = c.for_registry("ghcr.io").unwrap().header().unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Basic Ym90OnMzY3JldA==");
    }

    #[test]
    fn errors_and_debug_never_show_a_secret() {
        let c = parse(r#"{"auths":{"ghcr.io":{"username":"bot","password":"s3cret"}}}"#).unwrap();
        let shown = format!("{c:?} {:?}", c.for_registry("ghcr.io"));
        assert!(!shown.contains("s3cret") && !shown.contains("bot"), "{shown}");
        for (text, want) in [
            (
                r#"{"auths":{"ghcr.io":{"auth":"s3cret-not-base64!"}}}"#,
                "auths.\"ghcr.io\".auth is not base64",
            ),
            (
                r#"{"auths":{"ghcr.io":{"auth":"czNjcmV0"}}}"#,
                "not base64 of user:password",
            ),
            (
                r#"{"auths":{"ghcr.io":{"username":"s3cret"}}}"#,
                "without the other",
            ),
            (
                r#"{"auths":{"ghcr.io":{"password":7}}}"#,
                "password is not a string",
            ),
            (r#"{"auths":{"ghcr.io":{"password":"s3cret""#, "not JSON (line 1"),
            (r#"["s3cret"]"#, "not a JSON object"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("s3cret") && !e.contains("czNjcmV0"), "{e}");
            assert!(e.contains("/etc/dockwarden/config.json"), "{e}");
        }
    }

    #[test]
    fn keys_are_hosts() {
        assert_eq!(registry_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_key("Registry.Example.com/v2/"), "registry.example.com");
    }
}
