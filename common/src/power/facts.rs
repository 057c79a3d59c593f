//! [`Power`]: everything a container (or an exec) asks of the host, as canonical facts. Built
//! from what the Engine API carries ([`Power::from_host_config`], [`Power::from_exec`],
//! [`super::inspect::from_inspect`]); what needs a lookup is kept as a [`Reference`] for the
//! caller to resolve ([`Power::references`], [`Power::resolve`]); [`Power::asks`] lists what
//! is asked under a profile.
//!
//! Resolution is the caller's I/O, in rounds, because a resolved container can name more:
//! ```text
//! while !power.references(profile).is_empty() {
//!     answers = look up each reference (inspect the container, the volume, the image)
//!     power.resolve(&|r| answers.get(r).cloned())   // None: could not be found out
//! }
//! ```
//! A reference the lookup cannot answer makes the facts unknown (the container is then not
//! granted), never empty. Chains deeper than [`MAX_DEPTH`] are unknown too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::ask::{Ask, Asks, Via};
use super::read::{self, Bind};
use super::spec::HostConfigSpec;
use super::user::{UserKind, user_kind};
use super::{Namespace, Profile, caps, path};

/// How many containers or volumes deep a chain of joined namespaces and volumes-from is
/// followed; deeper is unknown.
pub const MAX_DEPTH: u8 = 4;

/// Who the container runs as, as the request or inspect gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// Set: `Config.User` of an inspect (where the engine already put the image's user when
    /// the request set none), or a request's non-empty `User`.
    Set(String),
    /// Not set in a create request or service: the image's `Config.User` decides; `image`
    /// is the reference to look it up by ([`Reference::Image`]).
    FromImage(String),
    /// Not part of what is judged (an exec without `User` runs as the container's user,
    /// judged with the container).
    NotAsked,
}

/// Something to look up before the facts are whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// A container to inspect (by name or ID): its namespace is joined, or its volumes
    /// are taken (`--volumes-from`). Answer with [`Resolved::Container`].
    Container(String),
    /// A named volume to look up (`GET /volumes/{name}`): its driver and options. Answer
    /// with [`Resolved::Volume`], or [`Resolved::NoVolume`] when it does not exist.
    Volume(String),
    /// An image to inspect for its `Config.User` (only under `restricted`). Answer with
    /// [`Resolved::ImageUser`].
    Image(String),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Container(c) => write!(f, "container {c}"),
            Reference::Volume(v) => write!(f, "volume {v}"),
            Reference::Image(i) => write!(f, "image {i}"),
        }
    }
}

/// A volume as the engine reports it (`Driver`, `Options` of a volume inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFacts {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

/// The answer to a [`Reference`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The container's own power, as [`super::inspect::from_inspect`] reads its inspect.
    Container(Box<Power>),
    /// The volume exists, with this driver and these options.
    Volume(VolumeFacts),
    /// No such volume: the engine will create it empty (options given inline with the
    /// request are judged from the request). A volume created after this answer, before the
    /// engine acts, is a race only the event path catches (docs/limits.md).
    NoVolume,
    /// The image's `Config.User` (empty: root).
    ImageUser(String),
}

/// References the lookup could not answer: the facts they stand for are unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not resolve {}", .references.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
pub struct Unresolvable {
    pub references: Vec<Reference>,
}

/// What is known of the user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum UserFact {
    Known(String),
    /// The image's user, to look up.
    FromImage(String),
    /// The image's user could not be looked up.
    Unknown(String),
}

/// A lookup still to do, and what its answer stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// `--pid|--network|--ipc=container:<container>`.
    Join {
        ns: Namespace,
        container: String,
        depth: u8,
    },
    /// `--volumes-from <container>[:ro]`.
    VolumesFrom {
        container: String,
        read_only: bool,
        depth: u8,
    },
    /// A named volume whose options are not in the request.
    Volume {
        name: String,
        read_only: bool,
        subpath: String,
        depth: u8,
    },
}

impl Pending {
    fn reference(&self) -> Reference {
        match self {
            Pending::Join { container, .. } | Pending::VolumesFrom { container, .. } => {
                Reference::Container(container.clone())
            }
            Pending::Volume { name, .. } => Reference::Volume(name.clone()),
        }
    }

    fn depth(&self) -> u8 {
        match self {
            Pending::Join { depth, .. }
            | Pending::VolumesFrom { depth, .. }
            | Pending::Volume { depth, .. } => *depth,
        }
    }

