//! Unit tests of host power: every spelling of every power (the bypass cases), resolution,
//! profiles, and how grants judge them.

use std::collections::BTreeMap;

use serde_json::json;

use super::inspect::EngineDefaults;
use super::*;

fn host(f: impl FnOnce(&mut HostConfigSpec)) -> HostConfigSpec {
    let mut h = HostConfigSpec::default();
    f(&mut h);
    h
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn power(f: impl FnOnce(&mut HostConfigSpec)) -> Power {
    Power::from_host_config(&host(f), User::Set("1000".into()))
}

fn asks(p: &Power) -> Vec<Ask> {
    let a = p.asks(Profile::Baseline);
    assert!(a.is_known(), "{a}");
    a.asks
}

fn texts(p: &Power, profile: Profile) -> Vec<String> {
    p.asks(profile).asks.iter().map(ToString::to_string).collect()
}

fn grants(entries: &[(&str, &[&str])]) -> Grants {
    let mut g = Grants::default();
    for (key, values) in entries {
        for v in *values {
            match *key {
                "privileged" => g.set_privileged(true),
                "run_as_root" => g.set_run_as_root(true),
                "allow_privilege_escalation" => g.set_allow_privilege_escalation(true),
                "host_namespaces" => g.add_host_namespace(v).unwrap(),
                "mounts" => g.add_mount(v).unwrap(),
                "capabilities" => g.add_capability(v).unwrap(),
                "devices" => g.add_device(v).unwrap(),
                "unconfined" => g.add_unconfined(v).unwrap(),
                "sysctls" => g.add_sysctl(v).unwrap(),
                other => panic!("{other}"),
            }
        }
    }
    g
}

fn ok(g: &Grants, p: &Power) -> bool {
    g.judge(p, Profile::Baseline).is_ok()
}

fn ungranted(g: &Grants, p: &Power, profile: Profile) -> (String, String) {
    match g.judge(p, profile) {
        Err(Refused::Ungranted { ask, grant }) => (ask.to_string(), grant),
        other => panic!("{other:?}"),
    }
}

fn host_path(path: &str, read_only: bool, via: Via) -> Ask {
    Ask::HostPath {
        path: path.into(),
        read_only,
        via,
    }
}

#[test]
fn a_plain_container_asks_nothing_under_baseline() {
    let p = power(|h| {
        h.network_mode = "bridge".into();
        h.ipc_mode = "shareable".into();
        h.cgroupns_mode = "private".into();
        h.cap_add = strings(&["CHOWN", "net_bind_service"]);
        h.cap_drop = strings(&["NET_RAW"]);
        h.security_opt = strings(&["no-new-privileges", "apparmor=docker-default", "label=level:s0"]);
        h.sysctls = BTreeMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]);
        h.binds = strings(&["/data"]);
        h.mounts = vec![MountSpec {
            kind: "tmpfs".into(),
            target: "/tmp".into(),
            ..MountSpec::default()
        }];
    });
    assert!(p.asks(Profile::Baseline).is_empty());
    assert!(ok(&Grants::default(), &p));
}

#[test]
fn privileged_and_host_namespaces() {
    let p = power(|h| {
        h.privileged = true;
        h.pid_mode = "host".into();
        h.network_mode = "HOST".into();
        h.ipc_mode = "Host".into();
        h.uts_mode = "host".into();
        h.userns_mode = "host".into();
        h.cgroupns_mode = "host".into();
    });
    assert_eq!(
        texts(&p, Profile::Baseline),
        [
            "privileged",
            "host pid namespace",
            "host network namespace",
            "host ipc namespace",
            "host uts namespace",
            "host userns namespace",
            "host cgroup namespace"
        ]
    );
    let (ask, grant) = ungranted(&grants(&[("host_namespaces", &["pid"])]), &p, Profile::Baseline);
    assert_eq!(
        (ask.as_str(), grant.as_str()),
        ("privileged", "privileged = true")
    );
    let g = grants(&[
        ("privileged", &["true"]),
        ("host_namespaces", &["pid", "network"]),
    ]);
    let (ask, grant) = ungranted(&g, &p, Profile::Baseline);
    assert_eq!(
        (ask.as_str(), grant.as_str()),
        ("host ipc namespace", "host_namespaces = [\"ipc\"]")
    );
    let g = grants(&[
        ("privileged", &["true"]),
        (
            "host_namespaces",
            &["pid", "network", "ipc", "uts", "userns", "cgroup"],
        ),
    ]);
    assert_eq!(g.judge(&p, Profile::Baseline).unwrap().len(), 7);
    assert!(
        Power::from_host_config(&HostConfigSpec::default(), User::Set(String::new()))
            .asks(Profile::Privileged)
            .is_empty()
    );
    assert!(
        p.asks(Profile::Privileged).is_empty(),
        "the privileged profile asks nothing"
    );
}

