//! The request reader's host-power cases, as an attacker would spell them: nested keys in
//! every case Go folds, duplicates decoding into what came before, `null`, `Binds` beside
//! `Mounts`, top-level `HostConfig` fields, exec, legacy start, services, engine plugins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::power::{Ask, Namespace, Profile, Reference};

use super::*;

fn body(s: &str) -> CreateBody {
    create_body(s.as_bytes()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// What a create body asks under baseline, as text.
fn asks(s: &str) -> Vec<String> {
    asks_under(s, Profile::Baseline)
}

fn asks_under(s: &str, profile: Profile) -> Vec<String> {
    body(s)
        .power()
        .asks(profile)
        .asks
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_docker_cli_body_reads_whole() {
    let b = body(
        r#"{"Hostname":"","User":"1000:1000","Image":"app:1","Labels":{"a":"1"},
            "HostConfig":{"Binds":["/srv/data:/data:ro","cache:/cache"],"NetworkMode":"bridge",
              "CapAdd":["NET_ADMIN"],"CapDrop":["ALL"],"PidMode":"host","Privileged":false,
              "SecurityOpt":["no-new-privileges"],"Sysctls":{"net.core.somaxconn":"1024"},
              "Devices":[{"PathOnHost":"/dev/fuse","PathInContainer":"/dev/fuse","CgroupPermissions":"rwm"}],
              "Mounts":[{"Type":"bind","Source":"/var/log","Target":"/logs","ReadOnly":true}],
              "MaskedPaths":null,"ReadonlyPaths":null,"Isolation":"","Init":null},
            "NetworkingConfig":{"EndpointsConfig":{}}}"#,
    );
    assert_eq!((b.image.as_str(), b.user.as_str()), ("app:1", "1000:1000"));
    assert_eq!(b.host_config.binds, ["/srv/data:/data:ro", "cache:/cache"]);
    assert_eq!(b.legacy_host_config, None);
    let p = b.power();
    assert_eq!(
        p.references(Profile::Baseline),
        [Reference::Volume("cache".into())]
    );
    assert_eq!(
        p.asks(Profile::Baseline)
            .asks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "host pid namespace",
            "host path /srv/data (read-only)",
            "host path /var/log (read-only)",
            "capability NET_ADMIN",
            "device /dev/fuse",
            "sysctl net.core.somaxconn",
        ]
    );
}

#[test]
fn nested_keys_fold_as_go_folds_them() {
    for spelling in [
        r#"{"Image":"x","HostConfig":{"Privileged":true}}"#,
        r#"{"Image":"x","hostconfig":{"privileged":true}}"#,
        r#"{"Image":"x","HOSTCONFIG":{"PRIVILEGED":true}}"#,
        "{\"Image\":\"x\",\"Ho\u{17F}tConfig\":{\"Privileged\":true}}",
        r#"{"Image":"x","hostConfig":{"pRiViLeGeD":true}}"#,
    ] {
        assert_eq!(asks(spelling), ["privileged"], "{spelling}");
    }
    // Not folds: a dotless i, an accented e, a trailing space are other names.
    for other in [
        "{\"Image\":\"x\",\"HostConfig\":{\"Pr\u{131}vileged\":true}}",
        "{\"Image\":\"x\",\"HostConfig\":{\"Privil\u{e9}ged\":true}}",
        r#"{"Image":"x","HostConfig":{"Privileged ":true}}"#,
    ] {
        assert!(asks(other).is_empty(), "{other}");
    }
    // Deeper: mount and volume option keys.
    let b = "{\"Image\":\"x\",\"hostconfig\":{\"mounts\":[{\"TYPE\":\"volume\",\"\u{17F}ource\":\"\",\"target\":\"/h\",
        \"volumeoptions\":{\"driverconfig\":{\"NAME\":\"local\",\"options\":{\"type\":\"none\",\"o\":\"bind\",\"device\":\"/\"}}}}]}}";
    assert_eq!(
        asks(b),
        [
            "host path / (read-write, volume options in the request) holding the engine socket /run/docker.sock, /run/containerd/containerd.sock, /run/docker/containerd/containerd.sock, /run/podman/podman.sock"
        ]
    );
    assert_eq!(
        asks(
            r#"{"Image":"x","HostConfig":{"capadd":["sys_admin"],"SECURITYOPT":["seccomp:unconfined"],"pidmode":"host"}}"#
        ),
        [
            "host pid namespace",
            "capability SYS_ADMIN",
            "seccomp unconfined (seccomp:unconfined)"
        ]
    );
}

#[test]
fn duplicates_decode_into_what_the_first_left() {
    // A second HostConfig object decodes into the same struct: Privileged stays.
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"Privileged":true},"hostconfig":{"Binds":[]}}"#),
        ["privileged"]
    );
    // A second array decodes element by element into the first: null keeps the old one.
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"Binds":["/etc:/e"],"binds":[null]}}"#),
        ["host path /etc (read-write)"]
    );
    assert!(asks(r#"{"Image":"x","HostConfig":{"Binds":["/etc:/e"],"Binds":[]}}"#).is_empty());
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"Binds":["/etc:/e"],"Binds":["/srv:/s"]}}"#),
        ["host path /srv (read-write)"],
        "the last one wins when it says something"
    );
    // ...and a mount object into the mount there: the Source stays.
    assert_eq!(
        asks(
            r#"{"Image":"x","HostConfig":{"Mounts":[{"Type":"bind","Source":"/etc","Target":"/e"}],
                "Mounts":[{"Target":"/harmless"}]}}"#
        ),
        ["host path /etc (read-write)"]
    );
    // The last scalar wins; null leaves a bool or string as it was.
    assert!(asks(r#"{"Image":"x","HostConfig":{"Privileged":true,"privileged":false}}"#).is_empty());
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"Privileged":true,"Privileged":null}}"#),
        ["privileged"]
    );
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"PidMode":"host","PidMode":null}}"#),
        ["host pid namespace"]
    );
    // null clears a slice, a map, a pointer.
    assert!(asks(r#"{"Image":"x","HostConfig":{"Binds":["/:/h"],"Binds":null}}"#).is_empty());
    assert!(
        asks(r#"{"Image":"x","HostConfig":{"Sysctls":{"kernel.msgmax":"1"},"Sysctls":null}}"#).is_empty()
    );
    assert!(
        asks(r#"{"Image":"x","HostConfig":{"Privileged":true},"HostConfig":null}"#).is_empty(),
        "HostConfig null: the engine creates it unprivileged"
    );
    // A map merges; a key's later value wins.
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"Sysctls":{"kernel.msgmax":"1"},"sysctls":{"net.core.x":"1"}}}"#),
        ["sysctl kernel.msgmax", "sysctl net.core.x"]
    );
}

