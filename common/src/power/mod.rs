//! Host power: what a container asks of the host (privileged, host namespaces, host paths,
//! capabilities, devices, unconfined security options, sysctls, and for the `restricted`
//! profile its user, no-new-privileges and kept capabilities), read into canonical facts,
//! and how a rule's grants judge them. Pure: no I/O; what needs a lookup (a container whose
//! namespace is joined, a named volume's options, an image's user) is a [`Reference`] the
//! caller resolves and hands back ([`Power::resolve`]), and anything not resolved makes the
//! facts unknown, never empty (fail closed).
//!
//! # Layout
//! - [`spec`]: what the Engine API carries ([`HostConfigSpec`]: a create body's or an
//!   inspect's `HostConfig`, the mounts, devices, security options), before normalisation.
//!   The authorization plugin fills it with Go-exact decoding, [`inspect`] from an inspect.
//! - [`facts`]: [`Power`], the canonical facts, built from a spec ([`Power::from_host_config`],
//!   [`Power::from_exec`]), merged, and resolved.
//! - [`ask`]: [`Ask`], one power asked, with its operator text and the TOML that grants it;
//!   [`Asks`], what a container asks under a [`Profile`].
//! - [`grant`]: [`Grants`], one `[[allow]]` rule's grant keys, and [`Grants::check`].
//! - [`read`]: how each spec field reads as asks (binds, mounts, `local` volume options,
//!   security options, masked paths, sysctls: the safe set).
//! - [`path`]: host paths cleaned like Go's `filepath.Clean`, `/var/run` = `/run`, the
//!   engine's sockets; [`caps`]: capability names as the engine normalises them, its default
//!   set; [`inspect`]: [`Power`] from a container inspect (the event path); [`user`]: who a
//!   user string names.
//!
//! The rules, with the reasons for each, are in docs/policy.md ("Host power").

pub mod ask;
pub mod caps;
pub mod facts;
pub mod grant;
pub mod inspect;
pub mod path;
pub mod read;
pub mod spec;
pub mod user;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use ask::{Ask, Asks, Via};
pub use facts::{MAX_DEPTH, Power, Reference, Resolved, Unresolvable, User, VolumeFacts};
pub use grant::{Grants, Refused};
pub use inspect::{EngineDefaults, from_inspect};
pub use spec::{
    BindOptionsSpec, DeviceRequestSpec, DeviceSpec, DriverSpec, HostConfigSpec, MountSpec, VolumeOptionsSpec,
};

/// How much host power the policy lets a rule's grants hand out, like Kubernetes' Pod
/// Security Standards: `baseline` (the default) denies known privilege escalations unless
/// granted; `restricted` also wants a non-root user, no-new-privileges and every capability
/// dropped but `NET_BIND_SERVICE`; `privileged` judges identity only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Baseline,
    Restricted,
    Privileged,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Restricted => "restricted",
            Profile::Privileged => "privileged",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespace a container can share with the host (`--pid=host` and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    Pid,
    Network,
    Ipc,
    Uts,
    Userns,
    Cgroup,
}

impl Namespace {
    pub const ALL: [Namespace; 6] = [
        Namespace::Pid,
        Namespace::Network,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Userns,
        Namespace::Cgroup,
    ];

    /// The name in `host_namespaces = [...]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Pid => "pid",
            Namespace::Network => "network",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Userns => "userns",
            Namespace::Cgroup => "cgroup",
        }
    }

    /// The grant name, exactly as written (one spelling: a typo is an error, not a miss).
    pub fn parse(name: &str) -> Option<Namespace> {
        Namespace::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// Whether `container:<name>` joins another container's namespace of this kind (the
    /// engine allows it for pid, network and ipc).
    pub fn joinable(self) -> bool {
        matches!(self, Namespace::Pid | Namespace::Network | Namespace::Ipc)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A confinement a container can switch off (`unconfined = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unconfined {
    /// `seccomp=unconfined`, or a custom profile sent with the request (it can allow every
    /// system call).
    Seccomp,
    /// `apparmor=unconfined`.
    AppArmor,
    /// SELinux labelling off (`label=disable`) or a custom user, role or type.
    Label,
    /// `/proc` and `/sys` paths unmasked or writable (`systempaths=unconfined`, which the
    /// CLI sends as `MaskedPaths`/`ReadonlyPaths` that leave the defaults out).
    SystemPaths,
    /// `writable-cgroups`: the cgroup filesystem mounted read-write.
    Cgroups,
}

impl Unconfined {
    pub const ALL: [Unconfined; 5] = [
        Unconfined::Seccomp,
        Unconfined::AppArmor,
        Unconfined::Label,
        Unconfined::SystemPaths,
        Unconfined::Cgroups,
    ];

    /// The name in `unconfined = [...]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unconfined::Seccomp => "seccomp",
            Unconfined::AppArmor => "apparmor",
            Unconfined::Label => "label",
            Unconfined::SystemPaths => "systempaths",
            Unconfined::Cgroups => "cgroups",
        }
    }

    pub fn parse(name: &str) -> Option<Unconfined> {
        Unconfined::ALL.into_iter().find(|u| u.as_str() == name)
    }
}

impl fmt::Display for Unconfined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
