//! Which container is this process's own, found from inside: pure functions over what the
//! process can read about itself ([`clues`]) and what the engine lists ([`choose`]), and
//! [`discover`], which reads the files and asks the engine through [`crate::engine`].
//!
//! Signals, strongest first (real captured texts in `common/testdata/identity/`):
//!
//! | signal | plain Docker, compose, Swarm task | Kubernetes pod via cri-dockerd |
//! |---|---|---|
//! | `upperdir=` of the overlay mounted at `/` equals the container's `GraphDriver.Data.UpperDir` | overlay2: yes. fuse-overlayfs (and other drivers) show no path at `/` | overlay2: yes |
//! | the container ID as the leaf of a cgroup path | cgroup v1; v2 with the host cgroup namespace | v1 (`/kubepods/…/<id>`, `…/docker-<id>.scope`); **not** v2, where Docker's default private cgroup namespace shows `0::/` |
//! | the ID in the files Docker bind-mounts from `…/containers/<id>/` (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) | yes, unless the container shares another's network (`--network container:X` names X) | names the pod's **sandbox** (pause container), whose network the pod shares: never taken as ours; its pod's containers are the candidates |
//! | `POD_NAMESPACE` / `POD_NAME` (downward API) against the pod labels cri-dockerd sets | — | the pod's containers |
//! | bind-mount sources seen in the mount table | — | tells the pod's containers apart: kubelet gives each its own `/dev/termination-log` file |
//! | the host name as an ID prefix | Docker's default host name is the short ID | the pod name: no |
//!
//! A pod sandbox (`io.kubernetes.docker.type=podsandbox`) is never chosen: dockwarden never
//! runs as a pause container, and taking the sandbox for ourselves would spare every pause
//! container and not ourselves.
//!
//! # Use
//! ```text
//! let clues = identity::clues(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"),
//!                             &read("/etc/hostname"), identity::pod_from_env(|k| std::env::var(k).ok()));
//! // ALL containers (?all=1): our own may still be listed as `created` when we start.
//! let mut listed: Vec<Summary> = /* GET /containers/json?all=1: id, labels, state, bind mounts */;
//! for id in identity::shortlist(&clues, &listed) { /* GET /containers/{id}/json: set upper_dir */ }
//! let me = identity::choose(&clues, &listed); // Some(Choice { id, by }) or None
//! ```
//! [`workload_key`] names what a kubelet or Swarm re-creates under a new container name, so a
//! denied workload that keeps coming back can be reported as such.

use std::collections::BTreeMap;

use crate::backoff::Backoff;
use crate::decision::Identity;
use crate::engine::container::Summary;
use crate::engine::{Engine, EngineError};
use crate::policy::reference::Reference;

/// cri-dockerd's label telling sandboxes (`podsandbox`) from pod containers (`container`).
pub const K8S_TYPE_LABEL: &str = "io.kubernetes.docker.type";
/// cri-dockerd's label on pod containers naming their sandbox's container ID.
pub const K8S_SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";
pub const K8S_POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const K8S_POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const K8S_CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Downward-API variables the DaemonSet sets (`fieldRef: metadata.name` / `.namespace`).
pub const POD_NAME_ENV: &str = "POD_NAME";
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";

const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";
const SWARM_TASK_NAME_LABEL: &str = "com.docker.swarm.task.name";
const SWARM_TASK_ID_LABEL: &str = "com.docker.swarm.task.id";
const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
const COMPOSE_NUMBER_LABEL: &str = "com.docker.compose.container-number";

/// A pod, as the downward API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// What the process can see about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clues {
    /// `upperdir=` of the overlay mounted at `/` (overlay2 shows it; fuse-overlayfs does not).
    pub upper_dir: Option<String>,
    /// The container ID that is the leaf of this process's cgroup path, if any.
    pub cgroup_id: Option<String>,
    /// Container IDs whose per-container files are mounted here (`…/containers/<id>/hostname`),
    /// in mount order: ours, or the container whose network we share (a pod's sandbox).
    pub mounted_ids: Vec<String>,
    /// The source paths of bind mounts as the mount table shows them (relative to the
    /// source filesystem's root, so possibly a suffix of the path Docker was given).
    pub bind_roots: Vec<String>,
    /// The host name (Docker's default: the short container ID; in a pod: the pod name).
    pub hostname: Option<String>,
    /// The pod, when the downward API says so.
    pub pod: Option<PodRef>,
}