#[test]
fn binds_and_mounts_ask_the_same_cleaned_path() {
    let bind = power(|h| h.binds = strings(&["/var//log/../log/:/l"]));
    let mount = power(|h| {
        h.mounts = vec![MountSpec {
            kind: "BIND".into(),
            source: "/var/log/.".into(),
            target: "/l".into(),
            ..MountSpec::default()
        }]
    });
    assert_eq!(asks(&bind), [host_path("/var/log", false, Via::Bind)]);
    assert_eq!(asks(&mount), [host_path("/var/log", false, Via::Mount)]);
    let g = grants(&[("mounts", &["/var/log"])]);
    assert!(ok(&g, &bind) && ok(&g, &mount));
    assert!(!ok(&grants(&[("mounts", &["/var/lo"])]), &bind));
    assert_eq!(
        texts(&bind, Profile::Baseline),
        ["host path /var/log (read-write)"]
    );
}

#[test]
fn globs_stay_within_components_unless_doubled() {
    let p = |path: &str| power(|h| h.binds = vec![format!("{path}:/x")]);
    let one = grants(&[("mounts", &["/srv/*"])]);
    assert!(ok(&one, &p("/srv/app")));
    assert!(!ok(&one, &p("/srv/app/data")));
    assert!(!ok(&one, &p("/srv")));
    let all = grants(&[("mounts", &["/srv/**"])]);
    assert!(ok(&all, &p("/srv/app/data")));
    assert!(ok(&all, &p("/srv")), "X/** covers X itself");
    assert!(!ok(&all, &p("/srvx")));
    assert!(!ok(&all, &p("/")));
}

#[test]
fn read_only_grants_never_cover_read_write_mounts() {
    let rw = power(|h| h.binds = strings(&["/proc:/host/proc"]));
    let ro = power(|h| h.binds = strings(&["/proc:/host/proc:ro"]));
    let ro_mount = power(|h| {
        h.mounts = vec![MountSpec {
            kind: "bind".into(),
            source: "/proc".into(),
            read_only: true,
            ..MountSpec::default()
        }]
    });
    let non_recursive = power(|h| {
        h.mounts = vec![MountSpec {
            kind: "bind".into(),
            source: "/proc".into(),
            read_only: true,
            bind: Some(spec::BindOptionsSpec {
                read_only_non_recursive: true,
            }),
            ..MountSpec::default()
        }]
    });
    let g = grants(&[("mounts", &["/proc:ro"])]);
    assert!(ok(&g, &ro) && ok(&g, &ro_mount));
    assert!(!ok(&g, &rw));
    assert!(!ok(&g, &non_recursive), "submounts stay writable");
    assert_eq!(
        ungranted(&g, &rw, Profile::Baseline),
        (
            "host path /proc (read-write)".to_string(),
            "mounts = [\"/proc\"]".to_string()
        )
    );
    assert!(
        ok(&grants(&[("mounts", &["/proc"])]), &ro),
        "a read-write grant covers read-only"
    );
    let refused = grants(&[("mounts", &["/etc"])]).judge(&ro, Profile::Baseline);
    assert!(matches!(refused, Err(Refused::Ungranted { grant, .. }) if grant == "mounts = [\"/proc:ro\"]"));
}

#[test]
fn var_run_is_run_for_asks_and_grants() {
    let var = power(|h| h.binds = strings(&["/var/run/app:/a"]));
    let run = power(|h| h.binds = strings(&["/run/app/:/a"]));
    for g in [
        grants(&[("mounts", &["/run/app"])]),
        grants(&[("mounts", &["/var/run/app"])]),
    ] {
        assert!(ok(&g, &var) && ok(&g, &run));
    }
    assert!(ok(&grants(&[("mounts", &["/var/run/*"])]), &run));
    assert!(
        !ok(&grants(&[("mounts", &["/var/**"])]), &run),
        "/run is not under /var"
    );
}

#[test]
fn the_engine_socket_is_granted_only_by_its_own_path() {
    let sock = power(|h| h.binds = strings(&["/var/run/docker.sock:/var/run/docker.sock"]));
    let sock_run = power(|h| h.binds = strings(&["/run//docker.sock:/s"]));
    let dir = power(|h| h.binds = strings(&["/var/run:/r"]));
    let root = power(|h| h.binds = strings(&["/:/host:ro"]));
    let var = power(|h| h.binds = strings(&["/var:/v"]));

    let exact = grants(&[("mounts", &["/var/run/docker.sock"])]);
    assert!(ok(&exact, &sock) && ok(&exact, &sock_run));
    assert!(
        !ok(&exact, &dir) && !ok(&exact, &root),
        "a grant of the socket is not one of above it"
    );
    let everything = grants(&[("mounts", &["/**"])]);
    for p in [&sock, &dir, &root, &var] {
        assert!(!ok(&everything, p), "/** never hands out the engine: {p:?}");
    }
    assert!(
        !ok(&grants(&[("mounts", &["/run/*.sock"])]), &sock),
        "a glob is not its own path"
    );
    let (text, hint) = ungranted(&everything, &dir, Profile::Baseline);
    assert_eq!(
        text,
        "host path /var/run (read-write) holding the engine socket /run/docker.sock, /run/containerd/containerd.sock, /run/docker/containerd/containerd.sock, /run/podman/podman.sock"
    );
    assert!(
        hint.starts_with("mounts = [\"/var/run\", \"/run/docker.sock\""),
        "{hint}"
    );
    let with_sockets = grants(&[(
        "mounts",
        &[
            "/var/run",
            "/run/docker.sock",
            "/run/containerd/containerd.sock",
            "/run/docker/containerd/containerd.sock",
            "/run/podman/podman.sock",
        ],
    )]);
    assert!(ok(&with_sockets, &dir));
    assert_eq!(
        texts(&sock, Profile::Baseline),
        ["host path /var/run/docker.sock (read-write)"]
    );
    assert_eq!(
        sock.asks(Profile::Baseline).asks[0].grant(),
        "mounts = [\"/var/run/docker.sock\"]"
    );
}

