//! What the Engine API carries about a container's host power, field for field as moby's
//! `container.HostConfig` (and `mount.Mount`, `DeviceMapping`, `DeviceRequest`) has it,
//! before any normalisation: the authorization plugin fills it from a request body with
//! Go-exact decoding, [`super::inspect`] from an inspect, and [`super::Power::from_host_config`]
//! reads it in one place, so every gate normalises alike.
//!
//! Only the fields that bear on host power are here. Go's `nil` is kept where the engine
//! tells it apart from empty (`MaskedPaths`: nil means the defaults, `[]` means nothing
//! masked; `VolumeOptions`, `DriverConfig`).

use std::collections::BTreeMap;

/// `HostConfig`'s power fields (JSON names in the comments where they differ in case only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfigSpec {
    /// `Privileged`.
    pub privileged: bool,
    /// `PidMode`: `host`, `container:<name|id>`, or empty.
    pub pid_mode: String,
    /// `NetworkMode`: `host`, `container:<name|id>`, a network name, `bridge`, `none`...
    pub network_mode: String,
    /// `IpcMode`: `host`, `container:<name|id>`, `private`, `shareable`, `none`, empty.
    pub ipc_mode: String,
    /// `UTSMode`: `host` or empty.
    pub uts_mode: String,
    /// `UsernsMode`: `host` or empty.
    pub userns_mode: String,
    /// `CgroupnsMode`: `host`, `private` or empty (the daemon's default).
    pub cgroupns_mode: String,
    /// `Binds`: `src:dst[:mode]`; a `src` without a leading `/` names a volume.
    pub binds: Vec<String>,
    /// `Mounts`.
    pub mounts: Vec<MountSpec>,
    /// `VolumesFrom`: `container[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `CapAdd`, as written.
    pub cap_add: Vec<String>,
    /// `CapDrop`, as written.
    pub cap_drop: Vec<String>,
    /// `Devices`.
    pub devices: Vec<DeviceSpec>,
    /// `DeviceRequests` (`--gpus`, CDI devices).
    pub device_requests: Vec<DeviceRequestSpec>,
    /// `DeviceCgroupRules`: `c 10:229 rwm`.
    pub device_cgroup_rules: Vec<String>,
    /// `SecurityOpt`, as written.
    pub security_opt: Vec<String>,
    /// `Sysctls`.
    pub sysctls: BTreeMap<String, String>,
    /// `MaskedPaths`: `None` (Go nil) means the engine's defaults.
    pub masked_paths: Option<Vec<String>>,
    /// `ReadonlyPaths`: `None` (Go nil) means the engine's defaults.
    pub readonly_paths: Option<Vec<String>>,
}

/// One `Mounts` entry (moby `mount.Mount`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSpec {
    /// `Type`: `bind`, `volume`, `tmpfs`, `image`, `npipe`, `cluster`.
    pub kind: String,
    /// `Source`: a host path (bind), a volume name (volume; empty: anonymous), an image.
    pub source: String,
    /// `Target`.
    pub target: String,
    /// `ReadOnly`.
    pub read_only: bool,
    /// `BindOptions`.
    pub bind: Option<BindOptionsSpec>,
    /// `VolumeOptions`.
    pub volume: Option<VolumeOptionsSpec>,
}

/// `mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOptionsSpec {
    /// `ReadOnlyNonRecursive`: read-only on top, its submounts writable.
    pub read_only_non_recursive: bool,
}

/// `mount.VolumeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeOptionsSpec {
    /// `Subpath`: the part of the volume mounted.
    pub subpath: String,
    /// `DriverConfig`: the driver and options a new volume is created with.
    pub driver: Option<DriverSpec>,
}

/// `mount.Driver`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverSpec {
    /// `Name`: empty means the engine's default, `local`.
    pub name: String,
    /// `Options`: for `local`, `type`, `o`, `device` (and `size`).
    pub options: BTreeMap<String, String>,
}

/// One `Devices` entry (moby `DeviceMapping`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSpec {
    /// `PathOnHost`.
    pub path_on_host: String,
    /// `PathInContainer`.
    pub path_in_container: String,
}

/// One `DeviceRequests` entry (moby `DeviceRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceRequestSpec {
    /// `Driver`: empty or `nvidia` for `--gpus`, `cdi` for CDI devices.
    pub driver: String,
    /// `DeviceIDs`: for CDI, `vendor.com/class=name`.
    pub device_ids: Vec<String>,
    /// `Capabilities`: an OR list of AND lists, `[["gpu"]]` for `--gpus`.
    pub capabilities: Vec<Vec<String>>,
}
