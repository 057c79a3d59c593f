#!/usr/bin/env bash
# dockwarden's Kubernetes pod as a kubelet with cri-dockerd runs it (issue 11). No API server
# can run here, but a pod is containers: this renders `kubectl kustomize k8s/`, takes the
# DaemonSet's pod template and runs it on a node made of a private Docker Engine, the way
# kubelet + cri-dockerd do (scripts/lib/kubelet_sim.py says exactly what is simulated). Checks:
#   - the liveness and readiness probes pass on the template's ports and paths;
#   - dockwarden finds its own container, not the pod's sandbox, spares its own containers,
#     and spares nothing of the sandbox's image;
#   - a ConfigMap update written the way the kubelet writes it is applied;
#   - a denied pod container that the kubelet re-creates is reported as coming back;
#   - the fleet view's wiring (issue 20): status-api's node name from the downward API
#     (spec.nodeName), DOCKWARDEN_PEERS naming a headless Service that selects the pods on
#     status-api's port, a NetworkPolicy that lets peers and DNS through (offline checks of the
#     rendered manifests), and the running pod's GET /node and /fleet/nodes (no cluster DNS
#     here: the fleet view shows this node and says why the peers cannot be found).
#
# The node: a private dockerd (scripts/lib/engines.sh) in network, mount and UTS namespaces
# of its own, so the manifests run UNCHANGED:
#   - its socket is /var/run/docker.sock inside its mount namespace (a directory bound on
#     /run there), so the template's hostPath /var/run/docker.sock is the node's engine; the
#     test checks this before creating any pod and never lets the pod near the shared engine;
#   - its socket's group is 999 (dockerd --group), the gid the DaemonSet's supplementalGroups
#     names; the image is loaded as dockwarden:local, the name the DaemonSet uses;
#   - storage driver fuse-overlayfs (like this machine's engine) and containers in private
#     cgroup namespaces (like Docker on cgroup v2): the root overlay's upperdir and the
#     cgroup path, the signals that work elsewhere, are hidden, as on such nodes.
# KUBELET_TEST_STORAGE=overlay2 and KUBELET_TEST_CGROUPNS=host try the easier node kinds.
# Everything it creates is removed on exit, pass or fail. Needs root, python3 with PyYAML (or
# it makes a venv under target/), iproute2, util-linux, curl; kubectl (for `kubectl
# kustomize`; without it a stand-in renders k8s/, with a warning) and fuse-overlayfs
# (without it the node uses overlay2, with a warning). Takes ~30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/engines.sh
source scripts/lib/engines.sh
ENG_TAG=kubelet

ID=$$
RUN="dwtest-k8s-$ID"
P="/tmp/$RUN"
NODE="$P/node"
NS="$RUN-node"
IMAGE="$RUN/dockwarden:local"
PAUSE="$RUN/pause:local"
SLEEPER="$RUN/sleeper:local"
STORAGE=${KUBELET_TEST_STORAGE:-fuse-overlayfs}
CGROUPNS=${KUBELET_TEST_CGROUPNS:-private}
SOCKET_GID=999

node() { DOCKER_HOST="unix://$NODE/run/docker.sock" docker "$@"; }

DOCKER0_BEFORE=$(eng_docker0_fingerprint)
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -S "$NODE/run/docker.sock" ]; then
    eng_log "failed (rc=$rc); last lines of each dockwarden container on the node:"
    for id in $(node ps -aq --filter label=io.kubernetes.pod.namespace=dockwarden --filter label=io.kubernetes.docker.type=container); do
      echo "    --- $(node inspect -f '{{.Name}} {{.State.Status}}' "$id")"
      node logs "$id" 2>&1 | tail -n 12 | cut -c1-240 | sed 's/^/    /'
    done
  fi
  [ -f "$NODE/docker.pid" ] && eng_stop "$NODE" "$NS"
  ip netns del "$NS" 2>/dev/null
  eng_rm_dir "$P"
  docker rmi -f "$IMAGE" "$PAUSE" "$SLEEPER" >/dev/null 2>&1
  eng_verify_clean "$RUN" "$P" "$DOCKER0_BEFORE" || rc=1
  [ "$rc" = 0 ] && eng_log "cleanup: node engine stopped, netns and $P removed, images removed; docker0 unchanged"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

