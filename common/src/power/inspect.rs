//! [`Power`] from a container inspect (the event path, `start` of an existing container, a
//! container whose namespace is joined or whose volumes are taken). Read like
//! [`crate::engine::container::Container::from_inspect`], leniently, but a power field that
//! cannot be read never reads as "nothing asked": absent or `null` is Go's zero value (the
//! engine writes every field), any other type makes the facts unknown, naming the field;
//! no `HostConfig` at all is unknown whole.
//!
//! The inspect differs from a create body in three ways, all handled here:
//! - `Config.User` already holds the image's user when the request set none (the engine
//!   merges it at create); the image's user is only a fallback.
//! - The top-level `Mounts` is what the engine mounted: bind sources, and named volumes by
//!   `Name` and `Driver` (their options need a [`super::Reference::Volume`] lookup); it
//!   includes what `--volumes-from` copied at create, so `VolumesFrom` is only looked up
//!   when `Mounts` is missing.
//! - `CgroupnsMode` is filled with the engine's default at create: on an engine whose
//!   default is the host's cgroup namespace (cgroup v1), `host` cannot be told from the
//!   default, and is not counted ([`EngineDefaults`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::ask::Via;
use super::facts::{Power, User};
use super::path;
use super::read;
use super::spec::{
    BindOptionsSpec, DeviceRequestSpec, DeviceSpec, DriverSpec, HostConfigSpec, MountSpec, VolumeOptionsSpec,
};

/// What the event path knows of the engine besides the inspect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineDefaults {
    /// The engine gives containers the host's cgroup namespace unless they ask otherwise
    /// (cgroup v1 hosts; `docker info` then lists no `name=cgroupns` among its
    /// `SecurityOptions`). Its inspects say `CgroupnsMode: "host"` for every container.
    pub host_cgroupns_by_default: bool,
}

/// Reads the power of an inspected container (see the module doc). `image_user` is the
/// image's `Config.User`, used only when the inspect's `Config.User` is empty.
pub fn from_inspect(inspect: &Value, image_user: Option<&str>, engine: &EngineDefaults) -> Power {
    let Some(hc) = inspect.get("HostConfig").filter(|h| h.is_object()) else {
        return Power::unknown("the inspect has no HostConfig");
    };
    let mut bad = Vec::new();
    let mut spec = host_config(hc, "HostConfig", &mut bad);
    if engine.host_cgroupns_by_default && spec.cgroupns_mode == "host" {
        spec.cgroupns_mode.clear();
    }
    // The engine itself writes `label=disable` into the SecurityOpt of a privileged
    // container, or one in the host's pid or ipc namespace, when the request chose no label
    // (moby's generateSecurityOpt): what that asks is the privilege or the namespace, judged
    // as such. An explicit `label=disable` beside them reads the same in an inspect; the
    // plugin judges the request itself (docs/policy.md).
    let engine_labels = spec.privileged
        || spec.pid_mode.eq_ignore_ascii_case("host")
        || spec.ipc_mode.eq_ignore_ascii_case("host");
    if engine_labels {
        spec.security_opt
            .retain(|o| !matches!(o.as_str(), "label=disable" | "label:disable"));
    }
    let mounts = inspect.get("Mounts").filter(|m| !m.is_null());
    let mounted: Option<&Vec<Value>> = match mounts {
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            bad.push("Mounts is not a list".to_string());
            None
        }
        None => None,
    };
    if mounted.is_some() {
        // Already in Mounts, copied at create; the source container may be gone since.
        spec.volumes_from.clear();
    }
    let user = match inspect.get("Config").and_then(|c| c.get("User")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            bad.push("Config.User is not a string".to_string());
            String::new()
        }
    };
    let user = match (user.is_empty(), image_user) {
        (true, Some(u)) => u.to_string(),
        _ => user,
    };
    let mut power = Power::from_host_config(&spec, User::Set(user));
    for m in mounted.into_iter().flatten() {
        mount_point(&mut power, m, &mut bad);
    }
    for why in bad {
        power.add_unknown(why);
    }
    power
}

/// One entry of the inspect's top-level `Mounts` (moby `MountPoint`).
fn mount_point(power: &mut Power, m: &Value, bad: &mut Vec<String>) {
    let s = |key: &str, bad: &mut Vec<String>| -> String { string(m, key, "Mounts[]", bad) };
    let kind = s("Type", bad);
    let source = s("Source", bad);
    let name = s("Name", bad);
    let driver = s("Driver", bad);
    let rw = match m.get("RW") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => false,
        Some(_) => {
            bad.push("Mounts[].RW is not a boolean".to_string());
            false
        }
    };
    match kind.to_ascii_lowercase().as_str() {
        "bind" => power.add_host_path(path::clean(&source), !rw, Via::Bind),
        "volume" if !name.is_empty() && read::is_local_driver(&driver) => power.add_volume(name, !rw),
        "volume" | "tmpfs" | "npipe" | "image" | "cluster" => {}
        // No type (engines before 1.13 left it out) or an unknown one: a named volume or
        // a host path, whichever it names.
        _ if !name.is_empty() => power.add_volume(name, !rw),
        _ if source.starts_with('/') => power.add_host_path(path::clean(&source), !rw, Via::Bind),
        _ => {}
    }
}

/// A string field: absent or `null` is empty; another type is recorded as unreadable.
fn string(v: &Value, key: &str, at: &str, bad: &mut Vec<String>) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            bad.push(format!("{at}.{key} is not a string"));
            String::new()
        }
    }
}

