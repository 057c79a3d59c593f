#!/usr/bin/env bash
# dockwarden on a real three-node Docker Swarm (issue 11), built on this machine:
#
#   three private dockerd (scripts/lib/engines.sh), each in its own network, mount and UTS
#   namespace, wired by veth pairs to a bridge in a namespace of its own, each with its own
#   address; the images loaded into each; `swarm init` on node 1, `swarm join` on 2 and 3;
#   then `docker stack deploy -c docker-stack.yml --resolve-image never` from the repository
#   root, as docs/swarm.md tells an operator. Checks:
#     1. the stack runs one state-controller and one status-api task on each node, healthy
#     2. each node's status-api (port 8080 published in host mode, asked inside the node's
#        namespace and from another node over the bridge) reports that node's containers
#     3. a denied container started on each node is killed by that node's controller; an
#        allowed one lives; dockwarden's own tasks are spared (no rule allows them)
#     4. an edit of the policy directory (a bind mount, not a Swarm config) reaches all three
#     5. a denied image deployed as a Swarm SERVICE (its tasks never pass an authorization
#        plugin) is killed on every node by the event path, again when Swarm retries
#     6. node 2's engine restarted: its tasks come back and it enforces again
#     7. `docker stack rm` leaves no task, container, service or network behind
#   and the fleet view (issue 20), over the stack's overlay network `fleet`:
#     F1. node 1's /fleet/containers lists the containers of all three nodes, each with its
#         node's name (the Swarm node host name, from the stack's template), and
#         /fleet/nodes all three nodes reachable, without drift
#     F2. node 3 given another policy shows drift on node 1's view; set back, none
#     F3. node 2's engine stopped (step 6): listed as unreachable within the peer timeout,
#         reachable again after it restarts
# Each node has its own policy directory (as real nodes do), bound at the same path inside
# its mount namespace.
# Everything it creates (engines, namespaces, veths, bridge, temp dirs, the images it builds
# on the shared engine) is removed on exit, pass or fail; the shared engine is only used to
# build and save two images (tagged dwtest-swarm-<pid>/...), and its docker0 is checked
# unchanged. Needs root, iproute2, util-linux (nsenter, unshare), curl. Takes ~75 s.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/engines.sh
source scripts/lib/engines.sh
ENG_TAG=swarm

ID=$$
RUN="dwtest-swarm-$ID"
P="/tmp/$RUN"                 # short: unix socket paths are limited to 108 bytes
STACK="$RUN"                  # stack name; services are $STACK_state-controller, ...
IMAGE="$RUN/dockwarden:local"
SLEEPER="$RUN/sleeper:local"
SOCKDIR="$P/node"             # in every node's mount namespace: that node's engine socket
CFGDIR="$P/config"            # in every node's mount namespace: that node's $P/nN/config
SCOPE="com.docker.stack.namespace=$STACK"
NODES=(1 2 3)

ns() { echo "$RUN-n$1"; }
sock() { echo "unix://$P/n$1/run/docker.sock"; }
on() { local n=$1; shift; DOCKER_HOST=$(sock "$n") docker "$@"; }
addr() { echo "$SUBNET.1$1"; }

DOCKER0_BEFORE=$(eng_docker0_fingerprint)

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -d "$P" ]; then
    eng_log "failed (rc=$rc); last controller and status-api logs per node:"
    for n in "${NODES[@]}"; do
      for svc in state-controller status-api; do
        echo "    --- node $n $svc"
        svc_logs "$n" "$svc" 2>/dev/null | tail -n 15 | sed 's/^/    /'
      done
    done
  fi
  for n in "${NODES[@]}"; do
    [ -f "$P/n$n/docker.pid" ] && eng_stop "$P/n$n" "$(ns "$n")"
  done
  for n in "${NODES[@]}"; do ip netns del "$(ns "$n")" 2>/dev/null; done
  ip netns del "$RUN-sw" 2>/dev/null
  eng_rm_dir "$P"
  docker rmi -f "$IMAGE" "$SLEEPER" >/dev/null 2>&1
  eng_verify_clean "$RUN" "$P" "$DOCKER0_BEFORE" || rc=1
  [ "$rc" = 0 ] && eng_log "cleanup: engines stopped, namespaces, veths, bridge and $P removed; docker0 unchanged"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