eng_preflight "namespaces, dockerd" dwtest-k8s
if [ "$STORAGE" = fuse-overlayfs ] && ! command -v fuse-overlayfs >/dev/null; then
  eng_log "WARNING: fuse-overlayfs is not installed: the node uses overlay2, whose upperdir shows in the mount table"
  STORAGE=overlay2
fi

# A python3 with PyYAML for the simulator.
PY=python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
  PY=target/kubelet-venv/bin/python
  if ! [ -x "$PY" ] || ! "$PY" -c 'import yaml' 2>/dev/null; then
    eng_log "installing PyYAML into target/kubelet-venv (once)"
    python3 -m venv target/kubelet-venv && target/kubelet-venv/bin/pip install -q 'PyYAML==6.0.3'
  fi
fi

# --- render the manifests as `kubectl apply -k k8s/` would send them ---------------------------
mkdir -p "$P/kubelet"
if command -v kubectl >/dev/null; then
  kubectl kustomize k8s/ >"$P/rendered.yaml" || eng_fail "kubectl kustomize k8s/"
  how="kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/Kustomize Version: //p'))"
else
  "$PY" scripts/lib/kubelet_sim.py --render k8s >"$P/rendered.yaml" || eng_fail "rendering k8s/"
  how="WARNING: no kubectl; the simulator's stand-in for the kustomize features k8s/ uses"
fi
eng_log "rendered k8s/ with $how: $(grep -c '^kind:' "$P/rendered.yaml") objects"

# --- images, built on the shared engine and saved before anything points elsewhere -----------
eng_build_images "$P/images.tar" "$IMAGE" "$SLEEPER" "$PAUSE" || exit 1

# --- the node --------------------------------------------------------------------------------
eng_netns_add "$NS"
mkdir -p "$NODE"
printf '{"storage-driver": "%s", "group": "%s"}\n' "$STORAGE" "$SOCKET_GID" >"$NODE/daemon.json"
eng_start "$NODE" "$NS" "$NS" "$RUN-node" /run || eng_fail "starting the node's engine"
pid=$(cat "$NODE/docker.pid")
inner=$(nsenter -t "$pid" -m stat -L -c '%i %g' /var/run/docker.sock)
outer=$(stat -L -c '%i %g' "$NODE/run/docker.sock")
shared=$(stat -L -c '%i' /var/run/docker.sock 2>/dev/null || echo none)
if [ "$inner" != "$outer" ] || [ "${inner%% *}" = "$shared" ]; then
  eng_fail "in the node's mount namespace /var/run/docker.sock is not the node's engine ($inner vs $outer); refusing to go on"
fi
eng_log "node engine up: storage $(node info -f '{{.Driver}}'), /var/run/docker.sock there is its own (group ${inner#* }), the shared engine's is out of reach"
node load -q -i "$P/images.tar" >/dev/null
node tag "$IMAGE" dockwarden:local
node tag "$PAUSE" registry.k8s.io/pause:3.9
node rmi "$IMAGE" "$PAUSE" >/dev/null

# --- the kubelet and the checks ----------------------------------------------------------------
capture=()
[ -z "${KUBELET_TEST_CAPTURE:-}" ] || capture=(--capture "$KUBELET_TEST_CAPTURE")
ENG_T0=$ENG_T0 "$PY" scripts/lib/kubelet_sim.py --docker-host "unix://$NODE/run/docker.sock" --root "$P/kubelet" \
  --rendered "$P/rendered.yaml" --pause-image registry.k8s.io/pause:3.9 --fixture-image "$SLEEPER" \
  --cgroupns "$CGROUPNS" "${capture[@]}"
eng_log "kubelet-test: PASSED"