#[test]
fn binds_and_mounts_together_and_the_cap_add_string_form() {
    assert_eq!(
        asks(
            r#"{"Image":"x","HostConfig":{"Binds":["/etc:/e:ro"],
                "Mounts":[{"Type":"bind","Source":"/var/lib/docker","Target":"/d"}]}}"#
        ),
        [
            "host path /etc (read-only)",
            "host path /var/lib/docker (read-write)"
        ]
    );
    // Engines before 29 read CapAdd as a string too.
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"CapAdd":"CAP_SYS_ADMIN"}}"#),
        ["capability SYS_ADMIN"]
    );
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"CapAdd":["all"]}}"#),
        ["capability ALL"]
    );
}

#[test]
fn top_level_host_config_fields_count_where_older_engines_read_them() {
    // No HostConfig: engines before 27 read these as the HostConfig.
    let b = body(r#"{"Image":"x","Privileged":true,"Binds":["/:/host"],"pidmode":"host"}"#);
    assert!(b.legacy_host_config.is_some());
    let a: Vec<String> = b
        .power()
        .asks(Profile::Baseline)
        .asks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        a[..2],
        ["privileged".to_string(), "host pid namespace".to_string()]
    );
    assert!(a[2].starts_with("host path / (read-write)"), "{a:?}");
    // HostConfig null is no HostConfig.
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":null,"Privileged":true}"#),
        ["privileged"]
    );
    // With a HostConfig, every engine reads that one only.
    assert!(asks(r#"{"Image":"x","HostConfig":{},"Privileged":true}"#).is_empty());
    // Under restricted, what one reading lacks is asked: engines since 27 ignore these.
    let restricted = asks_under(
        r#"{"Image":"x","User":"1000","CapDrop":["ALL"],"SecurityOpt":["no-new-privileges"]}"#,
        Profile::Restricted,
    );
    assert!(restricted.contains(&"privilege escalation (no-new-privileges not set)".to_string()));
}

#[test]
fn namespace_modes_are_read_at_least_as_strictly_as_the_engine() {
    // The engine refuses "HOST" for pid (PidMode.IsHost is exact): asking is never less.
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"PidMode":"HOST"}}"#),
        ["host pid namespace"]
    );
    assert_eq!(
        asks(
            r#"{"Image":"x","HostConfig":{"UsernsMode":"host","CgroupnsMode":"host","UTSMode":"host","IpcMode":"host"}}"#
        ),
        [
            "host ipc namespace",
            "host uts namespace",
            "host userns namespace",
            "host cgroup namespace"
        ]
    );
    let p = body(r#"{"Image":"x","HostConfig":{"NetworkMode":"container:db","PidMode":"container:app"}}"#)
        .power();
    assert_eq!(
        p.references(Profile::Baseline),
        [
            Reference::Container("app".into()),
            Reference::Container("db".into())
        ]
    );
    assert!(
        !p.asks(Profile::Baseline).is_known(),
        "not judged before the containers are looked up"
    );
}

