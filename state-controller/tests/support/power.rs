//! The host-power cases both gates are tried on (issue 17): each power asked the way the
//! Docker CLI asks it, the grant that allows exactly it, and what a denial must name. The
//! event-path test (`tests/power.rs`) runs them on the shared engine; the plugin test
//! (`tests/power_authz.rs`) on a private engine with the authorization plugin.

/// One power.
pub struct Case {
    /// Short, unique: part of the container names (`<scope>-<key>-deny`, `-ok`).
    pub key: &'static str,
    /// `docker run` arguments asking the power (`{p}`: the scope's prefix, for the volumes
    /// and the volumes-from source the test sets up).
    pub args: &'static [&'static str],
    /// The grant (TOML lines of a rule) that allows exactly this power.
    pub grant: &'static str,
    /// What the denial names.
    pub power: &'static str,
    /// With the grant it runs (`false`: the grant must not be enough: an edge).
    pub grantable: bool,
    /// The container can start on this machine (`--cap-add ALL` cannot: "unable to apply
    /// caps"; the plugin test proves it by the refusal, the event path has nothing to kill).
    pub starts: bool,
}

const fn case(
    key: &'static str,
    args: &'static [&'static str],
    grant: &'static str,
    power: &'static str,
) -> Case {
    Case {
        key,
        args,
        grant,
        power,
        grantable: true,
        starts: true,
    }
}

/// A case whose container cannot start on this machine (`docker run` creates it, then fails).
const fn no_start(
    key: &'static str,
    args: &'static [&'static str],
    grant: &'static str,
    power: &'static str,
) -> Case {
    Case {
        starts: false,
        ..case(key, args, grant, power)
    }
}

const fn edge(
    key: &'static str,
    args: &'static [&'static str],
    grant: &'static str,
    power: &'static str,
) -> Case {
    Case {
        key,
        args,
        grant,
        power,
        grantable: false,
        starts: true,
    }
}

/// Every power of item 1 that a container can start with on this machine (privileged and
/// `exec --privileged` cannot: the plugin test proves those by its refusal), each both
/// ways, plus the edges where a grant near the power must not be enough.
pub const CASES: &[Case] = &[
    case(
        "pid",
        &["--pid=host"],
        r#"host_namespaces = ["pid"]"#,
        "host pid namespace",
    ),
    case(
        "net",
        &["--network=host"],
        r#"host_namespaces = ["network"]"#,
        "host network namespace",
    ),
    case(
        "ipc",
        &["--ipc=host"],
        r#"host_namespaces = ["ipc"]"#,
        "host ipc namespace",
    ),
    case(
        "uts",
        &["--uts=host"],
        r#"host_namespaces = ["uts"]"#,
        "host uts namespace",
    ),
    case(
        "userns",
        &["--userns=host"],
        r#"host_namespaces = ["userns"]"#,
        "host userns namespace",
    ),
    case(
        "bind",
        &["-v", "/etc:/h"],
        r#"mounts = ["/etc"]"#,
        "host path /etc",
    ),
    case(
        "bindro",
        &["-v", "/etc:/h:ro"],
        r#"mounts = ["/etc:ro"]"#,
        "host path /etc",
    ),
    case(
        "mount",
        &["--mount", "type=bind,source=/etc,target=/h"],
        r#"mounts = ["/etc"]"#,
        "host path /etc",
    ),
    case(
        "sock",
        &["-v", "/var/run/docker.sock:/s"],
        r#"mounts = ["/var/run/docker.sock"]"#,
        "/run/docker.sock",
    ),
    case(
        "vol",
        &["-v", "{p}-etcvol:/h"],
        r#"mounts = ["/etc"]"#,
        "host path /etc",
    ),
    case(
        "volopt",
        &[
            "--mount",
            "type=volume,source={p}-inline,target=/h,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/etc",
        ],
        r#"mounts = ["/etc"]"#,
        "host path /etc",
    ),
    case(
        "from",
        &["--volumes-from", "{p}-src"],
        r#"mounts = ["/etc"]"#,
        "host path /etc",
    ),
    case(
        "cap",
        &["--cap-add", "NET_ADMIN"],
        r#"capabilities = ["NET_ADMIN"]"#,
        "capability NET_ADMIN",
    ),
    case(
        "caplow",
        &["--cap-add", "cap_sys_admin"],
        r#"capabilities = ["SYS_ADMIN"]"#,
        "capability SYS_ADMIN",
    ),
    no_start(
        "capall",
        &["--cap-add", "ALL"],
        r#"capabilities = ["ALL"]"#,
        "capability ALL",
    ),
    case(
        "dev",
        &["--device", "/dev/fuse"],
        r#"devices = ["/dev/fuse"]"#,
        "device /dev/fuse",
    ),
    case(
        "cgrule",
        &["--device-cgroup-rule", "c 10:229 rwm"],
        r#"devices = ["c 10:229 rwm"]"#,
        "device cgroup rule",
    ),
    case(
        "seccomp",
        &["--security-opt", "seccomp=unconfined"],
        r#"unconfined = ["seccomp"]"#,
        "seccomp",
    ),
    case(
        "seccomp2",
        &["--security-opt", "seccomp:unconfined"],
        r#"unconfined = ["seccomp"]"#,
        "seccomp",
    ),
    case(
        "apparmor",
        &["--security-opt", "apparmor=unconfined"],
        r#"unconfined = ["apparmor"]"#,
        "apparmor",
    ),
    case(
        "label",
        &["--security-opt", "label=disable"],
        r#"unconfined = ["label"]"#,
        "label",
    ),
    case(
        "sysp",
        &["--security-opt", "systempaths=unconfined"],
        r#"unconfined = ["systempaths"]"#,
        "systempaths",
    ),
    case(
        "sysctl",
        &["--sysctl", "kernel.msgmax=65536"],
        r#"sysctls = ["kernel.msg*"]"#,
        "sysctl kernel.msgmax",
    ),
    // A read-only grant does not cover a read-write bind.
    edge(
        "rwonro",
        &["-v", "/etc:/h"],
        r#"mounts = ["/etc:ro"]"#,
        "host path /etc",
    ),
    // A bind of a directory above a granted path asks for all below it.
    edge(
        "above",
        &["-v", "/var:/h:ro"],
        r#"mounts = ["/var/log/**:ro"]"#,
        "host path /var",
    ),
    // The engine's socket is granted only by its own path, never by a glob.
    edge(
        "sockdir",
        &["-v", "/run:/h"],
        r#"mounts = ["/run/**", "/run"]"#,
        "/run/docker.sock",
    ),
    edge(
        "sockglob",
        &["-v", "/:/h"],
        r#"mounts = ["/**"]"#,
        "/run/docker.sock",
    ),
    // The capability asked is not the one granted.
    edge(
        "capother",
        &["--cap-add", "SYS_ADMIN"],
        r#"capabilities = ["NET_ADMIN"]"#,
        "capability SYS_ADMIN",
    ),
    Case {
        starts: false,
        ..edge(
            "onlyall",
            &["--cap-add", "ALL"],
            r#"capabilities = ["SYS_ADMIN", "NET_ADMIN"]"#,
            "capability ALL",
        )
    },
];

