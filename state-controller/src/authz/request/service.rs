//! Swarm service specs (`POST /services/create`, `POST /services/{id}/update`: moby
//! `swarm.ServiceSpec`) read as the engine reads them, and what their task containers would
//! ask: the task template's container (image, labels, user, mounts, capabilities, sysctls,
//! privileges, host networking) as a [`HostConfigSpec`], or the engine plugin a plugin
//! service deploys. What a service alone cannot settle (the image's user on another node, a
//! network given by ID, generic resources, what an engine before 27 ignores of
//! `Privileges`) is left to the event path, which sees each task as the container it is.

use std::collections::BTreeMap;

use common::power::{HostConfigSpec, MountSpec, Power, User};

use super::Unreadable;
use super::gojson::{InPlace, decode_body, go_struct};

/// `swarm.ServiceSpec`: the parts that bear on what runs.
#[derive(Debug, Default)]
struct ServiceSpecGo {
    name: String,
    task: TaskSpecGo,
    /// Deprecated top-level `Networks`, which older engines still read.
    networks: Vec<NetworkAttachmentGo>,
}

go_struct!(ServiceSpecGo, "a service spec object", |s| {
    "Name" => InPlace(&mut s.name),
    "TaskTemplate" => InPlace(&mut s.task),
    "Networks" => InPlace(&mut s.networks),
});

/// `swarm.TaskSpec`.
#[derive(Debug, Default)]
struct TaskSpecGo {
    container: Option<ContainerSpecGo>,
    plugin: Option<RuntimeSpecGo>,
    networks: Vec<NetworkAttachmentGo>,
}

go_struct!(TaskSpecGo, "a TaskTemplate object", |t| {
    "ContainerSpec" => InPlace(&mut t.container),
    "PluginSpec" => InPlace(&mut t.plugin),
    "Networks" => InPlace(&mut t.networks),
});

/// `swarm.NetworkAttachmentConfig`.
#[derive(Debug, Default)]
struct NetworkAttachmentGo {
    target: String,
}

go_struct!(NetworkAttachmentGo, "a network attachment object", |n| {
    "Target" => InPlace(&mut n.target),
});

/// `swarm.RuntimeSpec` (JSON names `name`, `remote`).
#[derive(Debug, Default)]
struct RuntimeSpecGo {
    name: String,
    remote: String,
}

go_struct!(RuntimeSpecGo, "a PluginSpec object", |r| {
    "name" => InPlace(&mut r.name),
    "remote" => InPlace(&mut r.remote),
});

/// `swarm.ContainerSpec`.
#[derive(Debug, Default)]
struct ContainerSpecGo {
    image: String,
    labels: BTreeMap<String, String>,
    user: String,
    mounts: Vec<MountSpec>,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    sysctls: BTreeMap<String, String>,
    privileges: Option<PrivilegesGo>,
}

go_struct!(ContainerSpecGo, "a ContainerSpec object", |c| {
    "Image" => InPlace(&mut c.image),
    "Labels" => InPlace(&mut c.labels),
    "User" => InPlace(&mut c.user),
    "Mounts" => InPlace(&mut c.mounts),
    "CapabilityAdd" => InPlace(&mut c.cap_add),
    "CapabilityDrop" => InPlace(&mut c.cap_drop),
    "Sysctls" => InPlace(&mut c.sysctls),
    "Privileges" => InPlace(&mut c.privileges),
});

/// `swarm.Privileges`.
#[derive(Debug, Default)]
struct PrivilegesGo {
    no_new_privileges: bool,
    selinux: Option<SelinuxGo>,
    seccomp: Option<ModeGo>,
    apparmor: Option<ModeGo>,
}

go_struct!(PrivilegesGo, "a Privileges object", |p| {
    "NoNewPrivileges" => InPlace(&mut p.no_new_privileges),
    "SELinuxContext" => InPlace(&mut p.selinux),
    "Seccomp" => InPlace(&mut p.seccomp),
    "AppArmor" => InPlace(&mut p.apparmor),
});

/// `swarm.SELinuxContext`.
#[derive(Debug, Default)]
struct SelinuxGo {
    disable: bool,
    user: String,
    role: String,
    kind: String,
    level: String,
}

go_struct!(SelinuxGo, "a SELinuxContext object", |s| {
    "Disable" => InPlace(&mut s.disable),
    "User" => InPlace(&mut s.user),
    "Role" => InPlace(&mut s.role),
    "Type" => InPlace(&mut s.kind),
    "Level" => InPlace(&mut s.level),
});

