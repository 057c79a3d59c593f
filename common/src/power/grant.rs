//! One `[[allow]]` rule's grants of host power ([`Grants`]), each entry checked when the
//! policy is parsed (the `add_*` methods give the message, the parser adds the position),
//! and how they judge what a container asks ([`Grants::check`]).
//!
//! Matching, as docs/policy.md documents it:
//! - `mounts`: globs over cleaned absolute paths (`*` stays within one path component, `**`
//!   crosses them, `X/**` also covers `X` itself), `/var/run` read as `/run` on both sides;
//!   `:ro` grants read-only mounts only. A bind is matched by its own path, so a directory
//!   above a granted path is not granted by it. A bind of an engine socket, or of a directory
//!   holding one, also needs an entry naming the socket itself, without wildcards: `/**` does
//!   not hand out the engine.
//! - `capabilities`: names compared as the engine compares them; `ALL` grants all, and only
//!   `ALL` grants `--cap-add=ALL`.
//! - `devices`: device path globs, `gpu`, `cdi:<glob>`, or a cgroup rule that covers the one
//!   asked (`a` any type, `*` any number, access a superset).
//! - `sysctls`: globs over dotted names (`*` crosses dots: `net.*`).

use std::collections::BTreeSet;
use std::fmt;

use globset::{GlobBuilder, GlobMatcher};

use super::ask::{Ask, Asks};
use super::facts::Power;
use super::{Namespace, Profile, Unconfined, caps, path, read};

/// Why a rule's grants do not allow what a container asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The first ask (in [`Ask`]'s order) the rule does not grant, and the grant that
    /// would (TOML).
    Ungranted { ask: Box<Ask>, grant: String },
    /// Every known ask is granted, but not everything is known.
    Unknown { missing: Vec<String> },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Ungranted { ask, grant } => write!(f, "{ask} (not granted: {grant})"),
            Refused::Unknown { missing } => write!(f, "host power not known: {}", missing.join("; ")),
        }
    }
}

/// A glob over cleaned absolute paths (`mounts`, device paths).
#[derive(Debug, Clone)]
struct PathGlob {
    /// As written, for messages.
    text: String,
    read_only: bool,
    matcher: GlobMatcher,
    /// For `X/**`: `X` itself.
    dir: Option<GlobMatcher>,
    /// The canonical path when written without wildcards: the only kind of entry that
    /// grants an engine socket.
    literal: Option<String>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn glob(text: &str, literal_separator: bool) -> Result<GlobMatcher, String> {
    GlobBuilder::new(text)
        .literal_separator(literal_separator)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("bad glob {text:?}: {}", e.kind()))
}

impl PathGlob {
    fn parse(text: &str, ro_allowed: bool) -> Result<PathGlob, String> {
        let (pattern, read_only) = match text.strip_suffix(":ro") {
            Some(p) if ro_allowed => (p, true),
            _ => (text, false),
        };
        if !pattern.starts_with('/') {
            return Err(format!("{text:?}: a host path must be absolute (start with /)"));
        }
        if pattern != "/"
            && pattern
                .get(1..)
                .unwrap_or("")
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(format!(
                "{text:?}: write the path clean, as {:?} (no //, ., .. or trailing /)",
                path::clean(pattern)
            ));
        }
        let canon = if pattern == "/var/run" {
            "/run".to_string()
        } else if let Some(rest) = pattern.strip_prefix("/var/run/") {
            format!("/run/{rest}")
        } else {
            pattern.to_string()
        };
        let matcher = glob(&canon, true)?;
        let dir = match canon.strip_suffix("/**") {
            Some("") => Some(glob("/", true)?),
            Some(d) => Some(glob(d, true)?),
            None => None,
        };
        Ok(PathGlob {
            text: text.to_string(),
            read_only,
            literal: (!has_glob(&canon)).then(|| canon.clone()),
            matcher,
            dir,
        })
    }

    /// Whether `canon` (a canonical path) matches.
    fn matches(&self, canon: &str) -> bool {
        self.matcher.is_match(canon) || self.dir.as_ref().is_some_and(|d| d.is_match(canon))
    }

    /// Whether it allows a mount of `canon`, read-only or not.
    fn allows(&self, canon: &str, read_only: bool) -> bool {
        self.matches(canon) && (read_only || !self.read_only)
    }
}