#[test]
fn masked_paths_null_and_empty_differ() {
    assert!(asks(r#"{"Image":"x","HostConfig":{"MaskedPaths":null}}"#).is_empty());
    assert_eq!(
        asks(r#"{"Image":"x","HostConfig":{"MaskedPaths":[],"ReadonlyPaths":[]}}"#),
        [
            "systempaths unconfined (MaskedPaths without the defaults)",
            "systempaths unconfined (ReadonlyPaths without the defaults)"
        ]
    );
}

#[test]
fn wrong_types_are_refused_as_the_engine_refuses_them() {
    for bad in [
        r#"{"Image":"x","HostConfig":{"Privileged":"true"}}"#,
        r#"{"Image":"x","HostConfig":{"Privileged":1}}"#,
        r#"{"Image":"x","HostConfig":{"Binds":"/:/h"}}"#,
        r#"{"Image":"x","HostConfig":{"Binds":[1]}}"#,
        r#"{"Image":"x","HostConfig":[]}"#,
        r#"{"Image":"x","HostConfig":{"CapAdd":5}}"#,
        r#"{"Image":"x","HostConfig":{"Sysctls":["a=b"]}}"#,
        r#"{"Image":"x","HostConfig":{"Mounts":{}}}"#,
        r#"{"Image":"x","HostConfig":{"Mounts":[{"ReadOnly":"yes"}]}}"#,
        r#"{"Image":"x","HostConfig":{"Mounts":[{"VolumeOptions":[]}]}}"#,
        r#"{"Image":"x","User":0}"#,
        r#"{"Image":"x","HostConfig":{"Privileged":true}} {"Image":"y"}"#,
    ] {
        assert!(create_body(bad.as_bytes()).is_err(), "{bad}");
    }
    // Fields that are not read are skipped whatever they hold.
    assert!(create_body(br#"{"Image":"x","HostConfig":{"Memory":"lots","Isolation":5}}"#).is_ok());
}

#[test]
fn exec_bodies() {
    let e = exec_body(br#"{"Cmd":["sh"],"Privileged":true,"User":"0"}"#).unwrap();
    assert_eq!((e.privileged, e.user.as_str()), (true, "0"));
    assert_eq!(e.power().asks(Profile::Baseline).asks, [Ask::Privileged]);
    for spelling in [
        r#"{"privileged":true}"#,
        r#"{"PRIVILEGED":true}"#,
        "{\"Privileged\":false,\"privileged\":true}",
    ] {
        assert!(exec_body(spelling.as_bytes()).unwrap().privileged, "{spelling}");
    }
    assert!(
        !exec_body(br#"{"Privileged":true,"Privileged":null,"privileged":false}"#)
            .unwrap()
            .privileged
    );
    assert!(exec_body(br#"{"Privileged":"yes"}"#).is_err());
    assert!(exec_body(br#"{"Privileged":true} {}"#).is_err());
    assert!(exec_body(b"[]").is_err());
    assert_eq!(
        exec_body(br#"{"User":"root"}"#)
            .unwrap()
            .power()
            .asks(Profile::Restricted)
            .asks,
        [Ask::RunAsRoot { user: "root".into() }]
    );
}

#[test]
fn legacy_start_bodies_are_host_configs() {
    for b in [
        r#"{"Privileged":true}"#,
        r#"{"HostConfig":{"Privileged":true}}"#,
        r#"{"hostconfig":{"privileged":true},"Privileged":false}"#,
    ] {
        assert_eq!(
            start_body(b.as_bytes()).unwrap().asks(Profile::Baseline).asks,
            [Ask::Privileged],
            "{b}"
        );
    }
    let p = start_body(br#"{"Binds":["/:/host"],"NetworkMode":"host"}"#).unwrap();
    assert!(
        p.asks(Profile::Baseline)
            .asks
            .contains(&Ask::HostNamespace(Namespace::Network))
    );
    assert!(start_body(br#"{"Privileged":1}"#).is_err());
}

#[test]
fn routes_for_legacy_start_services_and_plugins() {
    let start = |uri: &str| match route("POST", uri).unwrap() {
        Route::Run { host_config_body, .. } => host_config_body,
        other => panic!("{other:?}"),
    };
    assert!(start("/v1.23/containers/x/start"));
    assert!(start("/v1.12/containers/x/start"));
    assert!(start("/v1.023/containers/x/start"), "1.023 is 1.23 to the engine");
    assert!(!start("/v1.24/containers/x/start"));
    assert!(!start("/v1.41/containers/x/start"));
    assert!(
        !start("/containers/x/start"),
        "no version: the engine's current one"
    );
    assert!(matches!(
        route("POST", "/v1.23/containers/x/restart").unwrap(),
        Route::Run {
            host_config_body: false,
            ..
        }
    ));

    assert_eq!(
        route("POST", "/v1.41/services/create").unwrap(),
        Route::ServiceCreate
    );
    assert_eq!(route("POST", "/services//create/").unwrap(), Route::ServiceCreate);
    assert_eq!(
        route("POST", "/services/web/update?version=12&rollback=previous").unwrap(),
        Route::ServiceUpdate {
            service: "web".into(),
            rollback: true
        }
    );
    assert_eq!(
        route("POST", "/services/web/update?rollback=none&rollback=previous").unwrap(),
        Route::ServiceUpdate {
            service: "web".into(),
            rollback: false
        }
    );
    assert_eq!(route("GET", "/services").unwrap(), Route::Other);
    assert_eq!(route("POST", "/services/web/other").unwrap(), Route::Other);

    let plugin = |action, reference: &str| Route::EnginePlugin {
        action,
        reference: reference.into(),
    };
    assert_eq!(
        route("POST", "/plugins/pull?remote=vieux/sshfs&name=sshfs").unwrap(),
        plugin(PluginAction::Pull, "vieux/sshfs")
    );
    assert_eq!(
        route(
            "POST",
            "/v1.41/plugins/pull?remote=vieux%2Fsshfs%3Alatest&remote=evil/x"
        )
        .unwrap(),
        plugin(PluginAction::Pull, "vieux/sshfs:latest"),
        "the first remote, percent-decoded"
    );
    assert!(
        route("POST", "/plugins/pull").is_err(),
        "no remote: the engine refuses it"
    );
    assert!(route("POST", "/plugins/pull?remote=a;b").is_err());
    assert_eq!(
        route("POST", "/plugins/create?name=vieux/sshfs:next").unwrap(),
        plugin(PluginAction::Create, "vieux/sshfs:next")
    );
    assert_eq!(
        route("POST", "/plugins/vieux/sshfs:latest/enable?timeout=0").unwrap(),
        plugin(PluginAction::Enable, "vieux/sshfs:latest")
    );
    assert_eq!(
        route("POST", "/plugins/pull/enable").unwrap(),
        plugin(PluginAction::Enable, "pull"),
        "the engine routes it to enable, for a plugin named pull"
    );
    assert_eq!(
        route("POST", "/plugins/sshfs/upgrade?remote=vieux/sshfs:2").unwrap(),
        plugin(PluginAction::Upgrade, "vieux/sshfs:2")
    );
    assert!(route("POST", "/plugins/sshfs/upgrade").is_err());
    assert_eq!(
        route("POST", "/plugins/sshfs/set").unwrap(),
        plugin(PluginAction::Set, "sshfs")
    );
    assert_eq!(route("POST", "/plugins/sshfs/disable").unwrap(), Route::Other);
    assert_eq!(route("POST", "/plugins/sshfs/push").unwrap(), Route::Other);
    assert_eq!(
        route("GET", "/plugins/privileges?remote=x").unwrap(),
        Route::Other
    );
    assert_eq!(
        route("POST", "/pl%75gins/pull?remote=x").unwrap(),
        plugin(PluginAction::Pull, "x")
    );
    assert_eq!(
        route("POST", "/plugins/pull?remote=x").unwrap().endpoint(),
        "plugin_pull"
    );
    assert_eq!(
        route("POST", "/images/create?fromImage=plugins").unwrap(),
        Route::Other
    );
}

fn service(s: &str) -> ServiceBody {
    service_body(s.as_bytes()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn services_are_judged_like_their_task_containers() {
    let s = service(
        r#"{"Name":"web","Labels":{"svc":"1"},
            "TaskTemplate":{"ContainerSpec":{"Image":"app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
              "Labels":{"team":"a"},"User":"1000",
              "Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}],
              "CapabilityAdd":["CAP_SYS_ADMIN"],"CapabilityDrop":["ALL"],
              "Sysctls":{"kernel.msgmax":"1"},
              "Privileges":{"NoNewPrivileges":true,"SELinuxContext":{"Disable":true},
                "Seccomp":{"Mode":"unconfined"},"AppArmor":{"Mode":"disabled"}}},
              "Networks":[{"Target":"host"}]},
            "Mode":{"Global":{}}}"#,
    );
    assert_eq!(s.name, "web");
    assert_eq!(s.plugin, None);
    let c = s.container.unwrap();
    assert_eq!(c.labels.get("team").map(String::as_str), Some("a"));
    assert!(
        !c.labels.contains_key("svc"),
        "service labels are not container labels"
    );
    let a: Vec<String> = c
        .power()
        .asks(Profile::Restricted)
        .asks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        a,
        [
            "host network namespace",
            "host path /var/run/docker.sock (read-write)",
            "capability SYS_ADMIN",
            "seccomp unconfined (seccomp=unconfined)",
            "apparmor unconfined (apparmor=unconfined)",
            "label unconfined (label=disable)",
            "sysctl kernel.msgmax",
        ]
    );
    // Folded keys, and the deprecated top-level Networks.
    let s = service(
        "{\"taskTEMPLATE\":{\"containerspec\":{\"image\":\"app:1\",\"capabilityadd\":[\"net_admin\"],
          \"privileges\":{\"selinuxcontext\":{\"Type\":\"spc_t\"}}}},\"networks\":[{\"target\":\"HOST\"}]}",
    );
    let a = s.container.unwrap().power().asks(Profile::Baseline);
    assert_eq!(
        a.asks.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "host network namespace",
            "capability NET_ADMIN",
            "label unconfined (label=type:spc_t)"
        ]
    );
    // No user: the image's, looked up under restricted.
    let s = service(r#"{"TaskTemplate":{"ContainerSpec":{"Image":"app:1"}}}"#);
    assert_eq!(
        s.container.unwrap().power().references(Profile::Restricted),
        [Reference::Image("app:1".into())]
    );
}

#[test]
fn plugin_services_and_refused_specs() {
    let s = service(
        r#"{"TaskTemplate":{"Runtime":"plugin","PluginSpec":{"Name":"sshfs","Remote":"vieux/sshfs:latest"}}}"#,
    );
    assert_eq!(
        (s.container, s.plugin.as_deref()),
        (None, Some("vieux/sshfs:latest"))
    );
    let s = service(r#"{"TaskTemplate":{"PluginSpec":{"name":"vieux/sshfs"}}}"#);
    assert_eq!(s.plugin.as_deref(), Some("vieux/sshfs"));
    for bad in [
        r#"{"TaskTemplate":{}}"#,
        r#"{"TaskTemplate":{"ContainerSpec":{}}}"#,
        r#"{"TaskTemplate":{"PluginSpec":{}}}"#,
        r#"{"TaskTemplate":{"ContainerSpec":{"Image":"x","Mounts":{}}}}"#,
        r#"{"TaskTemplate":{"ContainerSpec":{"Image":"x"}}} {}"#,
        r#"{"TaskTemplate":{"ContainerSpec":{"Image":"x","Privileges":{"NoNewPrivileges":"yes"}}}}"#,
    ] {
        assert!(service_body(bad.as_bytes()).is_err(), "{bad}");
    }
    // A ContainerSpec set to null after one with an image: the engine has none.
    assert!(
        service_body(br#"{"TaskTemplate":{"ContainerSpec":{"Image":"x"},"ContainerSpec":null}}"#).is_err()
    );
}