eng_preflight "network namespaces, dockerd" dwtest-swarm

# --- images, built on the shared engine and saved before anything points elsewhere -----------
mkdir -p "$SOCKDIR" "$CFGDIR" "$P/n1/config" "$P/n2/config" "$P/n3/config"
eng_build_images "$P/images.tar" "$IMAGE" "$SLEEPER" || exit 1

# --- the network: a switch namespace with br0, one namespace per node ------------------------
SUBNET=$(eng_free_subnet) || eng_fail "no free 10.213.N.0/24"
eng_switch_add "$RUN-sw"
for n in "${NODES[@]}"; do
  eng_netns_add "$(ns "$n")"
  eng_wire "$RUN-sw" "$(ns "$n")" "v$n" "$(addr "$n")/24"
done
eng_log "network: bridge br0 in netns $RUN-sw; nodes $(addr 1), $(addr 2), $(addr 3) (host routes untouched)"

# --- three engines -----------------------------------------------------------------------------
start_node() {
  ENG_BIND="$P/n$1/config:$CFGDIR" eng_start "$P/n$1" "$(ns "$1")" "$(ns "$1")" "$RUN-n$1" "$SOCKDIR"
}
for n in "${NODES[@]}"; do
  start_node "$n" || eng_fail "starting the engine of node $n"
  on "$n" load -q -i "$P/images.tar" >/dev/null || eng_fail "loading images into node $n"
done
eng_log "3 engines up ($(on 1 version -f '{{.Server.Version}}'), storage $(on 1 info -f '{{.Driver}}')), images loaded"

# Safety: each node's socket, as its containers will mount it, must be that node's engine.
for n in "${NODES[@]}"; do
  pid=$(cat "$P/n$n/docker.pid")
  inner=$(nsenter -t "$pid" -m stat -L -c %i "$SOCKDIR/docker.sock")
  outer=$(stat -L -c %i "$P/n$n/run/docker.sock")
  [ "$inner" = "$outer" ] || eng_fail "node $n: $SOCKDIR/docker.sock is not its own engine's socket"
done
[ ! -e "$SOCKDIR/docker.sock" ] || eng_fail "$SOCKDIR/docker.sock visible on the host"

# --- the swarm ---------------------------------------------------------------------------------
on 1 swarm init --advertise-addr "$(addr 1)" --listen-addr "$(addr 1):2377" >/dev/null
TOKEN=$(on 1 swarm join-token -q worker)
for n in 2 3; do
  on "$n" swarm join --advertise-addr "$(addr "$n")" --listen-addr "$(addr "$n"):2377" \
    --token "$TOKEN" "$(addr 1):2377" >/dev/null
done
nodes_ready() { [ "$(on 1 node ls -q --filter role=worker | wc -l)" = 2 ] &&
  ! on 1 node ls --format '{{.Status}}' | grep -vqx Ready; }
eng_wait_for 60 "swarm of 3 nodes, all Ready" nodes_ready
on 1 node ls --format '    {{.Hostname}} {{.Status}} {{.ManagerStatus}}'

# --- the stack, as docs/swarm.md says (plus the test's image, policy dir, socket, scope) --------
cat >"$P/n1/config/allowlist.toml" <<'EOF'
# swarm test policy: only containers named dwtest-swarm-ok* may run (in the test's scope).
# Nothing allows dockwarden's own tasks: they are spared because they are its own.
mode = "enforce"
action = "kill"