fn boolean(v: &Value, key: &str, at: &str, bad: &mut Vec<String>) -> bool {
    match v.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            bad.push(format!("{at}.{key} is not a boolean"));
            false
        }
    }
}

/// A list field; `None` when absent or `null` (Go nil).
fn list<'a>(v: &'a Value, key: &str, at: &str, bad: &mut Vec<String>) -> Option<&'a Vec<Value>> {
    match v.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            bad.push(format!("{at}.{key} is not a list"));
            None
        }
    }
}

fn strings(v: &Value, key: &str, at: &str, bad: &mut Vec<String>) -> Option<Vec<String>> {
    let items = list(v, key, at, bad)?;
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        match i {
            Value::String(s) => out.push(s.clone()),
            Value::Null => out.push(String::new()),
            _ => bad.push(format!("{at}.{key} has an entry that is not a string")),
        }
    }
    Some(out)
}

fn string_map(v: &Value, key: &str, at: &str, bad: &mut Vec<String>) -> BTreeMap<String, String> {
    match v.get(key) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, val) in m {
                match val {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    Value::Null => {
                        out.insert(k.clone(), String::new());
                    }
                    _ => bad.push(format!("{at}.{key}.{k} is not a string")),
                }
            }
            out
        }
        Some(_) => {
            bad.push(format!("{at}.{key} is not an object"));
            BTreeMap::new()
        }
    }
}

/// A `HostConfig` object, as the engine writes it (in an inspect, or a service's task as
/// the engine reports it), into a [`HostConfigSpec`]; `at` names it in what is unreadable.
pub fn host_config(hc: &Value, at: &str, bad: &mut Vec<String>) -> HostConfigSpec {
    let mut spec = HostConfigSpec {
        privileged: boolean(hc, "Privileged", at, bad),
        pid_mode: string(hc, "PidMode", at, bad),
        network_mode: string(hc, "NetworkMode", at, bad),
        ipc_mode: string(hc, "IpcMode", at, bad),
        uts_mode: string(hc, "UTSMode", at, bad),
        userns_mode: string(hc, "UsernsMode", at, bad),
        cgroupns_mode: string(hc, "CgroupnsMode", at, bad),
        binds: strings(hc, "Binds", at, bad).unwrap_or_default(),
        volumes_from: strings(hc, "VolumesFrom", at, bad).unwrap_or_default(),
        cap_add: strings(hc, "CapAdd", at, bad).unwrap_or_default(),
        cap_drop: strings(hc, "CapDrop", at, bad).unwrap_or_default(),
        device_cgroup_rules: strings(hc, "DeviceCgroupRules", at, bad).unwrap_or_default(),
        security_opt: strings(hc, "SecurityOpt", at, bad).unwrap_or_default(),
        sysctls: string_map(hc, "Sysctls", at, bad),
        masked_paths: strings(hc, "MaskedPaths", at, bad),
        readonly_paths: strings(hc, "ReadonlyPaths", at, bad),
        ..HostConfigSpec::default()
    };
    for m in list(hc, "Mounts", at, bad).into_iter().flatten() {
        let at = format!("{at}.Mounts[]");
        let mut mount = MountSpec {
            kind: string(m, "Type", &at, bad),
            source: string(m, "Source", &at, bad),
            target: string(m, "Target", &at, bad),
            read_only: boolean(m, "ReadOnly", &at, bad),
            ..MountSpec::default()
        };
        if let Some(b) = m.get("BindOptions").filter(|b| !b.is_null()) {
            mount.bind = Some(BindOptionsSpec {
                read_only_non_recursive: boolean(b, "ReadOnlyNonRecursive", &at, bad),
            });
        }
        if let Some(vo) = m.get("VolumeOptions").filter(|v| !v.is_null()) {
            let mut opts = VolumeOptionsSpec {
                subpath: string(vo, "Subpath", &at, bad),
                driver: None,
            };
            if let Some(d) = vo.get("DriverConfig").filter(|d| !d.is_null()) {
                opts.driver = Some(DriverSpec {
                    name: string(d, "Name", &at, bad),
                    options: string_map(d, "Options", &at, bad),
                });
            }
            mount.volume = Some(opts);
        }
        spec.mounts.push(mount);
    }
    for d in list(hc, "Devices", at, bad).into_iter().flatten() {
        spec.devices.push(DeviceSpec {
            path_on_host: string(d, "PathOnHost", &format!("{at}.Devices[]"), bad),
            path_in_container: string(d, "PathInContainer", &format!("{at}.Devices[]"), bad),
        });
    }
    for r in list(hc, "DeviceRequests", at, bad).into_iter().flatten() {
        let at = format!("{at}.DeviceRequests[]");
        let mut req = DeviceRequestSpec {
            driver: string(r, "Driver", &at, bad),
            device_ids: strings(r, "DeviceIDs", &at, bad).unwrap_or_default(),
            capabilities: Vec::new(),
        };
        for c in list(r, "Capabilities", &at, bad).into_iter().flatten() {
            match c {
                Value::Array(_) => req.capabilities.push(
                    c.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                ),
                Value::Null => req.capabilities.push(Vec::new()),
                _ => bad.push(format!("{at}.Capabilities has an entry that is not a list")),
            }
        }
        spec.device_requests.push(req);
    }
    spec
}
