//! How each field of a [`HostConfigSpec`](super::HostConfigSpec) reads as asks, the way the
//! engine reads it: `Binds` (`src:dst[:mode]`, moby `ParseMountRaw`), `Mounts`, the `local`
//! volume driver's options (`type`, `o`, `device`), security options in both spellings
//! (moby `parseSecurityOpt`), masked and read-only paths, sysctls, devices. Where the
//! engine would refuse a spelling, the reading here asks at least as much as any engine
//! could grant (case-insensitive where the engine is exact, for instance), never less.

use std::collections::BTreeMap;

use super::Unconfined;
use super::ask::{Ask, Via};
use super::path;

/// Sysctls Kubernetes' Pod Security Standards (baseline, v1.29 and later) call safe:
/// namespaced, and isolated from other containers and the host. Any other sysctl is asked.
pub const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Paths every engine since Docker 17.06 masks by default (a `MaskedPaths` that leaves one
/// out unmasks it: `systempaths=unconfined`). Newer engines mask more; these are the ones
/// all of them do, so an inspect from an older engine never reads as unconfined.
pub const DEFAULT_MASKED: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths every engine makes read-only by default (`ReadonlyPaths`).
pub const DEFAULT_READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// SELinux types a container may run as without counting as unconfined (the Pod Security
/// Standards' baseline list).
const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// What one `Binds` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bind {
    /// A host path (cleaned as written), read-only or not.
    HostPath(String, bool),
    /// A named volume, read-only or not.
    Volume(String, bool),
    /// A target only: an anonymous volume, nothing of the host.
    Anonymous,
}

/// Reads a `Binds` entry as moby's `ParseMountRaw` does: `SplitN(raw, ":", 4)`; one part is
/// a target; the source is a host path when absolute, else a volume name; read-only when
/// the mode has `ro`. Spellings the engine refuses (four parts, a mode where the target
/// should be) are still read for their source: never less than the engine could do.
pub(super) fn parse_bind(raw: &str) -> Bind {
    let parts: Vec<&str> = raw.splitn(4, ':').collect();
    let (source, mode) = match parts.as_slice() {
        [_] => return Bind::Anonymous,
        [s, _] => (*s, ""),
        [s, _, m] => (*s, *m),
        [s, ..] => (*s, ""),
        [] => return Bind::Anonymous,
    };
    if source.is_empty() {
        return Bind::Anonymous;
    }
    let ro = mode.split(',').any(|o| o == "ro");
    if source.starts_with('/') {
        Bind::HostPath(path::clean(source), ro)
    } else {
        Bind::Volume(source.to_string(), ro)
    }
}

/// A `VolumesFrom` entry: the container and whether its mounts come read-only.
pub(super) fn parse_volumes_from(raw: &str) -> (String, bool) {
    match raw.split_once(':') {
        Some((c, mode)) => (c.to_string(), mode.split(',').any(|o| o == "ro")),
        None => (raw.to_string(), false),
    }
}

/// Whether a volume driver name is the engine's built-in `local` (empty means the default,
/// `local`). Case-insensitive: stricter than the engine, which would not find `Local`.
pub(super) fn is_local_driver(name: &str) -> bool {
    name.is_empty() || name.eq_ignore_ascii_case("local")
}