[[allow]]
name = "dwtest-swarm-ok*"
EOF
cp "$P/n1/config/allowlist.toml" "$P/n2/config/"
cp "$P/n1/config/allowlist.toml" "$P/n3/config/"
export DOCKWARDEN_IMAGE="$IMAGE" DOCKWARDEN_CONFIG_DIR="$CFGDIR" DOCKWARDEN_API_PORT=8080
export DOCKWARDEN_DOCKER_SOCKET="$SOCKDIR/docker.sock" DOCKWARDEN_SCOPE="$SCOPE"
eng_log "docker stack deploy -c docker-stack.yml --resolve-image never $STACK"
DOCKER_HOST=$(sock 1) docker stack deploy -c docker-stack.yml --resolve-image never "$STACK" 2>&1 | sed 's/^/    /'

# tasks NODE SERVICE: running task containers of a stack service on that node
tasks() { on "$1" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$2" --filter status=running; }
# svc_logs NODE SERVICE: the logs of every task container of SERVICE that node ever ran
svc_logs() {
  local id
  for id in $(on "$1" ps -aq --filter "label=com.docker.swarm.service.name=${STACK}_$2"); do
    on "$1" logs "$id" 2>&1
  done
}
healthy() { [ "$(on "$1" inspect -f '{{.State.Health.Status}}' "$(tasks "$1" "$2")" 2>/dev/null)" = healthy ]; }
one_healthy_each() {
  local n s
  for n in "${NODES[@]}"; do
    for s in state-controller status-api; do
      [ "$(tasks "$n" "$s" | wc -l)" = 1 ] && healthy "$n" "$s" || return 1
    done
  done
}
eng_wait_for 180 "one healthy state-controller and one healthy status-api task on each of the 3 nodes" one_healthy_each
on 1 service ls --format '    {{.Name}} mode={{.Mode}} replicas={{.Replicas}} ports={{.Ports}}'
mounts=$(on 1 service inspect -f '{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{.Source}} {{end}}' "${STACK}_state-controller")
[[ $mounts == *"$SOCKDIR/docker.sock"*"$CFGDIR"* ]] || eng_fail "unexpected mounts: $mounts"
for n in "${NODES[@]}"; do
  c=$(tasks "$n" state-controller)
  eng_log "node $n: state-controller $(on "$n" inspect -f '{{.Name}} user={{.Config.User}} readonly={{.HostConfig.ReadonlyRootfs}} capdrop={{.HostConfig.CapDrop}}' "$c")"
done

# --- 2. each node's status-api reports that node ----------------------------------------------
# api NODE [FROM]: GET /containers of NODE's status-api, from inside FROM's namespace (default:
# NODE's own, through 127.0.0.1) or over the bridge to NODE's address.
api() {
  local n=$1 from=${2:-$1} host=127.0.0.1
  [ "$from" = "$n" ] || host=$(addr "$n")
  ip netns exec "$(ns "$from")" curl -fsS --max-time 5 "http://$host:8080/containers"
}
reports_own_node() {
  local n=$1 from=${2:-$1} json ids
  json=$(api "$n" "$from") || return 1
  ids=$(on "$n" ps -aq --no-trunc | sort)
  python3 - "$json" "$ids" <<'PY'
import json, sys
got = sorted(c["id"] for c in json.loads(sys.argv[1])["containers"])
want = sorted(sys.argv[2].split())
assert got == want, f"status-api lists {len(got)} containers, the node has {len(want)}"
PY
}
for n in "${NODES[@]}"; do
  eng_wait_for 30 "node $n: status-api on 127.0.0.1:8080 lists exactly node $n's containers" reports_own_node "$n"
done
other=(0 2 3 1)
for n in "${NODES[@]}"; do
  eng_wait_for 10 "node $n's page, asked from node ${other[$n]} at $(addr "$n"):8080, lists node $n's containers" \
    reports_own_node "$n" "${other[$n]}"
done
api 1 | python3 -c '
import json, sys
for c in json.load(sys.stdin)["containers"]:
    print("    node 1:", c["name"], "state=%s allowed=%s spared=%s" % (c["state"], c.get("allowed"), c.get("spared", False)))'

# --- 3. a denied container on each node is killed by that node's controller --------------------
state() { on "$1" inspect -f '{{.State.Status}}' "$2" 2>/dev/null; }
is_state() { [ "$(state "$1" "$2")" = "$3" ]; }
logged_kill() { svc_logs "$1" state-controller | grep -F -- "$2" | grep -qi kill; }
run_fixture() { on "$1" run -d --network none --label "$SCOPE" --name "$2" "$SLEEPER" >/dev/null; }
for n in "${NODES[@]}"; do
  run_fixture "$n" "dwtest-swarm-ok-n$n"
  run_fixture "$n" "dwtest-swarm-denied-n$n"
done
for n in "${NODES[@]}"; do
  eng_wait_for 20 "node $n: dwtest-swarm-denied-n$n killed" is_state "$n" "dwtest-swarm-denied-n$n" exited
  code=$(on "$n" inspect -f '{{.State.ExitCode}}' "dwtest-swarm-denied-n$n")
  [ "$code" = 137 ] || eng_fail "node $n: dwtest-swarm-denied-n$n exited with $code, not 137 (SIGKILL)"
  eng_wait_for 10 "node $n: its controller logged the kill of dwtest-swarm-denied-n$n" logged_kill "$n" "dwtest-swarm-denied-n$n"
  svc_logs "$n" state-controller | grep -F "dwtest-swarm-denied-n$n" | grep -i kill | tail -n 1 | cut -c1-220 | sed 's/^/    /'
  for m in "${NODES[@]}"; do
    [ "$m" = "$n" ] && continue
    ! svc_logs "$m" state-controller | grep -qF "dwtest-swarm-denied-n$n" || eng_fail "node $m's controller saw node $n's container"
  done
done
sleep 2
for n in "${NODES[@]}"; do
  is_state "$n" "dwtest-swarm-ok-n$n" running || eng_fail "node $n: the allowed dwtest-swarm-ok-n$n is $(state "$n" "dwtest-swarm-ok-n$n")"
  for s in state-controller status-api; do
    [ "$(tasks "$n" "$s" | wc -l)" = 1 ] || eng_fail "node $n: its own $s task is not running (spared?)"
  done
done
failed_tasks=$(on 1 service ps -q --filter desired-state=shutdown "${STACK}_state-controller" "${STACK}_status-api" | wc -l)
[ "$failed_tasks" = 0 ] || eng_fail "$failed_tasks dockwarden tasks were replaced: its own tasks were not spared"
eng_log "ok: allowed containers live on all nodes; dockwarden's own 6 tasks spared (no task replaced)"

# --- F1. the fleet view on node 1: every node's containers with its node's name -------------
# fleet NODE PATH: GET PATH of NODE's status-api, inside its namespace.
fleet() { ip netns exec "$(ns "$1")" curl -fsS --max-time 5 "http://127.0.0.1:8080$2"; }
fleet_lists_all() {
  local json want="" n
  json=$(fleet 1 /fleet/containers) || return 1
  for n in "${NODES[@]}"; do want+="$RUN-n$n $(on "$n" ps -aq --no-trunc | tr '\n' ' ');"; done
  python3 - "$json" "$want" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
got = sorted((c["node"], c["id"]) for c in v["containers"])
want = sorted((node, cid) for part in sys.argv[2].split(";") if part.strip()
              for node, *ids in [part.split()] for cid in ids)
assert got == want, f"fleet lists {len(got)} (node, id) pairs, the nodes have {len(want)}: {sorted(set(got) ^ set(want))[:4]}"
assert v["unreachable"] == [] and v["nodes"] == 3, v["unreachable"]
PY
}
eng_wait_for 60 "F1: node 1's /fleet/containers lists every container of the 3 nodes, each with its node's name" fleet_lists_all
# nodes_are FROM NAME=FIELD:VALUE...: node FROM's /fleet/nodes has those values for those nodes.
nodes_are() {
  local from=$1 json; shift
  json=$(fleet "$from" /fleet/nodes) || return 1
  python3 - "$json" "$@" <<'PY'
import json, sys
v = {n["node"]: n for n in json.loads(sys.argv[1])["nodes"]}
for spec in sys.argv[2:]:
    name, kv = spec.split("=", 1)
    key, want = kv.split(":", 1)
    got = str(v.get(name, {}).get(key, "missing")).lower()
    assert got == want, f"{name} {key}={got}, want {want}"
PY
}
eng_wait_for 20 "F1: node 1's /fleet/nodes: 3 nodes reachable, no drift" nodes_are 1 \
  "$RUN-n1=local:true" "$RUN-n2=reachable:true" "$RUN-n3=reachable:true" \
  "$RUN-n1=drift:false" "$RUN-n2=drift:false" "$RUN-n3=drift:false"
fleet 1 /fleet/nodes | python3 -c '
import json, sys
for n in json.load(sys.stdin)["nodes"]:
    print("    fleet:", n["node"], n["address"], "reachable=%s drift=%s containers=%s denied_running=%s sha=%s" % (
        n["reachable"], n["drift"], n["containers"], n["denied_running"], (n["policy_sha256"] or "")[:12]))'

# --- 4. a policy edit reaches every node's controller (the directory is watched) --------------
reloaded() { svc_logs "$1" state-controller | grep -F 'policy reloaded' | grep -qF "rules=$2"; }
for n in "${NODES[@]}"; do
  printf '\n[[allow]]\nname = "dwtest-swarm-late*"\n' >>"$P/n$n/config/allowlist.toml"
done
for n in "${NODES[@]}"; do
  eng_wait_for 20 "node $n: controller reloaded the edited policy (rules=2)" reloaded "$n" 2
done

# --- F2. node 3 given another policy: drift; set back: none ----------------------------------
cp "$P/n3/config/allowlist.toml" "$P/allowlist.same"
printf '\n[[allow]]\nname = "dwtest-swarm-n3-only*"\n' >>"$P/n3/config/allowlist.toml"
eng_wait_for 20 "node 3: controller reloaded its own policy (rules=3)" reloaded 3 3
eng_wait_for 20 "F2: node 1's fleet view flags node 3 (and only node 3) as drifted" nodes_are 1 \
  "$RUN-n3=drift:true" "$RUN-n1=drift:false" "$RUN-n2=drift:false"
eng_wait_for 10 "F2: node 2's fleet view says the same" nodes_are 2 "$RUN-n3=drift:true" "$RUN-n2=drift:false"
cp "$P/allowlist.same" "$P/n3/config/allowlist.toml.new"
mv "$P/n3/config/allowlist.toml.new" "$P/n3/config/allowlist.toml"
eng_wait_for 20 "F2: node 3 set back to the fleet's policy: no drift (the same bytes under another generation)" \
  nodes_are 1 "$RUN-n3=drift:false" "$RUN-n3=policy_generation:4"

# --- 5. a denied image as a Swarm service: tasks bypass authorization plugins -----------------
BAD="$RUN-bad"
on 1 service create -d --name "$BAD" --mode global --no-resolve-image \
  --container-label "$SCOPE" --restart-condition any --restart-delay 3s "$SLEEPER" >/dev/null
eng_log "service $BAD (image $SLEEPER, mode global) created; Swarm restarts its tasks"
killed_tasks() {  # killed_tasks NODE MIN: at least MIN tasks of $BAD on NODE ended by SIGKILL
  local n ids c=0 id
  ids=$(on "$1" ps -aq --filter "label=com.docker.swarm.service.name=$BAD")
  for id in $ids; do
    [ "$(on "$1" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id")" = "exited 137" ] && c=$((c + 1))
  done
  [ "$c" -ge "$2" ]
}
for n in "${NODES[@]}"; do
  eng_wait_for 60 "node $n: a task of service $BAD killed (exit 137)" killed_tasks "$n" 1
done
eng_wait_for 60 "node 1: Swarm's retry of the task killed again (2 tasks)" killed_tasks 1 2
svc_logs 1 state-controller | grep -F "$BAD" | grep -i kill | tail -n 2 | cut -c1-220 | sed 's/^/    /'
if svc_logs 1 state-controller | grep -q 'keeps coming back'; then
  eng_log "node 1's controller reports the service's tasks as coming back"
else
  eng_log "note: node 1's controller does not report the retried tasks as coming back (each task has a new name)"
fi
on 1 service rm "$BAD" >/dev/null

# --- 6. restart node 2's engine: the agent comes back and enforces again ------------------------
eng_log "restarting node 2's engine"
eng_stop "$P/n2"
t_stop=$(date +%s)
# F3: node 1's fleet view says node 2 is unreachable (peer timeout 3 s, a round every 2 s).
eng_wait_for 15 "F3: node 1's fleet view lists node 2 as unreachable" nodes_are 1 "$RUN-n2=reachable:false"
eng_log "F3: unreachable shown $(( $(date +%s) - t_stop )) s after the engine stopped"
fleet 1 /fleet/nodes | python3 -c '
import json, sys
n = next(n for n in json.load(sys.stdin)["nodes"] if n["node"].endswith("-n2"))
print("    fleet: node 2 reachable=%s last_answer=%s error=%s" % (n["reachable"], n["last_answer"], (n.get("error") or "")[:120]))'
start_node 2 || eng_fail "restarting the engine of node 2"
node2_back() { [ "$(tasks 2 state-controller | wc -l)" = 1 ] && healthy 2 state-controller && healthy 2 status-api; }
eng_wait_for 120 "node 2: state-controller and status-api tasks running and healthy again" node2_back
run_fixture 2 dwtest-swarm-denied2-n2
eng_wait_for 20 "node 2 after the restart: dwtest-swarm-denied2-n2 killed" is_state 2 dwtest-swarm-denied2-n2 exited
eng_wait_for 10 "node 2: its controller logged the kill" logged_kill 2 dwtest-swarm-denied2-n2
eng_wait_for 20 "node 2: status-api lists exactly node 2's containers again" reports_own_node 2
eng_wait_for 60 "F3: node 1's fleet view lists node 2 as reachable again" nodes_are 1 "$RUN-n2=reachable:true"

# --- 7. removing the stack leaves nothing behind ------------------------------------------------
# --detach=false waits until the tasks are gone; the stack network can still be "in use by
# task" for a moment after that (engine 20.10), and a second `stack rm` removes it.
eng_log "docker stack rm --detach=false $STACK"
DOCKER_HOST=$(sock 1) docker stack rm --detach=false "$STACK" >"$P/stack-rm.log" 2>&1 || {
  sed 's/^/    /' "$P/stack-rm.log"
  sleep 2
  eng_log "docker stack rm $STACK (again: the network was still in use)"
  DOCKER_HOST=$(sock 1) docker stack rm "$STACK" 2>&1 | sed 's/^/    /'
}
stack_left() {
  local n
  on 1 service ls --format 'service {{.Name}}'
  for n in "${NODES[@]}"; do
    on "$n" ps -a --filter "label=com.docker.stack.namespace=$STACK" --filter label=com.docker.swarm.task.id \
      --format "node $n: task container {{.Names}} {{.Status}}"
    on "$n" network ls --filter "label=com.docker.stack.namespace=$STACK" --format "node $n: network {{.Name}}"
  done
}
stack_gone() { [ -z "$(stack_left)" ]; }
eng_wait_for 90 "stack removed: no service, no task container, no stack network on any node" stack_gone ||
  { stack_left | sed 's/^/    left: /'; exit 1; }
for n in "${NODES[@]}"; do
  on "$n" rm -f "dwtest-swarm-ok-n$n" "dwtest-swarm-denied-n$n" >/dev/null
done
on 2 rm -f dwtest-swarm-denied2-n2 >/dev/null
engines_empty() { local n; for n in "${NODES[@]}"; do [ -z "$(on "$n" ps -aq)" ] || return 1; done; }
eng_wait_for 30 "no container left on any node (the bad service's tasks included)" engines_empty
eng_log "swarm-test: PASSED"