    fn deeper(mut self, by: u8) -> Pending {
        match &mut self {
            Pending::Join { depth, .. }
            | Pending::VolumesFrom { depth, .. }
            | Pending::Volume { depth, .. } => *depth = depth.saturating_add(by),
        }
        self
    }

    fn describe(&self) -> String {
        match self {
            Pending::Join { ns, container, .. } => {
                format!("container {container} (its {ns} namespace is joined)")
            }
            Pending::VolumesFrom { container, .. } => format!("container {container} (volumes-from)"),
            Pending::Volume { name, .. } => format!("volume {name} (its driver and options)"),
        }
    }
}

/// Everything a container or an exec asks of the host, as canonical facts (see the module
/// doc). Build it with [`Power::from_host_config`], [`Power::from_exec`] or
/// [`super::inspect::from_inspect`]; read it with [`Power::asks`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Power {
    /// What is asked whatever the profile (but `privileged`): the baseline asks.
    asked: BTreeSet<Ask>,
    /// Who it runs as (none for an exec without a user); several when two readings of one
    /// request were merged.
    users: BTreeSet<UserFact>,
    /// `no-new-privileges` set; `None` where it is not judged (an exec).
    no_new_privileges: Option<bool>,
    /// Capabilities it ends up with beyond `NET_BIND_SERVICE` (`ALL` for all), judged under
    /// `restricted`; `None` where not judged (an exec).
    kept: Option<BTreeSet<String>>,
    /// Lookups still to do.
    pending: Vec<Pending>,
    /// Why the facts are not whole (a field that could not be read, a lookup that failed).
    unknown: Vec<String>,
}

impl Power {
    /// Facts that cannot be had at all (an inspect without `HostConfig`): nothing is
    /// granted on them.
    pub fn unknown(why: impl Into<String>) -> Power {
        Power {
            unknown: vec![why.into()],
            ..Power::default()
        }
    }

    /// Reads a container's `HostConfig` (from a create body, an inspect, a service's task
    /// template made into one) and its user. Every field is normalised here, in one place:
    /// host paths cleaned, capabilities as the engine names them, security options in both
    /// spellings, sysctls dotted; what needs a lookup becomes a [`Reference`].
    pub fn from_host_config(h: &HostConfigSpec, user: User) -> Power {
        let mut p = Power {
            no_new_privileges: Some(false),
            ..Power::default()
        };
        match user {
            User::Set(u) => {
                p.users.insert(UserFact::Known(u));
            }
            User::FromImage(image) => {
                p.users.insert(UserFact::FromImage(image));
            }
            User::NotAsked => {}
        }
        if h.privileged {
            p.asked.insert(Ask::Privileged);
        }
        p.namespaces(h);
        p.mounts(h);

        let added: BTreeSet<String> = h.cap_add.iter().map(|c| caps::normalise(c)).collect();
        let dropped: BTreeSet<String> = h.cap_drop.iter().map(|c| caps::normalise(c)).collect();
        for c in &added {
            if !caps::DEFAULT.contains(&c.as_str()) {
                p.asked.insert(Ask::Capability(c.clone()));
            }
        }
        let mut kept = caps::effective(&added, &dropped, h.privileged);
        kept.remove(caps::RESTRICTED_KEEP);
        p.kept = Some(kept);

        for d in &h.devices {
            if !d.path_on_host.is_empty() {
                p.asked.insert(Ask::Device(path::clean(&d.path_on_host)));
            }
        }
        for r in &h.device_requests {
            if r.driver.eq_ignore_ascii_case("cdi") {
                for id in &r.device_ids {
                    p.asked.insert(Ask::DeviceRequest(format!("cdi:{id}")));
                }
            } else {
                p.asked.insert(Ask::DeviceRequest("gpu".into()));
            }
        }
        for r in &h.device_cgroup_rules {
            let rule = read::device_rule(r);
            if !rule.is_empty() {
                p.asked.insert(Ask::DeviceRule(rule));
            }
        }

        let (unconfined, nnp) = read::security_options(&h.security_opt);
        p.asked.extend(unconfined);
        p.no_new_privileges = Some(nnp);
        p.asked.extend(read::system_paths(
            h.masked_paths.as_deref(),
            h.readonly_paths.as_deref(),
        ));
        for name in h.sysctls.keys() {
            let name = read::sysctl_name(name);
            if !read::is_safe_sysctl(&name) {
                p.asked.insert(Ask::Sysctl(name));
            }
        }
        p
    }