/// A device cgroup rule: `type major:minor access` (`a` any type, `*` any number).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupRule {
    kind: char,
    major: Option<u64>,
    minor: Option<u64>,
    access: String,
}

impl CgroupRule {
    /// The engine's grammar: `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`.
    fn parse(text: &str) -> Option<CgroupRule> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [kind, numbers, access] = parts.as_slice() else {
            return None;
        };
        let kind = match *kind {
            "a" | "b" | "c" => kind.chars().next()?,
            _ => return None,
        };
        let (major, minor) = numbers.split_once(':')?;
        let number = |n: &str| -> Option<Option<u64>> {
            if n == "*" {
                Some(None)
            } else if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                n.parse().ok().map(Some)
            } else {
                None
            }
        };
        if access.is_empty() || access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return None;
        }
        Some(CgroupRule {
            kind,
            major: number(major)?,
            minor: number(minor)?,
            access: access.to_string(),
        })
    }

    fn covers(&self, ask: &CgroupRule) -> bool {
        (self.kind == 'a' || self.kind == ask.kind)
            && (self.major.is_none() || self.major == ask.major)
            && (self.minor.is_none() || self.minor == ask.minor)
            && ask.access.chars().all(|c| self.access.contains(c))
    }
}

/// One `devices` entry.
#[derive(Debug, Clone)]
enum DeviceGrant {
    Path(PathGlob),
    Gpu,
    Cdi { text: String, matcher: GlobMatcher },
    Rule { text: String, rule: CgroupRule },
}

impl DeviceGrant {
    fn text(&self) -> &str {
        match self {
            DeviceGrant::Path(p) => &p.text,
            DeviceGrant::Gpu => "gpu",
            DeviceGrant::Cdi { text, .. } | DeviceGrant::Rule { text, .. } => text,
        }
    }
}

/// A glob over dotted sysctl names.
#[derive(Debug, Clone)]
struct NameGlob {
    text: String,
    matcher: GlobMatcher,
}

/// One `[[allow]]` rule's grants of host power. Empty (the default) grants nothing: a
/// container matched by the rule must ask for nothing beyond what the profile allows.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    privileged: bool,
    host_namespaces: BTreeSet<Namespace>,
    mounts: Vec<PathGlob>,
    capabilities: BTreeSet<String>,
    devices: Vec<DeviceGrant>,
    unconfined: BTreeSet<Unconfined>,
    sysctls: Vec<NameGlob>,
    run_as_root: bool,
    allow_privilege_escalation: bool,
}

impl Grants {
    /// `privileged = true|false`.
    pub fn set_privileged(&mut self, on: bool) {
        self.privileged = on;
    }