/// The container found, and the signal that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub id: String,
    pub by: Signal,
}

/// Which signal decided (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The root overlay's upper directory: exactly this container.
    UpperDir,
    /// The leaf of the cgroup path: exactly this container.
    Cgroup,
    /// Docker's per-container files are this container's own.
    MountedFiles,
    /// Among the containers of the pod whose sandbox's files are mounted here.
    Sandbox,
    /// Among the containers of the pod the downward API names.
    Pod,
    /// The host name is this container's short ID.
    Hostname,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::UpperDir => "root overlay upperdir",
            Signal::Cgroup => "cgroup path",
            Signal::MountedFiles => "mounted /etc/hostname",
            Signal::Sandbox => "pod sandbox's containers",
            Signal::Pod => "downward API pod",
            Signal::Hostname => "host name",
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the clues from the texts of `/proc/self/mountinfo`, `/proc/self/cgroup` and
/// `/etc/hostname` (any of them may be empty when unreadable) and the downward-API pod.
pub fn clues(mountinfo: &str, cgroup: &str, hostname: &str, pod: Option<PodRef>) -> Clues {
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let upper_dir = mounts
        .iter()
        .rfind(|m| m.point == "/")
        .filter(|m| m.fstype == "overlay")
        .and_then(|m| {
            m.super_options
                .split(',')
                .find_map(|o| o.strip_prefix("upperdir="))
        })
        .map(str::to_string);
    let mut mounted_ids: Vec<String> = Vec::new();
    for id in mounts.iter().filter_map(|m| id_after(&m.root, "/containers/")) {
        if !mounted_ids.contains(&id) {
            mounted_ids.push(id);
        }
    }
    let bind_roots = mounts
        .iter()
        .filter(|m| m.root != "/" && !m.fstype.starts_with("cgroup") && m.fstype != "proc")
        .map(|m| m.root.clone())
        .collect();
    let hostname = hostname
        .lines()
        .next()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    Clues {
        upper_dir,
        cgroup_id: cgroup.lines().find_map(cgroup_leaf_id),
        mounted_ids,
        bind_roots,
        hostname,
        pod,
    }
}

/// The pod from the downward-API variables, when both are set and not empty.
pub fn pod_from_env(get: impl Fn(&str) -> Option<String>) -> Option<PodRef> {
    let namespace = get(POD_NAMESPACE_ENV).filter(|s| !s.is_empty())?;
    let name = get(POD_NAME_ENV).filter(|s| !s.is_empty())?;
    Some(PodRef { namespace, name })
}

/// The IDs worth inspecting for their upper directory: none when the mount table shows no
/// overlay upper directory; otherwise the containers the other signals point at, or every
/// live one when they point nowhere.
pub fn shortlist(clues: &Clues, listed: &[Summary]) -> Vec<String> {
    if clues.upper_dir.is_none() {
        return Vec::new();
    }
    let eligible: Vec<&Summary> = listed.iter().filter(|c| !is_sandbox(c)).collect();
    let named = eligible.iter().copied().filter(|c| {
        clues.cgroup_id.as_deref() == Some(c.id.as_str())
            || clues.mounted_ids.contains(&c.id)
            || hostname_names(clues, c)
    });
    let mut picked: Vec<&Summary> = named
        .chain(sandbox_members(clues, listed))
        .chain(pod_members(clues, listed))
        .collect();
    if picked.is_empty() {
        picked = eligible.into_iter().filter(|c| c.live).collect();
    }
    let mut ids: Vec<String> = Vec::new();
    for c in picked {
        if !ids.contains(&c.id) {
            ids.push(c.id.clone());
        }
    }
    ids
}