#[test]
fn capabilities_compare_as_the_engine_does() {
    for spelling in [
        "sys_admin",
        "CAP_SYS_ADMIN",
        "cap_sys_admin",
        "Sys_Admin",
        "\u{17F}ys_admin",
    ] {
        let p = power(|h| h.cap_add = vec![spelling.to_string()]);
        assert_eq!(asks(&p), [Ask::Capability("SYS_ADMIN".into())], "{spelling}");
        for grant in ["SYS_ADMIN", "cap_sys_admin", "ALL"] {
            assert!(
                ok(&grants(&[("capabilities", &[grant])]), &p),
                "{spelling} / {grant}"
            );
        }
        assert!(!ok(&grants(&[("capabilities", &["NET_ADMIN"])]), &p));
    }
    let all = power(|h| h.cap_add = strings(&["all"]));
    assert_eq!(texts(&all, Profile::Baseline), ["capability ALL"]);
    assert!(!ok(
        &grants(&[("capabilities", &["SYS_ADMIN", "NET_ADMIN"])]),
        &all
    ));
    assert!(ok(&grants(&[("capabilities", &["all"])]), &all));
    assert_eq!(
        all.asks(Profile::Baseline).asks[0].grant(),
        "capabilities = [\"ALL\"]"
    );
    let default = power(|h| h.cap_add = strings(&["CAP_CHOWN", "kill", "NET_BIND_SERVICE"]));
    assert!(asks(&default).is_empty(), "the default set is not asked");
    let mut g = Grants::default();
    assert!(g.add_capability("SYS_ADMN").is_err());
    assert!(g.add_capability("CAP_NET_ADMIN").is_ok());
}

#[test]
fn devices_requests_and_cgroup_rules() {
    let p = power(|h| {
        h.devices = vec![DeviceSpec {
            path_on_host: "/dev//fuse".into(),
            path_in_container: "/dev/fuse".into(),
        }];
        h.device_requests = vec![
            DeviceRequestSpec {
                capabilities: vec![strings(&["gpu"])],
                ..DeviceRequestSpec::default()
            },
            DeviceRequestSpec {
                driver: "cdi".into(),
                device_ids: strings(&["nvidia.com/gpu=all"]),
                ..DeviceRequestSpec::default()
            },
        ];
        h.device_cgroup_rules = strings(&["c  10:229 rwm"]);
    });
    assert_eq!(
        texts(&p, Profile::Baseline),
        [
            "device /dev/fuse",
            "device request cdi:nvidia.com/gpu=all",
            "device request gpu",
            "device cgroup rule c 10:229 rwm"
        ]
    );
    let g = grants(&[("devices", &["/dev/fuse", "gpu", "cdi:nvidia.com/*", "c 10:* rwm"])]);
    assert!(ok(&g, &p));
    let g = grants(&[(
        "devices",
        &["/dev/fuse", "gpu", "cdi:nvidia.com/*", "c 10:229 rw"],
    )]);
    assert_eq!(
        ungranted(&g, &p, Profile::Baseline).1,
        "devices = [\"c 10:229 rwm\"]"
    );
    let any = grants(&[("devices", &["/dev/fuse", "gpu", "cdi:*", "a *:* rwm"])]);
    assert!(ok(&any, &p));
    let all_rule = power(|h| h.device_cgroup_rules = strings(&["a *:* rwm"]));
    assert!(!ok(&grants(&[("devices", &["c *:* rwm"])]), &all_rule));
    let mut g = Grants::default();
    for bad in ["fuse", "x 1:2 r", "c 1:2 q", "cdi:", "c 1:2"] {
        assert!(g.add_device(bad).is_err(), "{bad}");
    }
}