/// The host paths a `local` volume with these options exposes (moby's local driver runs
/// `mount -t <type> -o <o> <device>`):
/// - `o` with `bind`/`rbind`: the `device` path (narrowed to `subpath` when it stays inside);
/// - `overlay`: its `lowerdir`s (read-only), `upperdir` and `workdir`;
/// - `tmpfs`, `ramfs`, and the network filesystems `nfs`, `nfs4`, `cifs`, `smb3`: nothing of
///   the host;
/// - any other filesystem from a device (`ext4` on `/dev/sda1`, `proc`, `sysfs`, `cgroup`,
///   ...): judged as the host's root `/`, since it can be (a `proc` mounted by the engine
///   is the host's, with a writable `/proc/sys`).
///
/// Read-only when the container mounts it so or `o` has `ro`.
pub(super) fn local_volume_paths(
    options: &BTreeMap<String, String>,
    read_only: bool,
    subpath: &str,
    volume: &str,
) -> Vec<Ask> {
    let get = |key: &str| {
        options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map_or("", |(_, v)| v.as_str())
    };
    let (kind, o, device) = (get("type"), get("o"), get("device"));
    if kind.is_empty() && o.is_empty() && device.is_empty() {
        return Vec::new();
    }
    let flags: Vec<&str> = o.split(',').map(str::trim).collect();
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let ro = read_only || has("ro");
    let via = if volume.is_empty() {
        Via::InlineVolume
    } else {
        Via::Volume(volume.to_string())
    };
    let host = |p: String, ro: bool, via: Via| Ask::HostPath {
        path: p,
        read_only: ro,
        via,
    };
    if has("bind") || has("rbind") {
        let mut p = path::clean(device);
        if path::is_local(subpath) {
            p = path::clean(&format!("{p}/{subpath}"));
        }
        return vec![host(p, ro, via)];
    }
    match kind.to_ascii_lowercase().as_str() {
        "tmpfs" | "ramfs" | "nfs" | "nfs4" | "cifs" | "smb3" => Vec::new(),
        "overlay" => {
            let mut asks = Vec::new();
            for f in &flags {
                let Some((k, v)) = f.split_once('=') else { continue };
                match k.to_ascii_lowercase().as_str() {
                    "lowerdir" => asks.extend(
                        v.split(':')
                            .filter(|d| !d.is_empty())
                            .map(|d| host(path::clean(d), true, via.clone())),
                    ),
                    "upperdir" | "workdir" => asks.push(host(path::clean(v), ro, via.clone())),
                    _ => {}
                }
            }
            if asks.is_empty() {
                asks.push(host("/".into(), ro, via));
            }
            asks
        }
        _ => vec![host(
            "/".into(),
            ro,
            Via::Filesystem {
                volume: volume.to_string(),
                kind: kind.to_string(),
                device: device.to_string(),
            },
        )],
    }
}

/// What the security options ask, and whether they set no-new-privileges (the last
/// `no-new-privileges[=bool]` wins, as in moby's `parseSecurityOpt`, which also accepts the
/// old `key:value` form). Keys are compared case-insensitively for what they unconfine
/// (the engine refuses other cases: asking is never less), exactly for no-new-privileges
/// (a misspelt one does not protect).
pub(super) fn security_options(opts: &[String]) -> (Vec<Ask>, bool) {
    let mut asks = Vec::new();
    let mut nnp = false;
    let mut ask = |what: Unconfined, detail: &str| {
        asks.push(Ask::Unconfined {
            what,
            detail: detail.to_string(),
        })
    };
    for opt in opts {
        match opt.as_str() {
            "no-new-privileges" => {
                nnp = true;
                continue;
            }
            "writable-cgroups" => {
                ask(Unconfined::Cgroups, opt);
                continue;
            }
            "disable" => {
                ask(Unconfined::Label, opt);
                continue;
            }
            _ => {}
        }
        let split = if opt.contains('=') {
            opt.split_once('=')
        } else {
            opt.split_once(':')
        };
        let Some((key, value)) = split else { continue };
        match key.to_ascii_lowercase().as_str() {
            "label" if label_unconfines(value) => ask(Unconfined::Label, opt),
            "apparmor" if value.eq_ignore_ascii_case("unconfined") => ask(Unconfined::AppArmor, opt),
            "seccomp" if !value.is_empty() && value != "builtin" => {
                if value.eq_ignore_ascii_case("unconfined") {
                    ask(Unconfined::Seccomp, opt);
                } else {
                    // A profile sent with the request can allow every system call.
                    ask(Unconfined::Seccomp, "a custom seccomp profile in the request");
                }
            }
            "systempaths" if value.eq_ignore_ascii_case("unconfined") => ask(Unconfined::SystemPaths, opt),
            "writable-cgroups" if go_parse_bool(value) != Some(false) => ask(Unconfined::Cgroups, opt),
            "no-new-privileges" if key == "no-new-privileges" => {
                if let Some(b) = go_parse_bool(value) {
                    nnp = b;
                }
            }
            _ => {}
        }
    }
    (asks, nnp)
}