/// The policy both tests use: one rule per case granting exactly its power (by name), a rule
/// for the volumes-from source, then a last rule that matches every container of the scope
/// by name and grants nothing. `head`: mode and the like.
pub fn policy(p: &str, head: &str) -> String {
    let mut s = format!("{head}\n");
    for c in CASES {
        let suffix = if c.grantable { "ok" } else { "edge" };
        s.push_str(&format!(
            "[[allow]]\nname = \"{p}-{}-{suffix}\"\n{}\n",
            c.key, c.grant
        ));
    }
    s.push_str(&format!("[[allow]]\nname = \"{p}-src\"\nmounts = [\"/etc\"]\n"));
    s.push_str(&format!("[[allow]]\nname = \"{p}-*\"\n"));
    s
}

/// The index of the last rule (the one that matches everything of the scope and grants
/// nothing): what a denial of a `-deny` container names.
pub fn catch_all_rule() -> usize {
    CASES.len() + 2
}

/// The 1-based rule of an edge case.
pub fn rule_of(key: &str) -> usize {
    CASES.iter().position(|c| c.key == key).map_or(0, |i| i + 1)
}

/// `docker run -d` arguments for `name` asking `c`'s power, in the scope `label`.
pub fn run_args(c: &Case, p: &str, name: &str, label: &str, image: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    a.extend(["--label".to_string(), label.to_string()]);
    if !c.args.iter().any(|x| x.starts_with("--network")) {
        a.extend(["--network".to_string(), "none".to_string()]);
    }
    a.extend(c.args.iter().map(|x| x.replace("{p}", p)));
    a.push(image.into());
    a
}

/// What the tests set up before the cases: the named volume bound to /etc and the
/// volumes-from source (created, never started), as CLI argument lists.
pub fn setup(p: &str, label: &str, image: &str) -> Vec<Vec<String>> {
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    vec![
        v(&[
            "volume",
            "create",
            "--label",
            label,
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            "device=/etc",
            &format!("{p}-etcvol"),
        ]),
        v(&[
            "create",
            "--name",
            &format!("{p}-src"),
            "--label",
            label,
            "--network",
            "none",
            "-v",
            "/etc:/h",
            image,
        ]),
    ]
}

/// Removes the volumes the cases created (the containers go with the scope).
pub fn remove_volumes(p: &str, cli: impl Fn(&[&str]) -> anyhow::Result<String>) {
    if let Ok(out) = cli(&["volume", "ls", "-q", "--filter", &format!("name={p}")]) {
        for v in out.split_whitespace() {
            let _ = cli(&["volume", "rm", "-f", v]);
        }
    }
}