#[test]
fn unconfined_options_in_every_spelling() {
    for (opt, what) in [
        ("seccomp=unconfined", "seccomp"),
        ("seccomp:unconfined", "seccomp"),
        ("apparmor=unconfined", "apparmor"),
        ("apparmor:unconfined", "apparmor"),
        ("label=disable", "label"),
        ("label:disable", "label"),
        ("disable", "label"),
        ("label=type:unconfined_t", "label"),
        ("systempaths=unconfined", "systempaths"),
        ("writable-cgroups", "cgroups"),
    ] {
        let p = power(|h| h.security_opt = vec![opt.to_string()]);
        let a = asks(&p);
        assert_eq!(a.len(), 1, "{opt}");
        assert_eq!(a[0].grant(), format!("unconfined = [\"{what}\"]"), "{opt}");
        assert!(ok(&grants(&[("unconfined", &[what])]), &p), "{opt}");
        assert!(!ok(&Grants::default(), &p), "{opt}");
    }
    let p = power(|h| h.security_opt = strings(&["seccomp:unconfined"]));
    assert_eq!(
        texts(&p, Profile::Baseline),
        ["seccomp unconfined (seccomp:unconfined)"]
    );
    // The CLI's systempaths=unconfined arrives as empty masked and read-only paths.
    let p = power(|h| {
        h.masked_paths = Some(Vec::new());
        h.readonly_paths = Some(Vec::new());
    });
    assert!(
        asks(&p)
            .iter()
            .all(|a| a.grant() == "unconfined = [\"systempaths\"]")
    );
    assert!(ok(&grants(&[("unconfined", &["systempaths"])]), &p));
    let mut g = Grants::default();
    assert!(g.add_unconfined("selinux").is_err());
}

#[test]
fn sysctls_outside_the_safe_set() {
    let p = power(|h| {
        h.sysctls = BTreeMap::from([
            ("kernel.msgmax".into(), "65536".into()),
            ("net/core/somaxconn".into(), "1024".into()),
            ("kernel/shm_rmid_forced".into(), "1".into()),
            ("net.ipv4.tcp_keepalive_time".into(), "60".into()),
        ])
    });
    assert_eq!(
        texts(&p, Profile::Baseline),
        ["sysctl kernel.msgmax", "sysctl net.core.somaxconn"]
    );
    assert!(!ok(&grants(&[("sysctls", &["net.core.*"])]), &p));
    assert!(ok(&grants(&[("sysctls", &["net.core.*", "kernel.msg*"])]), &p));
    assert!(ok(&grants(&[("sysctls", &["net/*", "kernel.msgmax"])]), &p));
    let mut g = Grants::default();
    assert!(g.add_sysctl("kernel msgmax").is_err());
}