/// This process's own container among `containers`, by the strongest signal that names
/// exactly one (never a pod sandbox). `None` when nothing does, or when the only signals
/// left point at several containers that the mounts cannot tell apart.
pub fn choose(clues: &Clues, containers: &[Summary]) -> Option<Choice> {
    let eligible = || containers.iter().filter(|c| !is_sandbox(c));
    let pick = |c: &Summary, by| Some(Choice { id: c.id.clone(), by });
    if let Some(upper) = &clues.upper_dir
        && let [c] = eligible()
            .filter(|c| c.upper_dir.as_ref() == Some(upper))
            .collect::<Vec<_>>()[..]
    {
        return pick(c, Signal::UpperDir);
    }
    if let Some(id) = &clues.cgroup_id
        && let Some(c) = eligible().find(|c| &c.id == id)
    {
        return pick(c, Signal::Cgroup);
    }
    if let Some(c) = eligible().find(|c| clues.mounted_ids.first() == Some(&c.id)) {
        return pick(c, Signal::MountedFiles);
    }
    if let Some(c) = narrow(clues, sandbox_members(clues, containers)) {
        return pick(c, Signal::Sandbox);
    }
    if let Some(c) = narrow(clues, pod_members(clues, containers)) {
        return pick(c, Signal::Pod);
    }
    if let [c] = eligible()
        .filter(|c| hostname_names(clues, c))
        .collect::<Vec<_>>()[..]
    {
        return pick(c, Signal::Hostname);
    }
    None
}

/// What a kubelet, Swarm or compose re-creates under a new container name, so repeated
/// actions on it can be told apart from actions on new things:
/// `k8s:<namespace>/<pod>/<container>` for a pod's container (cri-dockerd names each
/// restart `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`), `swarm:<service>.<slot or node>`
/// for a Swarm task (each retry is a new task), `compose:<project>/<service>/<number>`, and
/// otherwise `name:<name>`.
pub fn workload_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let l = |k: &str| labels.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let (Some(ns), Some(pod), Some(container)) = (
        l(K8S_POD_NAMESPACE_LABEL),
        l(K8S_POD_NAME_LABEL),
        l(K8S_CONTAINER_NAME_LABEL),
    ) {
        return format!("k8s:{ns}/{pod}/{container}");
    }
    if let Some(service) = l(SWARM_SERVICE_LABEL) {
        // Task names are <service>.<slot or node id>.<task id>: drop the task id.
        let slot = match (l(SWARM_TASK_NAME_LABEL), l(SWARM_TASK_ID_LABEL)) {
            (Some(task), Some(id)) => task.strip_suffix(id).and_then(|t| t.strip_suffix('.')),
            _ => None,
        };
        return format!("swarm:{}", slot.unwrap_or(service));
    }
    if let (Some(project), Some(service)) = (l(COMPOSE_PROJECT_LABEL), l(COMPOSE_SERVICE_LABEL)) {
        return format!(
            "compose:{project}/{service}/{}",
            l(COMPOSE_NUMBER_LABEL).unwrap_or("1")
        );
    }
    format!("name:{}", name.trim_start_matches('/'))
}

/// Whether cri-dockerd marked the container as a pod sandbox.
pub fn is_sandbox(c: &Summary) -> bool {
    c.labels.get(K8S_TYPE_LABEL).map(String::as_str) == Some("podsandbox")
}

/// Live pod containers of the sandbox whose files are mounted here.
fn sandbox_members<'a>(clues: &Clues, containers: &'a [Summary]) -> Vec<&'a Summary> {
    let sandboxes: Vec<&str> = containers
        .iter()
        .filter(|c| is_sandbox(c) && clues.mounted_ids.contains(&c.id))
        .map(|c| c.id.as_str())
        .collect();
    containers
        .iter()
        .filter(|c| c.live && !is_sandbox(c))
        .filter(|c| {
            c.labels
                .get(K8S_SANDBOX_ID_LABEL)
                .is_some_and(|s| sandboxes.contains(&s.as_str()))
        })
        .collect()
}

/// Live containers of the pod the downward API names.
fn pod_members<'a>(clues: &Clues, containers: &'a [Summary]) -> Vec<&'a Summary> {
    let Some(pod) = &clues.pod else {
        return Vec::new();
    };
    containers
        .iter()
        .filter(|c| c.live && !is_sandbox(c))
        .filter(|c| {
            c.labels.get(K8S_POD_NAMESPACE_LABEL) == Some(&pod.namespace)
                && c.labels.get(K8S_POD_NAME_LABEL) == Some(&pod.name)
        })
        .collect()
}

