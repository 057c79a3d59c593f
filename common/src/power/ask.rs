//! One power asked ([`Ask`]), typed so that it travels to every gate and is made into text in
//! one place: its operator text (`Display`: `host pid namespace`, `host path
//! /var/run/docker.sock (read-write)`, `capability SYS_ADMIN`...) and the grant that would
//! allow it ([`Ask::grant`]: `host_namespaces = ["pid"]`), for denial messages.

use std::fmt;

use super::path;
use super::{Namespace, Unconfined};

/// Where a host path comes from, for the operator's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// A `Binds` entry (`-v /src:/dst`).
    Bind,
    /// A `Mounts` entry of type `bind` (`--mount type=bind`).
    Mount,
    /// A named `local` volume whose options mount a host path or filesystem.
    Volume(String),
    /// Volume options given inline with the request (`--mount ...,volume-opt=...`).
    InlineVolume,
    /// `--volumes-from` this container.
    VolumesFrom(String),
    /// The pid namespace of this container, joined (its processes' mounts are reachable).
    JoinedPid(String),
    /// A `local` volume (empty: options in the request) mounting a filesystem of `kind`
    /// from `device` (`ext4` on `/dev/sda1`, `proc`): judged as the host's root.
    Filesystem {
        volume: String,
        kind: String,
        device: String,
    },
}

/// One power a container asks of the host. The order of the variants is the order in
/// which asks are listed and judged: the first ungranted one is the one a denial names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ask {
    /// `--privileged` (or `exec --privileged`).
    Privileged,
    /// A namespace shared with the host (`--pid=host`), or joined from a container that
    /// shares it.
    HostNamespace(Namespace),
    /// A host path mounted in: `path` cleaned as written (`/var/run` not rewritten, so the
    /// text reads as the request did), read-only or not.
    HostPath { path: String, read_only: bool, via: Via },
    /// A capability beyond the engine's default set (`ALL` for `--cap-add=ALL`).
    Capability(String),
    /// A host device (`--device`), cleaned path.
    Device(String),
    /// A device request: `gpu` (`--gpus`), `cdi:vendor.com/class=name`.
    DeviceRequest(String),
    /// A device cgroup rule (`--device-cgroup-rule`), whitespace normalised.
    DeviceRule(String),
    /// A confinement switched off; `detail` is the option as the request spelled it.
    Unconfined { what: Unconfined, detail: String },
    /// A sysctl outside the Kubernetes "safe" set.
    Sysctl(String),
    /// `restricted`: runs as root, or as a user name that cannot be proven non-root. `user`
    /// is the user as set (empty: none, the image's default, root).
    RunAsRoot { user: String },
    /// `restricted`: `no-new-privileges` not set.
    PrivilegeEscalation,
    /// `restricted`: a capability kept beyond `NET_BIND_SERVICE` (not dropped, or added).
    KeptCapability(String),
}

impl Ask {
    /// The grant (TOML, as one writes it in an `[[allow]]` rule) that would allow this ask.
    pub fn grant(&self) -> String {
        match self {
            Ask::Privileged => "privileged = true".into(),
            Ask::HostNamespace(ns) => format!("host_namespaces = [\"{ns}\"]"),
            Ask::HostPath {
                path: p, read_only, ..
            } => {
                let suffix = if *read_only { ":ro" } else { "" };
                let mut entries = vec![format!("\"{p}{suffix}\"")];
                for s in path::held_sockets(p) {
                    if path::canonical(p) != s {
                        entries.push(format!("\"{s}{suffix}\""));
                    }
                }
                format!("mounts = [{}]", entries.join(", "))
            }
            Ask::Capability(c) | Ask::KeptCapability(c) => format!("capabilities = [\"{c}\"]"),
            Ask::Device(d) | Ask::DeviceRequest(d) | Ask::DeviceRule(d) => format!("devices = [\"{d}\"]"),
            Ask::Unconfined { what, .. } => format!("unconfined = [\"{what}\"]"),
            Ask::Sysctl(s) => format!("sysctls = [\"{s}\"]"),
            Ask::RunAsRoot { .. } => "run_as_root = true".into(),
            Ask::PrivilegeEscalation => "allow_privilege_escalation = true".into(),
        }
    }