    /// One `host_namespaces` entry: `pid`, `network`, `ipc`, `uts`, `userns`, `cgroup`.
    pub fn add_host_namespace(&mut self, name: &str) -> Result<(), String> {
        let ns = Namespace::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Namespace::ALL.iter().map(|n| n.as_str()).collect();
            format!("unknown namespace {name:?} (one of {})", known.join(", "))
        })?;
        self.host_namespaces.insert(ns);
        Ok(())
    }

    /// One `mounts` entry: an absolute, clean path glob, `:ro` for read-only mounts only.
    pub fn add_mount(&mut self, text: &str) -> Result<(), String> {
        self.mounts.push(PathGlob::parse(text, true)?);
        Ok(())
    }

    /// One `capabilities` entry: a capability in any spelling the engine accepts, or `ALL`.
    pub fn add_capability(&mut self, name: &str) -> Result<(), String> {
        let c = caps::normalise(name);
        if !caps::is_known(&c) {
            return Err(format!("unknown capability {name:?}"));
        }
        self.capabilities.insert(c);
        Ok(())
    }

    /// One `devices` entry: a device path glob (`/dev/fuse`, `/dev/nvidia*`), `gpu`,
    /// `cdi:<glob>`, or a cgroup rule (`c 10:229 rwm`).
    pub fn add_device(&mut self, text: &str) -> Result<(), String> {
        let g = if text == "gpu" {
            DeviceGrant::Gpu
        } else if let Some(id) = text.strip_prefix("cdi:") {
            if id.is_empty() {
                return Err("cdi: needs a device name (cdi:vendor.com/class=name)".into());
            }
            DeviceGrant::Cdi {
                text: text.to_string(),
                matcher: glob(id, false)?,
            }
        } else if text.starts_with('/') {
            DeviceGrant::Path(PathGlob::parse(text, false)?)
        } else if let Some(rule) = CgroupRule::parse(text) {
            DeviceGrant::Rule {
                text: read::device_rule(text),
                rule,
            }
        } else {
            return Err(format!(
                "{text:?}: a device grant is an absolute device path (globs allowed), \"gpu\", \"cdi:<vendor.com/class=name>\" or a cgroup rule like \"c 10:229 rwm\""
            ));
        };
        self.devices.push(g);
        Ok(())
    }

    /// One `unconfined` entry: `seccomp`, `apparmor`, `label`, `systempaths`, `cgroups`.
    pub fn add_unconfined(&mut self, name: &str) -> Result<(), String> {
        let u = Unconfined::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Unconfined::ALL.iter().map(|u| u.as_str()).collect();
            format!("unknown confinement {name:?} (one of {})", known.join(", "))
        })?;
        self.unconfined.insert(u);
        Ok(())
    }

    /// One `sysctls` entry: a glob over dotted names (`net.core.*`; `/` reads as `.`).
    pub fn add_sysctl(&mut self, text: &str) -> Result<(), String> {
        let name = read::sysctl_name(text);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-*?[]{},!".contains(c))
        {
            return Err(format!("{text:?} is not a sysctl name or glob"));
        }
        self.sysctls.push(NameGlob {
            matcher: glob(&name, false)?,
            text: text.to_string(),
        });
        Ok(())
    }

    /// `run_as_root = true|false` (`restricted` only).
    pub fn set_run_as_root(&mut self, on: bool) {
        self.run_as_root = on;
    }

    /// `allow_privilege_escalation = true|false` (`restricted` only).
    pub fn set_allow_privilege_escalation(&mut self, on: bool) {
        self.allow_privilege_escalation = on;
    }

    /// Whether it grants nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.privileged
            && self.host_namespaces.is_empty()
            && self.mounts.is_empty()
            && self.capabilities.is_empty()
            && self.devices.is_empty()
            && self.unconfined.is_empty()
            && self.sysctls.is_empty()
            && !self.run_as_root
            && !self.allow_privilege_escalation
    }

    /// Whether it grants this one ask.
    pub fn grants(&self, ask: &Ask) -> bool {
        match ask {
            Ask::Privileged => self.privileged,
            Ask::HostNamespace(ns) => self.host_namespaces.contains(ns),
            Ask::HostPath {
                path: p, read_only, ..
            } => self.grants_path(p, *read_only),
            Ask::Capability(c) | Ask::KeptCapability(c) => {
                self.capabilities.contains(caps::ALL) || self.capabilities.contains(c)
            }
            Ask::Device(d) => {
                let d = path::clean(d);
                self.devices
                    .iter()
                    .any(|g| matches!(g, DeviceGrant::Path(p) if p.matches(&d)))
            }
            Ask::DeviceRequest(r) => match r.strip_prefix("cdi:") {
                Some(id) => self
                    .devices
                    .iter()
                    .any(|g| matches!(g, DeviceGrant::Cdi { matcher, .. } if matcher.is_match(id))),
                None => self.devices.iter().any(|g| matches!(g, DeviceGrant::Gpu)),
            },
            Ask::DeviceRule(r) => CgroupRule::parse(r).is_some_and(|asked| {
                self.devices
                    .iter()
                    .any(|g| matches!(g, DeviceGrant::Rule { rule, .. } if rule.covers(&asked)))
            }),
            Ask::Unconfined { what, .. } => self.unconfined.contains(what),
            Ask::Sysctl(s) => self.sysctls.iter().any(|g| g.matcher.is_match(s)),
            Ask::RunAsRoot { .. } => self.run_as_root,
            Ask::PrivilegeEscalation => self.allow_privilege_escalation,
        }
    }

    /// A host path: some entry allows the path itself, and every engine socket the mount
    /// exposes is named by an entry of its own.
    fn grants_path(&self, written: &str, read_only: bool) -> bool {
        let canon = path::canonical(written);
        if !self.mounts.iter().any(|g| g.allows(&canon, read_only)) {
            return false;
        }
        path::held_sockets(written).into_iter().all(|s| {
            self.mounts
                .iter()
                .any(|g| g.literal.as_deref() == Some(s) && (read_only || !g.read_only))
        })
    }

    /// Judges what a container asks (from [`Power::asks`]): `Ok` when every ask is granted
    /// and everything is known; else the first ask not granted (which settles it even when
    /// something is unknown), or what is unknown.
    pub fn check(&self, asks: &Asks) -> Result<(), Refused> {
        if let Some(a) = asks.asks.iter().find(|a| !self.grants(a)) {
            return Err(Refused::Ungranted {
                ask: Box::new(a.clone()),
                grant: a.grant(),
            });
        }
        if !asks.unknown.is_empty() {
            return Err(Refused::Unknown {
                missing: asks.unknown.clone(),
            });
        }
        Ok(())
    }

    /// [`Power::asks`] and [`Grants::check`] in one: what the container asks, all granted.
    /// (When several rules are tried, compute the asks once and call `check` per rule.)
    pub fn judge(&self, power: &Power, profile: Profile) -> Result<Vec<Ask>, Refused> {
        let asks = power.asks(profile);
        self.check(&asks)?;
        Ok(asks.asks)
    }
}