/// One of several candidates: the only one, or the one with the most bind mounts that
/// the mount table shows, when that is a single one.
fn narrow<'a>(clues: &Clues, candidates: Vec<&'a Summary>) -> Option<&'a Summary> {
    if candidates.len() <= 1 {
        return candidates.into_iter().next();
    }
    let seen = |c: &Summary| {
        c.bind_sources
            .iter()
            .filter(|s| clues.bind_roots.iter().any(|r| is_same_file(s, r)))
            .count()
    };
    let best = candidates.iter().map(|c| seen(c)).max()?;
    let mut top = candidates.into_iter().filter(|c| seen(c) == best);
    match (top.next(), top.next()) {
        (Some(c), None) if best > 0 => Some(c),
        _ => None,
    }
}

/// Whether a mount table root (a path inside the source filesystem) is the bind source
/// Docker was given: the whole path, or its tail below the filesystem's mount point. At
/// least two components, so that a bare `/docker.sock` does not tell containers apart.
fn is_same_file(source: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.matches('/').count() >= 2
        && source
            .strip_suffix(root)
            .is_some_and(|head| head.is_empty() || !head.ends_with('/'))
}

fn hostname_names(clues: &Clues, c: &Summary) -> bool {
    clues.hostname.as_deref().is_some_and(|h| {
        h.len() >= 12 && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) && c.id.starts_with(h)
    })
}

/// One line of `/proc/self/mountinfo`, the fields this module reads.
struct Mount {
    root: String,
    point: String,
    fstype: String,
    super_options: String,
}

impl Mount {
    /// `36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
    fn parse(line: &str) -> Option<Mount> {
        let (left, right) = line.split_once(" - ")?;
        let mut l = left.split(' ');
        let root = unescape(l.nth(3)?);
        let point = unescape(l.next()?);
        let mut r = right.split(' ');
        let fstype = r.next()?.to_string();
        let super_options = r.nth(1).unwrap_or("").to_string();
        Some(Mount {
            root,
            point,
            fstype,
            super_options,
        })
    }
}

/// The kernel writes space, tab, newline and backslash in mount paths as `\ooo` octal.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The 64-hex ID right after `marker` in `path`, if there is one.
fn id_after(path: &str, marker: &str) -> Option<String> {
    let mut rest = path;
    while let Some(i) = rest.find(marker) {
        rest = &rest[i + marker.len()..];
        let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        if id.len() == 64 && !rest[64..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Some(id.to_ascii_lowercase());
        }
    }
    None
}

/// The container ID that ends one `/proc/self/cgroup` line's path: its last component that
/// is a 64-hex ID, bare (cgroupfs driver: `/docker/<id>`, `/kubepods/burstable/pod<uid>/<id>`)
/// or wrapped by the systemd driver (`docker-<id>.scope`, `cri-containerd-<id>.scope`).
fn cgroup_leaf_id(line: &str) -> Option<String> {
    let path = line.splitn(3, ':').nth(2)?;
    path.rsplit('/').find_map(|part| {
        let part = part.strip_suffix(".scope").unwrap_or(part);
        let id = part.rsplit(['-', ':']).next()?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
    })
}

