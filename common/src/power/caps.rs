//! Linux capability names as the engine reads them (moby `NormalizeLegacyCapabilities`:
//! upper-cased, `CAP_` optional, `ALL` the magic value), the engine's default set, and the
//! set a container ends up with (moby `TweakCapabilities`).

use std::collections::BTreeSet;

/// The magic value of `CapAdd`/`CapDrop`: every capability.
pub const ALL: &str = "ALL";

/// The capabilities every container gets unless it drops them (moby
/// `oci/caps.DefaultCapabilities`, unchanged since Docker 1.x), without `CAP_`.
pub const DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The one capability the `restricted` profile lets a container keep (Pod Security
/// Standards: binding ports below 1024).
pub const RESTRICTED_KEEP: &str = "NET_BIND_SERVICE";

/// Every capability Linux defines (up to `CHECKPOINT_RESTORE`, Linux 5.9), without `CAP_`:
/// what a grant may name.
pub const KNOWN: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Go's `strings.ToUpper`, rune by rune with the simple (one-to-one) mapping: `ſ` becomes
/// `S` and `ı` becomes `I`, as the engine upper-cases them, where Rust's full mapping would
/// turn `ß` into `SS`.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// A capability name as the engine compares it, without `CAP_`: `sys_admin`,
/// `CAP_SYS_ADMIN`, `Cap_Sys_Admin` and `ſys_admin` are all `SYS_ADMIN`; `all` is `ALL`.
/// (`CAP_ALL`, which the engine refuses as unknown, also reads as `ALL`: never less.)
pub fn normalise(name: &str) -> String {
    let up = go_to_upper(name);
    match up.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => up,
    }
}

/// Whether `name` (normalised) is a capability a grant may name.
pub fn is_known(name: &str) -> bool {
    name == ALL || KNOWN.contains(&name)
}

/// The capabilities a container ends up with, as moby's `TweakCapabilities` computes them
/// (names normalised; `{ALL}` stands for every capability).
pub fn effective(added: &BTreeSet<String>, dropped: &BTreeSet<String>, privileged: bool) -> BTreeSet<String> {
    if privileged {
        return BTreeSet::from([ALL.to_string()]);
    }
    if added.contains(ALL) {
        if dropped.is_empty() {
            return BTreeSet::from([ALL.to_string()]);
        }
        return KNOWN
            .iter()
            .filter(|c| !dropped.contains(**c))
            .map(|c| c.to_string())
            .collect();
    }
    if dropped.contains(ALL) {
        return added.clone();
    }
    DEFAULT
        .iter()
        .filter(|c| !dropped.contains(**c))
        .map(|c| c.to_string())
        .chain(added.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| normalise(n)).collect()
    }

    #[test]
    fn spellings_normalise_as_the_engine_does() {
        for n in [
            "sys_admin",
            "SYS_ADMIN",
            "CAP_SYS_ADMIN",
            "cap_sys_admin",
            "Cap_Sys_Admin",
            "\u{17F}ys_admin",
        ] {
            assert_eq!(normalise(n), "SYS_ADMIN", "{n}");
        }
        assert_eq!(normalise("all"), "ALL");
        assert_eq!(normalise("CAP_ALL"), "ALL");
        assert_eq!(
            normalise("\u{131}pc_lock"),
            "IPC_LOCK",
            "dotless i upper-cases to I in Go"
        );
        assert_eq!(normalise("stra\u{df}e"), "STRA\u{df}E", "no full case mapping");
        assert!(is_known("NET_ADMIN") && is_known("ALL") && !is_known("NET_ADMN"));
    }

    #[test]
    fn effective_sets_follow_tweak_capabilities() {
        let none = BTreeSet::new();
        assert_eq!(effective(&none, &none, false).len(), DEFAULT.len());
        assert_eq!(effective(&none, &none, true), set(&["ALL"]));
        assert_eq!(effective(&set(&["all"]), &none, false), set(&["ALL"]));
        let e = effective(&set(&["ALL"]), &set(&["SYS_ADMIN"]), false);
        assert!(e.contains("NET_ADMIN") && !e.contains("SYS_ADMIN"));
        assert_eq!(
            effective(&set(&["net_bind_service"]), &set(&["ALL"]), false),
            set(&["NET_BIND_SERVICE"])
        );
        let e = effective(&set(&["NET_ADMIN"]), &set(&["CHOWN"]), false);
        assert!(e.contains("NET_ADMIN") && !e.contains("CHOWN") && e.contains("KILL"));
    }
}