    /// Host namespaces: `host` (any case: the engine refuses other cases for every mode
    /// but the network, where `HOST` would name a network; asking is never less) and
    /// `container:<name>` joins for pid, network and ipc.
    fn namespaces(&mut self, h: &HostConfigSpec) {
        for (ns, mode) in [
            (Namespace::Pid, &h.pid_mode),
            (Namespace::Network, &h.network_mode),
            (Namespace::Ipc, &h.ipc_mode),
            (Namespace::Uts, &h.uts_mode),
            (Namespace::Userns, &h.userns_mode),
            (Namespace::Cgroup, &h.cgroupns_mode),
        ] {
            if mode.eq_ignore_ascii_case("host") {
                self.asked.insert(Ask::HostNamespace(ns));
            } else if ns.joinable()
                && let Some(container) = strip_prefix_ignore_case(mode, "container:")
            {
                self.pending.push(Pending::Join {
                    ns,
                    container: container.to_string(),
                    depth: 0,
                });
            }
        }
    }

    /// `Binds`, `Mounts`, `VolumesFrom`.
    fn mounts(&mut self, h: &HostConfigSpec) {
        for b in &h.binds {
            match read::parse_bind(b) {
                Bind::HostPath(path, read_only) => {
                    self.asked.insert(Ask::HostPath {
                        path,
                        read_only,
                        via: Via::Bind,
                    });
                }
                Bind::Volume(name, read_only) => self.pending.push(Pending::Volume {
                    name,
                    read_only,
                    subpath: String::new(),
                    depth: 0,
                }),
                Bind::Anonymous => {}
            }
        }
        for m in &h.mounts {
            let read_only = m.read_only && !m.bind.as_ref().is_some_and(|b| b.read_only_non_recursive);
            match m.kind.to_ascii_lowercase().as_str() {
                "bind" => {
                    self.asked.insert(Ask::HostPath {
                        path: path::clean(&m.source),
                        read_only,
                        via: Via::Mount,
                    });
                }
                "volume" => {
                    let subpath = m.volume.as_ref().map_or("", |v| v.subpath.as_str());
                    if let Some(d) = m.volume.as_ref().and_then(|v| v.driver.as_ref())
                        && read::is_local_driver(&d.name)
                    {
                        self.asked.extend(read::local_volume_paths(
                            &d.options, read_only, subpath, &m.source,
                        ));
                    }
                    if !m.source.is_empty() {
                        self.pending.push(Pending::Volume {
                            name: m.source.clone(),
                            read_only,
                            subpath: subpath.to_string(),
                            depth: 0,
                        });
                    }
                }
                "tmpfs" | "image" | "npipe" | "cluster" => {}
                // A type the engine does not know (it refuses the request): a host path if
                // its source looks like one.
                _ if m.source.starts_with('/') => {
                    self.asked.insert(Ask::HostPath {
                        path: path::clean(&m.source),
                        read_only,
                        via: Via::Mount,
                    });
                }
                _ => {}
            }
        }
        for v in &h.volumes_from {
            let (container, read_only) = read::parse_volumes_from(v);
            self.pending.push(Pending::VolumesFrom {
                container,
                read_only,
                depth: 0,
            });
        }
    }

    /// What an exec asks (`POST /containers/{id}/exec`): `Privileged`, and its `User` when
    /// set (empty: the container's user, judged with the container).
    pub fn from_exec(privileged: bool, user: &str) -> Power {
        let mut p = Power::default();
        if privileged {
            p.asked.insert(Ask::Privileged);
        }
        if !user.is_empty() {
            p.users.insert(UserFact::Known(user.to_string()));
        }
        p
    }

    /// What either of two readings asks: used where engines read one request two ways
    /// (create bodies with `HostConfig` fields at the top level, which engines before 27
    /// honour), so that no engine can grant more than was judged.
    pub fn merge(&mut self, other: Power) {
        self.asked.extend(other.asked);
        self.users.extend(other.users);
        self.no_new_privileges = match (self.no_new_privileges, other.no_new_privileges) {
            (Some(a), Some(b)) => Some(a && b),
            (a, b) => a.or(b),
        };
        self.kept = match (self.kept.take(), other.kept) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        for p in other.pending {
            if !self.pending.contains(&p) {
                self.pending.push(p);
            }
        }
        self.unknown.extend(other.unknown);
    }