    /// The grant key this ask needs (`mounts`, `capabilities`...), for metrics and logs.
    pub fn key(&self) -> &'static str {
        match self {
            Ask::Privileged => "privileged",
            Ask::HostNamespace(_) => "host_namespaces",
            Ask::HostPath { .. } => "mounts",
            Ask::Capability(_) | Ask::KeptCapability(_) => "capabilities",
            Ask::Device(_) | Ask::DeviceRequest(_) | Ask::DeviceRule(_) => "devices",
            Ask::Unconfined { .. } => "unconfined",
            Ask::Sysctl(_) => "sysctls",
            Ask::RunAsRoot { .. } => "run_as_root",
            Ask::PrivilegeEscalation => "allow_privilege_escalation",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Bind | Via::Mount => Ok(()),
            Via::Volume(v) => write!(f, ", volume {v}"),
            Via::InlineVolume => f.write_str(", volume options in the request"),
            Via::VolumesFrom(c) => write!(f, ", volumes-from {c}"),
            Via::JoinedPid(c) => write!(f, ", reachable through the pid namespace of {c}"),
            Via::Filesystem { volume, kind, device } if volume.is_empty() => write!(
                f,
                ", a {kind:?} filesystem from {device:?} in the request's volume options, judged as the host's root"
            ),
            Via::Filesystem { volume, kind, device } => write!(
                f,
                ", volume {volume}: a {kind:?} filesystem from {device:?}, judged as the host's root"
            ),
        }
    }
}

impl fmt::Display for Ask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ask::Privileged => f.write_str("privileged"),
            Ask::HostNamespace(ns) => write!(f, "host {ns} namespace"),
            Ask::HostPath {
                path: p,
                read_only,
                via,
            } => {
                let rw = if *read_only { "read-only" } else { "read-write" };
                write!(f, "host path {p} ({rw}{via})")?;
                let held: Vec<&str> = path::held_sockets(p)
                    .into_iter()
                    .filter(|s| path::canonical(p) != *s)
                    .collect();
                if !held.is_empty() {
                    write!(f, " holding the engine socket {}", held.join(", "))?;
                }
                Ok(())
            }
            Ask::Capability(c) => write!(f, "capability {c}"),
            Ask::Device(d) => write!(f, "device {d}"),
            Ask::DeviceRequest(d) => write!(f, "device request {d}"),
            Ask::DeviceRule(r) => write!(f, "device cgroup rule {r}"),
            Ask::Unconfined { what, detail } => {
                write!(f, "{what} unconfined")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            Ask::Sysctl(s) => write!(f, "sysctl {s}"),
            Ask::RunAsRoot { user } => match super::user::user_kind(user) {
                super::user::UserKind::Root if user.is_empty() => {
                    f.write_str("runs as root (no user set, in the request or the image)")
                }
                super::user::UserKind::Root => write!(f, "runs as root (user {user:?})"),
                _ => write!(
                    f,
                    "runs as user {user:?}, which cannot be proven non-root (restricted wants a numeric non-zero uid)"
                ),
            },
            Ask::PrivilegeEscalation => f.write_str("privilege escalation (no-new-privileges not set)"),
            Ask::KeptCapability(c) => write!(
                f,
                "keeps capability {c} (restricted drops ALL but NET_BIND_SERVICE)"
            ),
        }
    }
}

/// What a container asks under one profile: every ask known from the facts, in order, and
/// what is not known (a reference not resolved, a field that could not be read). A rule
/// grants the container only when it grants every ask and nothing is unknown; one known
/// ask it does not grant settles it even when something is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asks {
    pub asks: Vec<Ask>,
    /// Why the facts are not whole; empty when they are.
    pub unknown: Vec<String>,
}

impl Asks {
    /// Nothing asked and nothing unknown.
    pub fn is_empty(&self) -> bool {
        self.asks.is_empty() && self.unknown.is_empty()
    }

    /// Whether every fact is known.
    pub fn is_known(&self) -> bool {
        self.unknown.is_empty()
    }
}

impl fmt::Display for Asks {
    /// `host pid namespace; capability SYS_ADMIN` (or `nothing`), then what is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.asks.is_empty() {
            f.write_str("nothing")?;
        }
        for (i, a) in self.asks.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{a}")?;
        }
        if !self.unknown.is_empty() {
            write!(f, "; unknown: {}", self.unknown.join("; "))?;
        }
        Ok(())
    }
}