impl fmt::Display for Grants {
    /// The grant keys as TOML (`privileged = true, mounts = ["/var/log/**"]`), or
    /// `no host power` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
            let quoted: Vec<String> = items.map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        }
        let mut parts = Vec::new();
        if self.privileged {
            parts.push("privileged = true".to_string());
        }
        if !self.host_namespaces.is_empty() {
            parts.push(format!(
                "host_namespaces = {}",
                list(self.host_namespaces.iter().map(|n| n.as_str()))
            ));
        }
        if !self.mounts.is_empty() {
            parts.push(format!(
                "mounts = {}",
                list(self.mounts.iter().map(|m| m.text.as_str()))
            ));
        }
        if !self.capabilities.is_empty() {
            parts.push(format!(
                "capabilities = {}",
                list(self.capabilities.iter().map(String::as_str))
            ));
        }
        if !self.devices.is_empty() {
            parts.push(format!(
                "devices = {}",
                list(self.devices.iter().map(DeviceGrant::text))
            ));
        }
        if !self.unconfined.is_empty() {
            parts.push(format!(
                "unconfined = {}",
                list(self.unconfined.iter().map(|u| u.as_str()))
            ));
        }
        if !self.sysctls.is_empty() {
            parts.push(format!(
                "sysctls = {}",
                list(self.sysctls.iter().map(|s| s.text.as_str()))
            ));
        }
        if self.run_as_root {
            parts.push("run_as_root = true".to_string());
        }
        if self.allow_privilege_escalation {
            parts.push("allow_privilege_escalation = true".to_string());
        }
        if parts.is_empty() {
            f.write_str("no host power")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}