    /// Also counts `why` as not known (a field the reader could not read).
    pub fn add_unknown(&mut self, why: impl Into<String>) {
        self.unknown.push(why.into());
    }

    /// A host path the engine reports mounted (an inspect's `Mounts`).
    pub(super) fn add_host_path(&mut self, path: String, read_only: bool, via: Via) {
        self.asked.insert(Ask::HostPath { path, read_only, via });
    }

    /// A named volume the engine reports mounted, whose options need a lookup.
    pub(super) fn add_volume(&mut self, name: String, read_only: bool) {
        let p = Pending::Volume {
            name,
            read_only,
            subpath: String::new(),
            depth: 0,
        };
        if !self.pending.contains(&p) {
            self.pending.push(p);
        }
    }

    /// What must be looked up before [`Power::asks`] is whole under `profile`, without
    /// repeats. Nothing under `privileged`; the image's user only under `restricted`.
    pub fn references(&self, profile: Profile) -> Vec<Reference> {
        if profile == Profile::Privileged {
            return Vec::new();
        }
        let mut refs: BTreeSet<Reference> = self.pending.iter().map(Pending::reference).collect();
        if profile == Profile::Restricted {
            for u in &self.users {
                if let UserFact::FromImage(image) = u {
                    refs.insert(Reference::Image(image.clone()));
                }
            }
        }
        refs.into_iter().collect()
    }