#[test]
fn inline_volume_options_bind_host_paths() {
    let volume = |name: &str, driver: &str, options: &[(&str, &str)]| MountSpec {
        kind: "volume".into(),
        source: name.into(),
        target: "/h".into(),
        volume: Some(VolumeOptionsSpec {
            subpath: String::new(),
            driver: Some(DriverSpec {
                name: driver.into(),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
        }),
        ..MountSpec::default()
    };
    let root = [("type", "none"), ("o", "bind"), ("device", "/")];
    let anonymous = power(|h| h.mounts = vec![volume("", "", &root)]);
    assert_eq!(asks(&anonymous), [host_path("/", false, Via::InlineVolume)]);
    let named = power(|h| h.mounts = vec![volume("root", "local", &root)]);
    let a = named.asks(Profile::Baseline);
    assert_eq!(a.asks, [host_path("/", false, Via::Volume("root".into()))]);
    assert!(
        !a.is_known(),
        "the named volume may exist already: it is looked up"
    );
    assert_eq!(
        named.references(Profile::Baseline),
        [Reference::Volume("root".into())]
    );
    let plugin = power(|h| h.mounts = vec![volume("", "vieux/sshfs", &[("sshcmd", "u@h:/")])]);
    assert!(
        asks(&plugin).is_empty(),
        "another driver's volume is the driver's business"
    );
    let tmpfs = power(|h| h.mounts = vec![volume("", "local", &[("type", "tmpfs"), ("device", "tmpfs")])]);
    assert!(asks(&tmpfs).is_empty());
}

#[test]
fn named_volumes_are_looked_up_and_fail_closed() {
    let p = power(|h| h.binds = strings(&["root:/h:ro", "data:/d"]));
    assert_eq!(
        p.references(Profile::Baseline),
        [Reference::Volume("data".into()), Reference::Volume("root".into())]
    );
    let a = p.asks(Profile::Baseline);
    assert!(a.asks.is_empty() && !a.is_known());
    assert!(matches!(
        Grants::default().check(&a),
        Err(Refused::Unknown { .. })
    ));

    let mut resolved = p.clone();
    resolved
        .resolve(&|r| match r {
            Reference::Volume(v) if v == "root" => Some(Resolved::Volume(VolumeFacts {
                driver: "local".into(),
                options: BTreeMap::from([
                    ("type".into(), "none".into()),
                    ("o".into(), "bind".into()),
                    ("device".into(), "/".into()),
                ]),
            })),
            Reference::Volume(_) => Some(Resolved::NoVolume),
            _ => None,
        })
        .unwrap();
    assert!(resolved.is_known());
    assert_eq!(
        texts(&resolved, Profile::Baseline),
        [
            "host path / (read-only, volume root) holding the engine socket /run/docker.sock, /run/containerd/containerd.sock, /run/docker/containerd/containerd.sock, /run/podman/podman.sock"
        ]
    );
    assert!(resolved.references(Profile::Baseline).is_empty());

    let mut failed = p.clone();
    let err = failed.resolve(&|_| None).unwrap_err();
    assert_eq!(err.references.len(), 2);
    assert!(
        !failed.asks(Profile::Baseline).is_known(),
        "unresolved is unknown, never empty"
    );
    let mut wrong = p;
    assert!(wrong.resolve(&|_| Some(Resolved::ImageUser("x".into()))).is_err());
    assert!(!wrong.is_known());
}

fn inspected(f: impl FnOnce(&mut HostConfigSpec)) -> Box<Power> {
    Box::new(power(f))
}

#[test]
fn volumes_from_takes_the_source_containers_mounts() {
    let p = power(|h| h.volumes_from = strings(&["src:ro", "other"]));
    assert_eq!(
        p.references(Profile::Baseline),
        [
            Reference::Container("other".into()),
            Reference::Container("src".into())
        ]
    );
    let mut r = p.clone();
    r.resolve(&|reference| match reference {
        Reference::Container(c) if c == "src" => Some(Resolved::Container(inspected(|h| {
            h.binds = strings(&["/etc:/etc", "db:/db"]);
            h.privileged = true;
        }))),
        Reference::Container(_) => Some(Resolved::Container(inspected(|_| {}))),
        _ => None,
    })
    .unwrap();
    // The source's own volume is looked up next round, read-only too.
    assert_eq!(r.references(Profile::Baseline), [Reference::Volume("db".into())]);
    r.resolve(&|_| {
        Some(Resolved::Volume(VolumeFacts {
            driver: "local".into(),
            options: BTreeMap::from([
                ("o".into(), "bind".into()),
                ("device".into(), "/srv/db".into()),
                ("type".into(), "none".into()),
            ]),
        }))
    })
    .unwrap();
    assert_eq!(
        asks(&r),
        [
            host_path("/etc", true, Via::VolumesFrom("src".into())),
            host_path("/srv/db", true, Via::Volume("db".into())),
        ],
        "mounts only, read-only as asked; not the source's privileges"
    );
    assert_eq!(
        texts(&r, Profile::Baseline)[0],
        "host path /etc (read-only, volumes-from src)"
    );
    assert!(ok(&grants(&[("mounts", &["/etc:ro", "/srv/db:ro"])]), &r));
}

#[test]
fn joined_namespaces_ask_what_the_other_container_has() {
    let p = power(|h| {
        h.pid_mode = "container:app".into();
        h.network_mode = "container:net".into();
        h.ipc_mode = "CONTAINER:ipc".into();
    });
    assert_eq!(p.references(Profile::Baseline).len(), 3);
    let mut r = p.clone();
    r.resolve(&|reference| {
        let Reference::Container(c) = reference else {
            return None;
        };
        Some(Resolved::Container(match c.as_str() {
            "app" => inspected(|h| {
                h.binds = strings(&["/var/log:/l"]);
                h.cap_add = strings(&["NET_ADMIN"]);
            }),
            "net" => inspected(|h| {
                h.network_mode = "host".into();
                h.privileged = true;
            }),
            _ => inspected(|h| h.ipc_mode = "host".into()),
        }))
    })
    .unwrap();
    assert_eq!(
        texts(&r, Profile::Baseline),
        [
            "host network namespace",
            "host ipc namespace",
            "host path /var/log (read-write, reachable through the pid namespace of app)",
            "capability NET_ADMIN",
        ],
        "pid: all the other holds; network, ipc: the namespace only"
    );
    // A container sharing the host's pid namespace passes it on.
    let mut host_pid = power(|h| h.pid_mode = "container:x".into());
    host_pid
        .resolve(&|_| Some(Resolved::Container(inspected(|h| h.pid_mode = "host".into()))))
        .unwrap();
    assert_eq!(asks(&host_pid), [Ask::HostNamespace(Namespace::Pid)]);
    // The other container cannot be inspected: unknown.
    let mut gone = power(|h| h.network_mode = "container:gone".into());
    assert!(gone.resolve(&|_| None).is_err());
    assert!(!gone.asks(Profile::Baseline).is_known());
}

#[test]
fn chains_are_followed_round_by_round_and_bounded() {
    // Each container joins the next one's network namespace; the last is on the host's.
    let chain = |n: usize| {
        move |r: &Reference| {
            let Reference::Container(c) = r else { return None };
            let i: usize = c.trim_start_matches('c').parse().ok()?;
            Some(Resolved::Container(Box::new(power(|h| {
                h.network_mode = if i + 1 == n {
                    "host".into()
                } else {
                    format!("container:c{}", i + 1)
                };
            }))))
        }
    };
    let mut p = power(|h| h.network_mode = "container:c0".into());
    let mut rounds = 0;
    while !p.references(Profile::Baseline).is_empty() {
        let _ = p.resolve(&chain(3));
        rounds += 1;
    }
    assert_eq!(rounds, 3);
    assert_eq!(asks(&p), [Ask::HostNamespace(Namespace::Network)]);

    let mut deep = power(|h| h.network_mode = "container:c0".into());
    let mut rounds = 0;
    while !deep.references(Profile::Baseline).is_empty() && rounds < 20 {
        let _ = deep.resolve(&chain(100));
        rounds += 1;
    }
    assert!(rounds <= usize::from(MAX_DEPTH) + 2, "{rounds}");
    assert!(!deep.asks(Profile::Baseline).is_known(), "too deep is unknown");
}

#[test]
fn a_known_ungranted_ask_settles_it_before_unknowns() {
    let p = power(|h| {
        h.privileged = true;
        h.binds = strings(&["vol:/v"]);
    });
    let (ask, _) = ungranted(&Grants::default(), &p, Profile::Baseline);
    assert_eq!(ask, "privileged");
    let refused = grants(&[("privileged", &["true"])]).judge(&p, Profile::Baseline);
    assert!(matches!(refused, Err(Refused::Unknown { ref missing }) if missing[0].contains("volume vol")));
    assert_eq!(
        refused.unwrap_err().to_string(),
        "host power not known: volume vol (its driver and options) not resolved"
    );
    assert!(
        Power::unknown("the inspect has no HostConfig")
            .asks(Profile::Privileged)
            .is_empty(),
        "the privileged profile needs no facts"
    );
}

#[test]
fn restricted_wants_non_root_no_new_privileges_and_dropped_capabilities() {
    let hardened = |user: &str| {
        Power::from_host_config(
            &host(|h| {
                h.cap_drop = strings(&["all"]);
                h.cap_add = strings(&["net_bind_service"]);
                h.security_opt = strings(&["no-new-privileges:true"]);
            }),
            User::Set(user.into()),
        )
    };
    for user in ["1000", "1000:0", "65534:65534", "01"] {
        let a = hardened(user).asks(Profile::Restricted);
        assert!(a.is_empty(), "{user}: {a}");
    }
    for user in ["", "0", "root", "0:1000", "root:root", "00", ":1000"] {
        let p = hardened(user);
        let (text, grant) = ungranted(&Grants::default(), &p, Profile::Restricted);
        assert!(text.starts_with("runs as root"), "{user}: {text}");
        assert_eq!(grant, "run_as_root = true");
        assert!(
            grants(&[("run_as_root", &["true"])])
                .judge(&p, Profile::Restricted)
                .is_ok()
        );
        assert!(
            p.asks(Profile::Baseline).is_empty(),
            "baseline does not judge the user"
        );
    }
    let named = hardened("nginx");
    assert_eq!(
        texts(&named, Profile::Restricted),
        ["runs as user \"nginx\", which cannot be proven non-root (restricted wants a numeric non-zero uid)"]
    );

    let plain = Power::from_host_config(&HostConfigSpec::default(), User::Set("1000".into()));
    let a = plain.asks(Profile::Restricted);
    assert_eq!(a.asks[0], Ask::PrivilegeEscalation);
    assert_eq!(
        a.asks.len(),
        1 + caps::DEFAULT.len() - 1,
        "every default but NET_BIND_SERVICE is kept"
    );
    assert_eq!(
        ungranted(&Grants::default(), &plain, Profile::Restricted),
        (
            "privilege escalation (no-new-privileges not set)".to_string(),
            "allow_privilege_escalation = true".to_string()
        )
    );
    let mut g = grants(&[("allow_privilege_escalation", &["true"])]);
    let (text, grant) = ungranted(&g, &plain, Profile::Restricted);
    assert!(text.starts_with("keeps capability "), "{text}");
    assert!(grant.starts_with("capabilities = "));
    g.add_capability("ALL").unwrap();
    assert!(g.judge(&plain, Profile::Restricted).is_ok());

    // Dropping each default one by one is dropping them all.
    let each = Power::from_host_config(
        &host(|h| {
            h.cap_drop = caps::DEFAULT.iter().map(|c| format!("CAP_{c}")).collect();
            h.security_opt = strings(&["no-new-privileges"]);
        }),
        User::Set("1000".into()),
    );
    assert!(each.asks(Profile::Restricted).is_empty());
    // An added capability is asked once, and granted by the same key.
    let added = Power::from_host_config(
        &host(|h| {
            h.cap_drop = strings(&["ALL"]);
            h.cap_add = strings(&["NET_ADMIN"]);
            h.security_opt = strings(&["no-new-privileges"]);
        }),
        User::Set("1000".into()),
    );
    assert_eq!(texts(&added, Profile::Restricted), ["capability NET_ADMIN"]);
    // The last no-new-privileges wins.
    let off = Power::from_host_config(
        &host(|h| {
            h.cap_drop = strings(&["ALL"]);
            h.security_opt = strings(&["no-new-privileges", "no-new-privileges=false"]);
        }),
        User::Set("1000".into()),
    );
    assert_eq!(asks_of(&off, Profile::Restricted), [Ask::PrivilegeEscalation]);
}

fn asks_of(p: &Power, profile: Profile) -> Vec<Ask> {
    p.asks(profile).asks
}

#[test]
fn the_image_decides_the_user_when_the_request_sets_none() {
    let p = Power::from_host_config(
        &host(|h| {
            h.cap_drop = strings(&["ALL"]);
            h.security_opt = strings(&["no-new-privileges"]);
        }),
        User::FromImage("app:1".into()),
    );
    assert!(
        p.references(Profile::Baseline).is_empty(),
        "baseline does not need it"
    );
    assert!(p.asks(Profile::Baseline).is_known());
    assert_eq!(
        p.references(Profile::Restricted),
        [Reference::Image("app:1".into())]
    );
    assert!(!p.asks(Profile::Restricted).is_known());
    for (image_user, root) in [("", true), ("0", true), ("app", true), ("1000", false)] {
        let mut r = p.clone();
        r.resolve(&|_| Some(Resolved::ImageUser(image_user.into())))
            .unwrap();
        let a = r.asks(Profile::Restricted);
        assert!(a.is_known());
        assert_eq!(!a.asks.is_empty(), root, "{image_user}");
    }
    let mut failed = p;
    assert!(failed.resolve(&|_| None).is_err());
    assert!(!failed.asks(Profile::Restricted).is_known());
    assert!(failed.asks(Profile::Baseline).is_known());
}

#[test]
fn exec_asks_privileged_and_its_user() {
    assert_eq!(asks(&Power::from_exec(true, "")), [Ask::Privileged]);
    assert!(Power::from_exec(false, "").asks(Profile::Restricted).is_empty());
    assert_eq!(
        asks_of(&Power::from_exec(false, "0"), Profile::Restricted),
        [Ask::RunAsRoot { user: "0".into() }]
    );
    assert!(
        Power::from_exec(false, "1000")
            .asks(Profile::Restricted)
            .is_empty()
    );
}

#[test]
fn merging_two_readings_asks_what_either_does() {
    let mut a = Power::from_host_config(
        &host(|h| {
            h.cap_drop = strings(&["ALL"]);
            h.security_opt = strings(&["no-new-privileges"]);
        }),
        User::Set("1000".into()),
    );
    let b = Power::from_host_config(&host(|h| h.privileged = true), User::Set("1000".into()));
    a.merge(b);
    let asked = asks_of(&a, Profile::Restricted);
    assert!(asked.contains(&Ask::Privileged));
    assert!(asked.contains(&Ask::PrivilegeEscalation), "one reading lacks it");
    assert!(asked.contains(&Ask::KeptCapability("ALL".into())));
}

#[test]
fn grants_display_as_toml() {
    let g = grants(&[
        ("privileged", &["true"]),
        ("mounts", &["/var/log/**", "/proc:ro"]),
        ("capabilities", &["net_admin"]),
    ]);
    assert_eq!(
        g.to_string(),
        "privileged = true, mounts = [\"/var/log/**\", \"/proc:ro\"], capabilities = [\"NET_ADMIN\"]"
    );
    assert_eq!(Grants::default().to_string(), "no host power");
    let mut bad = Grants::default();
    for m in [
        "var/log",
        "/var/log/",
        "/var//log",
        "/var/./log",
        "/var/../etc",
        "/var/[log",
    ] {
        assert!(bad.add_mount(m).is_err(), "{m}");
    }
    assert!(bad.add_mount("/").is_ok() && bad.add_mount("/**").is_ok());
}

// ---------------------------------------------------------------------------------------
// From an inspect

fn from(v: serde_json::Value) -> Power {
    from_inspect(&v, None, &EngineDefaults::default())
}

#[test]
fn inspect_reads_host_config_and_mount_points() {
    let v = json!({
        "Id": "c0ffee",
        "Config": {"User": "", "Image": "app:1"},
        "HostConfig": {
            "Privileged": false,
            "PidMode": "host",
            "NetworkMode": "bridge",
            "Binds": ["/var/run/docker.sock:/var/run/docker.sock"],
            "CapAdd": ["CAP_SYS_PTRACE"],
            "CapDrop": null,
            "SecurityOpt": ["seccomp=unconfined"],
            "VolumesFrom": ["gone"],
            "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "Mounts": [{"Type": "volume", "Source": "inline", "Target": "/i",
                        "VolumeOptions": {"DriverConfig": {"Name": "local",
                            "Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]
        },
        "Mounts": [
            {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "RW": true},
            {"Type": "bind", "Source": "/srv/shared", "Destination": "/shared", "RW": false},
            {"Type": "volume", "Name": "data", "Driver": "local", "Source": "/var/lib/docker/volumes/data/_data", "RW": true},
            {"Type": "volume", "Name": "remote", "Driver": "vieux/sshfs", "RW": true},
            {"Type": "tmpfs", "Destination": "/tmp"}
        ]
    });
    let mut v = v;
    v["HostConfig"]["MaskedPaths"] = json!(read::DEFAULT_MASKED);
    let p = from(v);
    assert_eq!(
        p.references(Profile::Restricted),
        [
            Reference::Volume("data".into()),
            Reference::Volume("inline".into())
        ],
        "VolumesFrom is in Mounts already; another driver's volume is not looked up"
    );
    assert_eq!(
        texts(&p, Profile::Baseline),
        [
            "host pid namespace",
            "host path /etc (read-write, volume inline)",
            "host path /srv/shared (read-only)",
            "host path /var/run/docker.sock (read-write)",
            "capability SYS_PTRACE",
            "seccomp unconfined (seccomp=unconfined)",
        ]
    );
    // The inspect's empty user is root (the engine put the image's user there already).
    assert!(asks_of(&p, Profile::Restricted).contains(&Ask::RunAsRoot { user: String::new() }));
    let with_image_user = from_inspect(
        &json!({"HostConfig": {"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]}, "Config": {"User": ""}}),
        Some("1000"),
        &EngineDefaults::default(),
    );
    assert!(with_image_user.asks(Profile::Restricted).is_empty());
}

#[test]
fn inspect_that_hides_power_is_unknown() {
    assert!(!from(json!({"Id": "x"})).asks(Profile::Baseline).is_known());
    assert!(
        !from(json!({"HostConfig": null}))
            .asks(Profile::Baseline)
            .is_known()
    );
    for bad in [
        json!({"HostConfig": {"Privileged": "true"}}),
        json!({"HostConfig": {"Binds": "/:/host"}}),
        json!({"HostConfig": {"Binds": [5]}}),
        json!({"HostConfig": {"CapAdd": {"SYS_ADMIN": true}}}),
        json!({"HostConfig": {"Sysctls": ["kernel.msgmax=1"]}}),
        json!({"HostConfig": {"Devices": [{"PathOnHost": 1}]}}),
        json!({"HostConfig": {}, "Mounts": {"Source": "/"}}),
        json!({"HostConfig": {}, "Mounts": [{"Type": "bind", "Source": "/", "RW": "yes"}]}),
        json!({"HostConfig": {}, "Config": {"User": 0}}),
    ] {
        let p = from(bad.clone());
        assert!(!p.asks(Profile::Restricted).is_known(), "{bad}");
    }
    // Absent and null are Go's zero values.
    let p = from(json!({"HostConfig": {"Binds": null, "CapAdd": null, "Sysctls": null}, "Mounts": []}));
    assert!(p.asks(Profile::Baseline).is_empty());
    // Without Mounts, VolumesFrom is looked up.
    let p = from(json!({"HostConfig": {"VolumesFrom": ["src:ro"]}}));
    assert_eq!(
        p.references(Profile::Baseline),
        [Reference::Container("src".into())]
    );
}

#[test]
fn inspect_cgroupns_host_is_counted_only_when_it_is_not_the_default() {
    let v = json!({"HostConfig": {"CgroupnsMode": "host"}, "Mounts": []});
    assert_eq!(asks(&from(v.clone())), [Ask::HostNamespace(Namespace::Cgroup)]);
    let v1 = EngineDefaults {
        host_cgroupns_by_default: true,
    };
    assert!(from_inspect(&v, None, &v1).asks(Profile::Baseline).is_empty());
}

#[test]
fn the_label_the_engine_adds_to_host_pid_ipc_and_privileged_containers_is_not_asked_again() {
    let v = json!({"HostConfig": {"PidMode": "host", "SecurityOpt": ["label=disable"]}, "Mounts": []});
    assert_eq!(asks(&from(v)), [Ask::HostNamespace(Namespace::Pid)]);
    let v = json!({"HostConfig": {"IpcMode": "host", "SecurityOpt": ["label:disable"]}, "Mounts": []});
    assert_eq!(asks(&from(v)), [Ask::HostNamespace(Namespace::Ipc)]);
    // Without them, the engine adds nothing: label=disable was asked.
    let v = json!({"HostConfig": {"SecurityOpt": ["label=disable"]}, "Mounts": []});
    assert_eq!(asks(&from(v)).len(), 1);
}

#[test]
fn inspect_reads_back_what_a_container_joined() {
    let v = json!({"HostConfig": {"NetworkMode": "container:0123abcd", "PidMode": "container:web"}, "Mounts": []});
    assert_eq!(
        from(v).references(Profile::Baseline),
        [
            Reference::Container("0123abcd".into()),
            Reference::Container("web".into())
        ]
    );
}

#[test]
fn a_path_is_asked_once() {
    let p = power(|h| {
        h.binds = strings(&["/srv:/a", "/srv:/b:ro", "/etc:/e:ro"]);
        h.mounts = vec![
            MountSpec {
                kind: "bind".into(),
                source: "/srv/".into(),
                ..MountSpec::default()
            },
            MountSpec {
                kind: "bind".into(),
                source: "/etc".into(),
                read_only: true,
                ..MountSpec::default()
            },
        ];
    });
    assert_eq!(
        texts(&p, Profile::Baseline),
        ["host path /etc (read-only)", "host path /srv (read-write)"]
    );
}
