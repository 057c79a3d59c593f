//! Host paths as the engine resolves them, and as grants match them: cleaned like Go's
//! `filepath.Clean` (no `..`, `//`, `.` or trailing `/`), with `/var/run` read as `/run`
//! (on Docker hosts `/var/run` is a symlink to `/run`, resolved by the engine on the host),
//! and the engine's sockets, which only a grant naming them by their own path hands out.

/// The engine sockets whose holder owns the host (canonical paths, under `/run`): Docker's,
/// the containerd sockets Docker uses (the system one, and the one dockerd 20.10 starts
/// itself), and Podman's. A bind of any of them, or of a directory holding one, is granted
/// only by a `mounts` entry that names the socket itself.
pub const ENGINE_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// Go's `filepath.Clean` for an absolute path. A relative path (the engine refuses it for a
/// bind, or resolves it from its working directory, `/`) is read from `/`: it never asks
/// less than what it could name.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", parts.join("/"))
    }
}

/// [`clean`], then `/var/run[/...]` spelled `/run[/...]`: the form asks and grants are
/// compared in.
pub fn canonical(path: &str) -> String {
    let c = clean(path);
    if c == "/var/run" {
        "/run".to_string()
    } else if let Some(rest) = c.strip_prefix("/var/run/") {
        format!("/run/{rest}")
    } else {
        c
    }
}

/// Whether `dir` is `path` or one of its ancestors (both clean).
pub fn is_ancestor_or_self(dir: &str, path: &str) -> bool {
    dir == path || dir == "/" || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// The engine sockets a bind of `path` exposes: `path` is the socket or a directory above
/// it, under either spelling (`/var` holds `/var/run/docker.sock` on a host where `/var/run`
/// is a real directory, so it counts too).
pub fn held_sockets(path: &str) -> Vec<&'static str> {
    let cleaned = clean(path);
    let canon = canonical(path);
    ENGINE_SOCKETS
        .iter()
        .copied()
        .filter(|s| {
            let var = format!("/var{s}");
            is_ancestor_or_self(&canon, s) || is_ancestor_or_self(&cleaned, &var)
        })
        .collect()
}

/// Whether a relative path stays inside its base (Go's `filepath.IsLocal`, which the engine
/// requires of a volume's `Subpath`): not empty, not absolute, no `..` reaching out.
pub fn is_local(rel: &str) -> bool {
    if rel.is_empty() || rel.starts_with('/') {
        return false;
    }
    let mut depth = 0i32;
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        for (raw, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/var/run/", "/var/run"),
            ("/var//run/./docker.sock", "/var/run/docker.sock"),
            ("/a/b/../../..", "/"),
            ("/../etc", "/etc"),
            ("/etc/..", "/"),
            ("etc/passwd", "/etc/passwd"),
            ("", "/"),
        ] {
            assert_eq!(clean(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn var_run_is_run() {
        assert_eq!(canonical("/var/run"), "/run");
        assert_eq!(canonical("/var/run/docker.sock"), "/run/docker.sock");
        assert_eq!(canonical("/var//run/../run/x/"), "/run/x");
        assert_eq!(canonical("/var/running"), "/var/running");
        assert_eq!(canonical("/run"), "/run");
    }

    #[test]
    fn directories_holding_the_socket() {
        for p in [
            "/",
            "/run",
            "/var/run",
            "/var",
            "/var/run/docker.sock",
            "/run/docker.sock",
            "//var/run/",
        ] {
            assert!(held_sockets(p).contains(&"/run/docker.sock"), "{p}");
        }
        assert!(held_sockets("/run/containerd").contains(&"/run/containerd/containerd.sock"));
        for p in [
            "/etc",
            "/run/user",
            "/var/lib",
            "/var/running",
            "/run/docker.sock.d",
        ] {
            assert!(!held_sockets(p).contains(&"/run/docker.sock"), "{p}");
        }
        assert!(held_sockets("/run/docker").contains(&"/run/docker/containerd/containerd.sock"));
    }

    #[test]
    fn local_subpaths() {
        assert!(is_local("a/b"));
        assert!(is_local("a/../b"));
        assert!(!is_local("../a"));
        assert!(!is_local("a/../../b"));
        assert!(!is_local("/a"));
        assert!(!is_local(""));
    }
}