    /// Fills in the answers `lookup` gives for the references pending now. A resolved
    /// container's own references (a chain of joins or volumes-from) are pending afterwards
    /// for the next round. A reference `lookup` answers with `None`, or with an answer of
    /// the wrong kind, makes the facts it stands for unknown, and is returned.
    pub fn resolve(&mut self, lookup: &dyn Fn(&Reference) -> Option<Resolved>) -> Result<(), Unresolvable> {
        let mut failed = Vec::new();
        let users = std::mem::take(&mut self.users);
        for u in users {
            let u = match u {
                UserFact::FromImage(image) => {
                    let r = Reference::Image(image.clone());
                    match lookup(&r) {
                        Some(Resolved::ImageUser(user)) => UserFact::Known(user),
                        _ => {
                            failed.push(r);
                            UserFact::Unknown(format!("the user of image {image} could not be looked up"))
                        }
                    }
                }
                other => other,
            };
            self.users.insert(u);
        }
        for p in std::mem::take(&mut self.pending) {
            let r = p.reference();
            if p.depth() > MAX_DEPTH {
                self.unknown.push(format!(
                    "{}: more than {MAX_DEPTH} containers or volumes deep",
                    p.describe()
                ));
                failed.push(r);
                continue;
            }
            let what = p.describe();
            match (p, lookup(&r)) {
                (Pending::Join { ns, container, depth }, Some(Resolved::Container(x))) => {
                    self.take_join(ns, &container, *x, depth)
                }
                (
                    Pending::VolumesFrom {
                        container,
                        read_only,
                        depth,
                    },
                    Some(Resolved::Container(x)),
                ) => self.take_volumes_from(&container, read_only, *x, depth),
                (
                    Pending::Volume {
                        name,
                        read_only,
                        subpath,
                        ..
                    },
                    Some(Resolved::Volume(v)),
                ) => {
                    if read::is_local_driver(&v.driver) {
                        self.asked
                            .extend(read::local_volume_paths(&v.options, read_only, &subpath, &name));
                    }
                }
                (Pending::Volume { .. }, Some(Resolved::NoVolume)) => {}
                _ => {
                    self.unknown.push(format!("{what} could not be looked up"));
                    failed.push(r);
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Unresolvable { references: failed })
        }
    }

    /// Joining `x`'s namespace. Its pid namespace reaches its processes and, through
    /// `/proc/<pid>/root`, what they hold: everything `x` asks counts as asked. Its network
    /// or ipc namespace is the host's when `x`'s is.
    fn take_join(&mut self, ns: Namespace, container: &str, x: Power, depth: u8) {
        let from = |why: String| format!("container {container}: {why}");
        self.unknown.extend(x.unknown.into_iter().map(from));
        if ns == Namespace::Pid {
            for a in x.asked {
                self.asked.insert(match a {
                    Ask::HostPath { path, read_only, .. } => Ask::HostPath {
                        path,
                        read_only,
                        via: Via::JoinedPid(container.to_string()),
                    },
                    other => other,
                });
            }
            self.pending
                .extend(x.pending.into_iter().map(|p| p.deeper(depth.saturating_add(1))));
        } else {
            if x.asked.contains(&Ask::HostNamespace(ns)) {
                self.asked.insert(Ask::HostNamespace(ns));
            }
            self.pending.extend(
                x.pending
                    .into_iter()
                    .filter(|p| matches!(p, Pending::Join { ns: n, .. } if *n == ns))
                    .map(|p| p.deeper(depth.saturating_add(1))),
            );
        }
    }

    /// `--volumes-from x[:ro]`: `x`'s host paths and volumes, read-only when asked so.
    fn take_volumes_from(&mut self, container: &str, ro: bool, x: Power, depth: u8) {
        let from = |why: String| format!("container {container}: {why}");
        self.unknown.extend(x.unknown.into_iter().map(from));
        for a in x.asked {
            if let Ask::HostPath { path, read_only, .. } = a {
                self.asked.insert(Ask::HostPath {
                    path,
                    read_only: read_only || ro,
                    via: Via::VolumesFrom(container.to_string()),
                });
            }
        }
        for p in x.pending {
            let p = match p {
                Pending::Volume {
                    name,
                    read_only,
                    subpath,
                    depth,
                } => Pending::Volume {
                    name,
                    read_only: read_only || ro,
                    subpath,
                    depth,
                },
                Pending::VolumesFrom {
                    container,
                    read_only,
                    depth,
                } => Pending::VolumesFrom {
                    container,
                    read_only: read_only || ro,
                    depth,
                },
                Pending::Join { .. } => continue,
            };
            self.pending.push(p.deeper(depth.saturating_add(1)));
        }
    }

    /// What is asked under `profile`, in the order denials name them (see [`Asks`]).
    /// `privileged` asks nothing; `restricted` adds a non-root user, no-new-privileges and
    /// every capability dropped but `NET_BIND_SERVICE` to what `baseline` asks.
    pub fn asks(&self, profile: Profile) -> Asks {
        if profile == Profile::Privileged {
            return Asks::default();
        }
        let mut asked = self.asked.clone();
        let mut unknown = self.unknown.clone();
        unknown.extend(
            self.pending
                .iter()
                .map(|p| format!("{} not resolved", p.describe())),
        );
        if profile == Profile::Restricted {
            for u in &self.users {
                match u {
                    UserFact::Known(user) => {
                        if user_kind(user) != UserKind::NonRoot {
                            asked.insert(Ask::RunAsRoot { user: user.clone() });
                        }
                    }
                    UserFact::FromImage(image) => {
                        unknown.push(format!("the user of image {image} not resolved"))
                    }
                    UserFact::Unknown(why) => unknown.push(why.clone()),
                }
            }
            if self.no_new_privileges == Some(false) {
                asked.insert(Ask::PrivilegeEscalation);
            }
            for c in self.kept.iter().flatten() {
                // An added capability is asked already; kept, it is the same grant.
                if !self.asked.contains(&Ask::Capability(c.clone())) {
                    asked.insert(Ask::KeptCapability(c.clone()));
                }
            }
        }
        Asks {
            asks: without_repeated_paths(asked),
            unknown,
        }
    }

    /// Whether nothing is unknown and nothing is left to resolve (under any profile).
    pub fn is_known(&self) -> bool {
        self.unknown.is_empty()
            && self.pending.is_empty()
            && !self
                .users
                .iter()
                .any(|u| matches!(u, UserFact::FromImage(_) | UserFact::Unknown(_)))
    }
}

/// The asks in order, a host path listed once: the same path reported by two fields (an
/// inspect's `HostConfig.Mounts` and its mount points) is one ask, and a read-write mount
/// of a path makes a read-only one of it moot.
fn without_repeated_paths(asked: BTreeSet<Ask>) -> Vec<Ask> {
    let rw: BTreeSet<String> = asked
        .iter()
        .filter_map(|a| match a {
            Ask::HostPath {
                path,
                read_only: false,
                ..
            } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let mut seen: BTreeSet<(String, bool)> = BTreeSet::new();
    asked
        .into_iter()
        .filter(|a| match a {
            Ask::HostPath { path, read_only, .. } => {
                !(*read_only && rw.contains(path)) && seen.insert((path.clone(), *read_only))
            }
            _ => true,
        })
        .collect()
}

/// `s` without `prefix`, compared ASCII case-insensitively.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}