/// `swarm.SeccompOpts` and `swarm.AppArmorOpts`: their `Mode` (a custom seccomp
/// `Profile` matters only through `Mode: custom`).
#[derive(Debug, Default)]
struct ModeGo {
    mode: String,
}

go_struct!(ModeGo, "an object with a Mode", |m| {
    "Mode" => InPlace(&mut m.mode),
});

/// What a service spec says that the policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceBody {
    /// The service's name (`com.docker.swarm.service.name` on its tasks).
    pub name: String,
    /// The container each task runs, when the service runs containers.
    pub container: Option<ServiceContainer>,
    /// The engine plugin a plugin service (`Runtime: plugin`) installs on the nodes: its
    /// `remote` (or `name`), to judge like `POST /plugins/pull`.
    pub plugin: Option<String>,
}

/// The container a service's tasks run, as the engine will create it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceContainer {
    pub image: String,
    /// `ContainerSpec.Labels`: the labels its containers carry (besides the
    /// `com.docker.swarm.*` ones the engine adds).
    pub labels: BTreeMap<String, String>,
    /// Empty: the image's user.
    pub user: String,
    /// The task container's host power, in `HostConfig` terms: mounts, capabilities,
    /// sysctls, security options made from `Privileges` as the engine's executor makes them,
    /// `host` networking when a network is named `host`.
    pub host_config: HostConfigSpec,
}

impl ServiceContainer {
    /// The host power each task would ask (the image's user, when none is set, is a
    /// reference to resolve under `restricted`).
    pub fn power(&self) -> Power {
        let user = if self.user.is_empty() {
            User::FromImage(self.image.clone())
        } else {
            User::Set(self.user.clone())
        };
        Power::from_host_config(&self.host_config, user)
    }
}

/// Decodes a service spec (create or update) as the engine does.
pub fn service_body(body: &[u8]) -> Result<ServiceBody, Unreadable> {
    let mut s = ServiceSpecGo::default();
    decode_body(body, &mut s).map_err(Unreadable)?;
    let host_network = s
        .task
        .networks
        .iter()
        .chain(&s.networks)
        .any(|n| n.target.eq_ignore_ascii_case("host"));
    let container = match s.task.container {
        Some(c) if c.image.is_empty() => {
            return Err(Unreadable("no image in the service's ContainerSpec".into()));
        }
        Some(c) => Some(container(c, host_network)),
        None => None,
    };
    let plugin = match s.task.plugin {
        Some(p) if p.remote.is_empty() && p.name.is_empty() => {
            return Err(Unreadable("a plugin service that names no plugin".into()));
        }
        Some(p) if !p.remote.is_empty() => Some(p.remote),
        Some(p) => Some(p.name),
        None => None,
    };
    if container.is_none() && plugin.is_none() {
        return Err(Unreadable(
            "a service with neither ContainerSpec nor PluginSpec (the engine refuses it)".into(),
        ));
    }
    Ok(ServiceBody {
        name: s.name,
        container,
        plugin,
    })
}

/// The task container in `HostConfig` terms, as the engine's Swarm executor builds it.
fn container(c: ContainerSpecGo, host_network: bool) -> ServiceContainer {
    let mut security_opt = Vec::new();
    if let Some(p) = &c.privileges {
        if p.no_new_privileges {
            security_opt.push("no-new-privileges".to_string());
        }
        if let Some(s) = &p.selinux {
            if s.disable {
                security_opt.push("label=disable".to_string());
            }
            for (key, value) in [
                ("user", &s.user),
                ("role", &s.role),
                ("type", &s.kind),
                ("level", &s.level),
            ] {
                if !value.is_empty() {
                    security_opt.push(format!("label={key}:{value}"));
                }
            }
        }
        if let Some(m) = &p.seccomp {
            match m.mode.to_ascii_lowercase().as_str() {
                "" | "default" => {}
                "unconfined" => security_opt.push("seccomp=unconfined".to_string()),
                // `custom`: a profile sent with the spec, which may allow anything.
                _ => security_opt.push("seccomp=custom profile in the service spec".to_string()),
            }
        }
        if let Some(m) = &p.apparmor
            && !matches!(m.mode.to_ascii_lowercase().as_str(), "" | "default")
        {
            security_opt.push("apparmor=unconfined".to_string());
        }
    }
    ServiceContainer {
        host_config: HostConfigSpec {
            network_mode: if host_network {
                "host".into()
            } else {
                String::new()
            },
            mounts: c.mounts,
            cap_add: c.cap_add,
            cap_drop: c.cap_drop,
            sysctls: c.sysctls,
            security_opt,
            ..HostConfigSpec::default()
        },
        image: c.image,
        labels: c.labels,
        user: c.user,
    }
}