/// Whether a `label=` value switches SELinux confinement off or chooses it: `disable`, a
/// `user:` or `role:`, a `type:` outside the container types, anything unknown. Only
/// `level:` and the container types keep the default confinement.
fn label_unconfines(value: &str) -> bool {
    if value.starts_with("level:") {
        return false;
    }
    if let Some(t) = value.strip_prefix("type:") {
        return !SELINUX_TYPES.contains(&t);
    }
    true
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether explicit `MaskedPaths`/`ReadonlyPaths` leave a default out (the CLI's
/// `systempaths=unconfined` sends both empty). `None` (Go nil) means the defaults.
pub(super) fn system_paths(masked: Option<&[String]>, readonly: Option<&[String]>) -> Vec<Ask> {
    let lacks = |given: Option<&[String]>, defaults: &[&str]| {
        given.is_some_and(|g| {
            let g: Vec<String> = g.iter().map(|p| path::clean(p)).collect();
            defaults.iter().any(|d| !g.iter().any(|p| p == d))
        })
    };
    let mut asks = Vec::new();
    if lacks(masked, &DEFAULT_MASKED) {
        asks.push(Ask::Unconfined {
            what: Unconfined::SystemPaths,
            detail: "MaskedPaths without the defaults".into(),
        });
    }
    if lacks(readonly, &DEFAULT_READONLY) {
        asks.push(Ask::Unconfined {
            what: Unconfined::SystemPaths,
            detail: "ReadonlyPaths without the defaults".into(),
        });
    }
    asks
}

/// A sysctl name in the dotted form (`net/ipv4/x` is `net.ipv4.x`, as runc writes both).
pub fn sysctl_name(name: &str) -> String {
    name.replace('/', ".")
}

/// Whether a (dotted) sysctl is in the safe set.
pub fn is_safe_sysctl(name: &str) -> bool {
    SAFE_SYSCTLS.contains(&name)
}

/// A device cgroup rule with its whitespace normalised (`c 10:229 rwm`).
pub(super) fn device_rule(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn binds_read_as_parse_mount_raw() {
        assert_eq!(parse_bind("/:/host"), Bind::HostPath("/".into(), false));
        assert_eq!(
            parse_bind("/var/run/:/s:ro"),
            Bind::HostPath("/var/run".into(), true)
        );
        assert_eq!(
            parse_bind("//etc/../etc/:/e:ro,Z"),
            Bind::HostPath("/etc".into(), true)
        );
        assert_eq!(parse_bind("/etc:/e:rw"), Bind::HostPath("/etc".into(), false));
        assert_eq!(
            parse_bind("/etc:/e:RO"),
            Bind::HostPath("/etc".into(), false),
            "RO is no mode"
        );
        assert_eq!(parse_bind("data:/d"), Bind::Volume("data".into(), false));
        assert_eq!(parse_bind("data:/d:ro,nocopy"), Bind::Volume("data".into(), true));
        assert_eq!(parse_bind("/d"), Bind::Anonymous);
        assert_eq!(
            parse_bind("/a:/b:ro:x"),
            Bind::HostPath("/a".into(), false),
            "refused, read anyway"
        );
        assert_eq!(parse_volumes_from("db:ro"), ("db".into(), true));
        assert_eq!(parse_volumes_from("db"), ("db".into(), false));
    }

    #[test]
    fn security_options_in_every_spelling() {
        let unconfined = |opts: &[&str]| {
            security_options(&strings(opts))
                .0
                .into_iter()
                .map(|a| match a {
                    Ask::Unconfined { what, .. } => what,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        for o in [
            "seccomp=unconfined",
            "seccomp:unconfined",
            "Seccomp=UNCONFINED",
            "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}",
        ] {
            assert_eq!(unconfined(&[o]), [Unconfined::Seccomp], "{o}");
        }
        assert!(unconfined(&["seccomp=builtin", "seccomp="]).is_empty());
        for o in ["apparmor=unconfined", "apparmor:unconfined"] {
            assert_eq!(unconfined(&[o]), [Unconfined::AppArmor], "{o}");
        }
        assert!(unconfined(&["apparmor=docker-default"]).is_empty());
        for o in [
            "label=disable",
            "label:disable",
            "disable",
            "label=type:spc_t",
            "label=user:system_u",
            "label=role:r",
        ] {
            assert_eq!(unconfined(&[o]), [Unconfined::Label], "{o}");
        }
        assert!(unconfined(&["label=level:s0:c100,c200", "label=type:container_t"]).is_empty());
        assert_eq!(unconfined(&["systempaths=unconfined"]), [Unconfined::SystemPaths]);
        for o in ["writable-cgroups", "writable-cgroups=true", "writable-cgroups:1"] {
            assert_eq!(unconfined(&[o]), [Unconfined::Cgroups], "{o}");
        }
        assert!(unconfined(&["writable-cgroups=false"]).is_empty());
    }

    #[test]
    fn no_new_privileges_last_one_wins() {
        let nnp = |opts: &[&str]| security_options(&strings(opts)).1;
        assert!(nnp(&["no-new-privileges"]));
        assert!(nnp(&["no-new-privileges=true"]));
        assert!(nnp(&["no-new-privileges:1"]));
        assert!(!nnp(&["no-new-privileges", "no-new-privileges=false"]));
        assert!(nnp(&["no-new-privileges=false", "no-new-privileges=T"]));
        assert!(
            !nnp(&["No-New-Privileges=true"]),
            "the engine refuses it; it protects nothing"
        );
        assert!(!nnp(&["no-new-privileges=yes"]));
        assert!(!nnp(&[]));
    }

    #[test]
    fn local_volume_options() {
        let opts = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let paths = |o: &BTreeMap<String, String>, ro: bool, sub: &str| -> Vec<(String, bool)> {
            local_volume_paths(o, ro, sub, "v")
                .into_iter()
                .map(|a| match a {
                    Ask::HostPath { path, read_only, .. } => (path, read_only),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let bind = opts(&[("type", "none"), ("o", "bind"), ("device", "/")]);
        assert_eq!(paths(&bind, false, ""), [("/".to_string(), false)]);
        assert_eq!(paths(&bind, true, ""), [("/".to_string(), true)]);
        assert_eq!(paths(&bind, false, "etc"), [("/etc".to_string(), false)]);
        assert_eq!(
            paths(&bind, false, "../x"),
            [("/".to_string(), false)],
            "a subpath out is refused"
        );
        let rbind = opts(&[("type", "none"), ("o", "rbind,ro"), ("device", "/var//run/")]);
        assert_eq!(paths(&rbind, false, ""), [("/var/run".to_string(), true)]);
        assert!(
            paths(
                &opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=10m")]),
                false,
                ""
            )
            .is_empty()
        );
        assert!(
            paths(
                &opts(&[("type", "nfs"), ("device", ":/x"), ("o", "addr=10.0.0.1")]),
                false,
                ""
            )
            .is_empty()
        );
        assert!(paths(&opts(&[("size", "10G")]), false, "").is_empty());
        assert!(paths(&BTreeMap::new(), false, "").is_empty());
        assert_eq!(
            paths(&opts(&[("type", "ext4"), ("device", "/dev/sda1")]), false, ""),
            [("/".to_string(), false)]
        );
        assert_eq!(
            paths(&opts(&[("type", "proc"), ("device", "proc")]), false, ""),
            [("/".to_string(), false)]
        );
        let overlay = opts(&[
            ("type", "overlay"),
            ("device", "overlay"),
            ("o", "lowerdir=/etc:/usr,upperdir=/srv/up,workdir=/srv/work"),
        ]);
        assert_eq!(
            paths(&overlay, false, ""),
            [
                ("/etc".to_string(), true),
                ("/usr".to_string(), true),
                ("/srv/up".to_string(), false),
                ("/srv/work".to_string(), false)
            ]
        );
    }

    #[test]
    fn masked_and_readonly_paths() {
        let defaults: Vec<String> = strings(&DEFAULT_MASKED);
        assert!(system_paths(None, None).is_empty());
        assert!(system_paths(Some(&defaults), Some(&strings(&DEFAULT_READONLY))).is_empty());
        let mut more = defaults.clone();
        more.push("/proc/interrupts".into());
        assert!(system_paths(Some(&more), None).is_empty());
        assert_eq!(system_paths(Some(&[]), Some(&[])).len(), 2);
        assert_eq!(system_paths(Some(&defaults[1..]), None).len(), 1);
    }
}