/// This process's own container and image, when it runs in a container: the container ID,
/// its image ID and the names that image is known by. The container is found by
/// [`crate::identity`] (the root overlay, the cgroup, the mounted per-container files, the
/// pod); under cri-dockerd the mounted files name the pod's sandbox, never taken for ours.
/// Retries until the engine answers: sparing ourselves must never depend on luck.
pub async fn discover<E: Engine>(engine: &E) -> Identity {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let clues = clues(
        &read("/proc/self/mountinfo"),
        &read("/proc/self/cgroup"),
        &read("/etc/hostname"),
        pod_from_env(|k| std::env::var(k).ok()),
    );
    if clues.upper_dir.is_none()
        && clues.cgroup_id.is_none()
        && clues.mounted_ids.is_empty()
        && clues.pod.is_none()
    {
        tracing::info!("not running in a container: no container is spared as dockwarden's own");
        return Identity::default();
    }
    let mut backoff = Backoff::default();
    loop {
        let found = match find_own(engine, &clues).await {
            Ok(Some(choice)) => learn(engine, &choice.id).await.map(|me| Some((me, choice))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match found {
            Ok(Some((me, choice))) => {
                tracing::info!(container = %choice.id.get(..12).unwrap_or(&choice.id), found_by = %choice.by,
                    image = me.image_id.as_deref().unwrap_or("?"),
                    "running in a container: this container, and containers of its image running dockwarden's own programs, are never acted on");
                return me;
            }
            Ok(None) => {
                tracing::warn!(clues = ?clues,
                    "running in a container, but which one cannot be told: no container is spared as dockwarden's own");
                return Identity::default();
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, "cannot look up our own container yet; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Lists the containers, inspects the shortlisted ones for their upper directory, and
/// picks ours.
async fn find_own<E: Engine>(engine: &E, clues: &Clues) -> Result<Option<Choice>, EngineError> {
    let mut summaries = engine.summaries().await?;
    for id in shortlist(clues, &summaries) {
        match engine.inspect(&id).await {
            Ok(c) => {
                if let Some(s) = summaries.iter_mut().find(|s| s.id == id) {
                    s.upper_dir = c.upper_dir;
                }
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(choose(clues, &summaries))
}

async fn learn<E: Engine>(engine: &E, id: &str) -> Result<Identity, EngineError> {
    let c = engine.inspect(id).await?;
    let image_id = Some(c.image_id).filter(|s| !s.is_empty());
    let mut names = Vec::new();
    if let Some(image) = &image_id {
        let facts = engine.image(image).await?;
        for n in facts.tags.iter().chain(&facts.digests) {
            if let Ok(r) = Reference::parse(n) {
                names.extend(r.tagged());
                names.extend(r.digested());
            }
        }
    }
    Ok(Identity {
        container_id: Some(id.to_string()),
        image_id,
        image_names: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on this project's development machine (common/testdata/identity/README.md).
    fn data(name: &str) -> String {
        let path = format!("{}/testdata/identity/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn clues_of(capture: &str, hostname: &str, pod: Option<PodRef>) -> Clues {
        clues(
            &data(&format!("{capture}.mountinfo")),
            &data(&format!("{capture}.cgroup")),
            hostname,
            pod,
        )
    }

    fn container(id: &str, labels: &[(&str, &str)]) -> Summary {
        Summary {
            id: id.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            live: true,
            ..Summary::default()
        }
    }

    fn pod_labels<'a>(sandbox: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            (K8S_TYPE_LABEL, "container"),
            (K8S_SANDBOX_ID_LABEL, sandbox),
            (K8S_POD_NAMESPACE_LABEL, "dockwarden"),
            (K8S_POD_NAME_LABEL, "dockwarden-x7k2p"),
            (K8S_CONTAINER_NAME_LABEL, name),
        ]
    }

    fn sandbox(id: &str) -> Summary {
        container(
            id,
            &[
                (K8S_TYPE_LABEL, "podsandbox"),
                (K8S_POD_NAMESPACE_LABEL, "dockwarden"),
                (K8S_POD_NAME_LABEL, "dockwarden-x7k2p"),
                (K8S_CONTAINER_NAME_LABEL, "POD"),
            ],
        )
    }

    // fuse-overlayfs (this machine's shared engine), `docker run --cgroupns private`:
    const FUSE_PLAIN: &str = "ff89405bc24fe6ddfbef7ec2f6c2d27875b8fe11f80c7a0460b7d4fa699d5990";
    const FUSE_SANDBOX: &str = "b9ea5ec12566bd77cd16aceaa889f60ca49e5f9f428990d13115f614ffb76b65";
    const FUSE_APP: &str = "b1c71e58ba1af8c7c2281b0b7a5fe91d42a4249956a8238d32ba892ce34528f9";
    // overlay2 (a private engine), a sandbox and two containers in its network namespace:
    const OV2_SANDBOX: &str = "f6ac8e7d886a7a6777e74edc5038fcc6ac0abc75a097c774ddc4eb02ba754ea6";
    const OV2_APP: &str = "58dccf4b73b3b82fb0cf3887dc13a8e6d5685380b0f8a9e424b6e45ab435e3a2";
    const OV2_APP_NS: &str = "fbdde7bde7d07ad1e42b6c0e8b8b044a14ee445e816c1d63325e539450d2b5bd";
    const OV2_UPPER: &str = "/tmp/dwtest-swarm-proto/n1/data/overlay2";

    /// What the caller builds from `GET /containers/{id}/json` (the list API has the same
    /// fields but `GraphDriver`).
    fn summary_from_inspect(c: &serde_json::Value) -> Summary {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Summary {
            id: s(&c["Id"]),
            labels: c["Config"]["Labels"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
                .unwrap_or_default(),
            live: !matches!(
                c["State"]["Status"].as_str(),
                Some("exited" | "dead" | "removing")
            ),
            bind_sources: c["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["Type"] == "bind")
                .map(|m| s(&m["Source"]))
                .collect(),
            upper_dir: c["GraphDriver"]["Data"]["UpperDir"].as_str().map(str::to_string),
        }
    }

    #[test]
    fn the_kubelet_test_pod_finds_the_controller_not_the_sandbox_nor_status_api() {
        // scripts/kubelet-test.sh, state-controller of the pod: fuse-overlayfs, private
        // cgroup namespace: no upperdir, no cgroup ID; the mounted files are the sandbox's.
        let c = clues_of("kubelet-sim-controller", "dockwarden-5zb22\n", None);
        let sandbox_id = "5285f2e7e80d92dc3e719e3db77df96d52c812d23dc3cc0c55f9a848d0b8d7ef";
        let controller = "9151d97668ed7226868151faa109ff31209c74f100e28ef503a5487603d23468";
        assert_eq!((c.upper_dir.as_deref(), c.cgroup_id.as_deref()), (None, None));
        assert_eq!(c.mounted_ids, vec![sandbox_id.to_string()]);
        let inspected: Vec<serde_json::Value> =
            serde_json::from_str(&data("kubelet-sim-inspect.json")).expect("capture is JSON");
        let all: Vec<Summary> = inspected.iter().map(summary_from_inspect).collect();
        assert!(is_sandbox(&all[0]) && all.len() == 3);
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: controller.into(),
                by: Signal::Sandbox
            })
        );
        // With the downward API too, the pod's two containers are told apart the same way.
        let pod = Some(PodRef {
            namespace: "dockwarden".into(),
            name: "dockwarden-5zb22".into(),
        });
        let c = clues_of("kubelet-sim-controller", "dockwarden-5zb22\n", pod);
        assert_eq!(choose(&c, &all).map(|x| x.id), Some(controller.to_string()));
    }

    #[test]
    fn fuse_overlayfs_shows_no_upperdir_and_a_private_cgroupns_no_cgroup() {
        let c = clues_of("fuse-plain", "ff89405bc24f\n", None);
        assert_eq!(
            c.upper_dir, None,
            "fuse-overlayfs mounts / as fuse.fuse-overlayfs"
        );
        assert_eq!(c.cgroup_id, None, "private cgroup namespace: every path is /");
        assert_eq!(c.mounted_ids, vec![FUSE_PLAIN.to_string()]);
        let all = [container(FUSE_PLAIN, &[]), container(FUSE_APP, &[])];
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: FUSE_PLAIN.into(),
                by: Signal::MountedFiles
            })
        );
        assert!(
            shortlist(&c, &all).is_empty(),
            "nothing to inspect without an upperdir"
        );
    }

    #[test]
    fn a_container_in_anothers_network_is_found_by_its_cgroup_not_the_mounted_files() {
        let c = clues_of("fuse-app2", "mypod\n", None);
        assert_eq!(
            c.mounted_ids,
            vec![FUSE_SANDBOX.to_string()],
            "the network donor's files"
        );
        assert_eq!(c.cgroup_id.as_deref(), Some(FUSE_APP));
        let all = [container(FUSE_SANDBOX, &[]), container(FUSE_APP, &[])];
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: FUSE_APP.into(),
                by: Signal::Cgroup
            })
        );
    }

    #[test]
    fn overlay2_pod_container_with_kubepods_cgroup() {
        let c = clues_of("ov2-app", "mypod\n", None);
        let upper =
            format!("{OV2_UPPER}/8832902a6ea61434b56a36b9d72a6bd4da02b7a5db02da6a972cddc381bf6fa4/diff");
        assert_eq!(c.upper_dir.as_deref(), Some(upper.as_str()));
        assert_eq!(c.cgroup_id.as_deref(), Some(OV2_APP));
        assert_eq!(c.mounted_ids, vec![OV2_SANDBOX.to_string()]);
        let mut app = container(OV2_APP, &pod_labels(OV2_SANDBOX, "state-controller"));
        let all = [sandbox(OV2_SANDBOX), app.clone()];
        assert_eq!(
            shortlist(&c, &all),
            vec![OV2_APP.to_string()],
            "the sandbox is never inspected"
        );
        app.upper_dir = Some(upper);
        let all = [sandbox(OV2_SANDBOX), app];
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: OV2_APP.into(),
                by: Signal::UpperDir
            })
        );
    }

    #[test]
    fn overlay2_private_cgroupns_is_found_by_upperdir_alone() {
        let c = clues_of("ov2-app-ns", "mypod\n", None);
        assert_eq!(c.cgroup_id, None);
        let mut mine = container(OV2_APP_NS, &pod_labels(OV2_SANDBOX, "state-controller"));
        mine.upper_dir = Some(format!(
            "{OV2_UPPER}/3a253854d54bab122ce37f8a05ce08ad7b5d112e0ef4cdf02b88082bc1b7c368/diff"
        ));
        let mut sibling = container(OV2_APP, &pod_labels(OV2_SANDBOX, "status-api"));
        sibling.upper_dir = Some(format!(
            "{OV2_UPPER}/8832902a6ea61434b56a36b9d72a6bd4da02b7a5db02da6a972cddc381bf6fa4/diff"
        ));
        let all = [sandbox(OV2_SANDBOX), sibling, mine];
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: OV2_APP_NS.into(),
                by: Signal::UpperDir
            })
        );
    }

    #[test]
    fn the_sandbox_is_never_chosen_even_when_only_its_files_name_an_id() {
        let c = clues_of("ov2-sb", "mypod\n", None);
        assert_eq!(c.mounted_ids, vec![OV2_SANDBOX.to_string()]);
        assert_eq!(choose(&c, &[sandbox(OV2_SANDBOX)]), None);
    }

    #[test]
    fn without_upperdir_or_cgroup_the_pod_containers_are_told_apart_by_their_mounts() {
        // fuse-overlayfs + cgroup v2 (private namespace): the hardest case, kubelet layout.
        let mi = data("fuse-app2.mountinfo")
            + "300 241 254:0 /var/lib/kubelet/pods/4f1c/etc-hosts /etc/hosts rw - ext4 /dev/vda rw\n"
            + "301 241 254:0 /var/lib/kubelet/pods/4f1c/containers/state-controller/5e6f7a8b /dev/termination-log rw - ext4 /dev/vda rw\n";
        let c = clues(&mi, "0::/\n", "dockwarden-x7k2p\n", None);
        assert_eq!(c.cgroup_id, None);
        let mount = |name: &str| format!("/var/lib/kubelet/pods/4f1c/containers/{name}/5e6f7a8b");
        let mut controller = container(FUSE_APP, &pod_labels(FUSE_SANDBOX, "state-controller"));
        controller.bind_sources = vec![
            "/var/lib/kubelet/pods/4f1c/etc-hosts".into(),
            mount("state-controller"),
        ];
        let mut api = container(&"c".repeat(64), &pod_labels(FUSE_SANDBOX, "status-api"));
        api.bind_sources = vec!["/var/lib/kubelet/pods/4f1c/etc-hosts".into(), mount("status-api")];
        let all = [sandbox(FUSE_SANDBOX), api.clone(), controller.clone()];
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: FUSE_APP.into(),
                by: Signal::Sandbox
            })
        );
        // Same mounts for both: ambiguous, so no guess.
        api.bind_sources = controller.bind_sources.clone();
        assert_eq!(choose(&c, &[sandbox(FUSE_SANDBOX), api, controller]), None);
    }

    #[test]
    fn the_downward_api_pod_finds_its_only_container() {
        let pod = Some(PodRef {
            namespace: "dockwarden".into(),
            name: "dockwarden-x7k2p".into(),
        });
        let c = clues("", "0::/\n", "dockwarden-x7k2p", pod);
        let mine = container(FUSE_APP, &pod_labels(FUSE_SANDBOX, "state-controller"));
        let mut other_pod = container(&"d".repeat(64), &pod_labels(FUSE_SANDBOX, "x"));
        other_pod.labels.insert(K8S_POD_NAME_LABEL.into(), "web-1".into());
        let mut exited = mine.clone();
        exited.id = "e".repeat(64);
        exited.live = false;
        let all = [sandbox(FUSE_SANDBOX), other_pod, exited, mine];
        assert_eq!(
            choose(&c, &all),
            Some(Choice {
                id: FUSE_APP.into(),
                by: Signal::Pod
            })
        );
    }

    #[test]
    fn the_host_name_is_a_last_resort_and_only_as_a_short_id() {
        let c = clues("", "", "ff89405bc24f", None);
        assert_eq!(
            choose(&c, &[container(FUSE_PLAIN, &[])]),
            Some(Choice {
                id: FUSE_PLAIN.into(),
                by: Signal::Hostname
            })
        );
        assert_eq!(
            choose(&clues("", "", "ff89", None), &[container(FUSE_PLAIN, &[])]),
            None
        );
        assert_eq!(
            choose(&clues("", "", "web-1", None), &[container(FUSE_PLAIN, &[])]),
            None
        );
    }

    #[test]
    fn cgroup_paths_of_every_driver() {
        let id = "0123456789abcdef".repeat(4);
        for line in [
            format!("12:memory:/docker/{id}"),
            format!("9:name=systemd:/kubepods/burstable/pod1234/{id}"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/docker-{id}.scope"
            ),
            format!("0::/system.slice/docker-{id}.scope"),
            format!("0::/docker/{}/docker/{id}", "f".repeat(64)),
        ] {
            assert_eq!(cgroup_leaf_id(&line).as_deref(), Some(id.as_str()), "{line}");
        }
        assert_eq!(cgroup_leaf_id("0::/"), None);
        assert_eq!(cgroup_leaf_id("0::/user.slice/session-1.scope"), None);
    }

    #[test]
    fn mount_paths_are_unescaped_and_ids_must_be_whole() {
        let m = Mount::parse(r"5 1 0:1 /a\040b/c /mnt\040x rw - ext4 /dev/x rw").expect("parses");
        assert_eq!((m.root.as_str(), m.point.as_str()), ("/a b/c", "/mnt x"));
        assert!(Mount::parse("garbage").is_none());
        assert_eq!(
            id_after(
                &format!("/containers/{}0/hostname", "a".repeat(64)),
                "/containers/"
            ),
            None
        );
        assert_eq!(id_after("/containers/abc/hostname", "/containers/"), None);
        assert!(is_same_file("/var/lib/kubelet/pods/u/c/x", "/pods/u/c/x"));
        assert!(
            !is_same_file("/var/lib/kubelet/pods/u/c/x", "/x/"),
            "needs two components"
        );
        assert!(!is_same_file("/var/run/docker.sock", "/docker.sock"));
        assert!(!is_same_file("/a/xpods/u/c", "/pods/u/c"), "component boundary");
    }

    #[test]
    fn pod_from_env_needs_both_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            pod_from_env(env(&[("POD_NAME", "p"), ("POD_NAMESPACE", "n")])),
            Some(PodRef {
                namespace: "n".into(),
                name: "p".into()
            })
        );
        assert_eq!(pod_from_env(env(&[("POD_NAME", "p")])), None);
        assert_eq!(
            pod_from_env(env(&[("POD_NAME", "p"), ("POD_NAMESPACE", "")])),
            None
        );
    }

    #[test]
    fn workload_keys_survive_recreation() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let pod = labels(&pod_labels("s", "app"));
        assert_eq!(
            workload_key("k8s_app_dockwarden-x7k2p_dockwarden_u_0", &pod),
            "k8s:dockwarden/dockwarden-x7k2p/app"
        );
        assert_eq!(
            workload_key("k8s_app_dockwarden-x7k2p_dockwarden_u_1", &pod),
            workload_key("k8s_app_dockwarden-x7k2p_dockwarden_u_0", &pod)
        );
        let task = labels(&[
            (SWARM_SERVICE_LABEL, "bad"),
            (SWARM_TASK_NAME_LABEL, "bad.nodeid1.taskid9"),
            (SWARM_TASK_ID_LABEL, "taskid9"),
        ]);
        assert_eq!(workload_key("bad.nodeid1.taskid9", &task), "swarm:bad.nodeid1");
        assert_eq!(
            workload_key("x", &labels(&[(SWARM_SERVICE_LABEL, "bad")])),
            "swarm:bad"
        );
        let compose = labels(&[(COMPOSE_PROJECT_LABEL, "shop"), (COMPOSE_SERVICE_LABEL, "web")]);
        assert_eq!(workload_key("shop_web_1", &compose), "compose:shop/web/1");
        assert_eq!(workload_key("/web-1", &labels(&[])), "name:web-1");
    }
}
