# shellcheck shell=bash
# Private Docker Engines in network namespaces, for tests that need engines of their own (a
# swarm of several nodes, a Kubernetes node). Sourced by scripts/swarm-test.sh and
# scripts/kubelet-test.sh. Follows ECOSYSTEM §11, with one difference: each engine runs in a
# NAMED network namespace (ip netns) instead of `unshare --net`, so that nodes can be wired
# together and the test can reach a node's ports with `ip netns exec`.
#
# Nothing here touches the host's network namespace: the bridge that connects nodes lives in
# a namespace of its own too. The shared engine's docker0 and iptables rules are never seen
# (a dockerd started with --bridge=none in the host namespace would delete docker0; a bridge
# in the host namespace would meet the shared engine's FORWARD DROP through br_netfilter).
# Deleting the namespaces removes every interface, whatever state a failed run left.
#
# Names: every namespace is "<run>-<suffix>" where <run> is "<prefix>-<pid of the test>", so a
# later run can tell leftovers of a dead run (eng_reap_stale) from a live one.

# eng_log MSG...: a timestamped line, seconds since the test started.
ENG_T0=${ENG_T0:-$(date +%s%N)}
eng_log() {
  local ms=$(( ($(date +%s%N) - ENG_T0) / 1000000 ))
  printf '[%s %4d.%ds] %s\n' "${ENG_TAG:-test}" $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

# eng_wait_for SECONDS WHAT CMD...: retries CMD every 0.5 s until it succeeds; fails the test
# (exit 1) when time runs out.
eng_wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      eng_log "FAIL: timed out after ${secs}s waiting for: $what"
      return 1
    fi
    sleep 0.5
  done
  eng_log "ok: $what"
}

# eng_docker0_fingerprint: what must not change on the host: docker0's index, address and
# flags (empty when there is no docker0, which must then stay so).
eng_docker0_fingerprint() {
  ip -o link show docker0 2>/dev/null | awk '{print $1, $2, $3, $(NF-2), $(NF)}' || true
}

# eng_verify_clean RUN DIR DOCKER0_BEFORE: after a test's cleanup, says what is left (network
# namespaces named RUN-*, DIR, images RUN/* on the shared engine) and whether docker0 changed;
# returns 1 if anything is wrong.
eng_verify_clean() {
  local run=$1 dir=$2 before=$3 rc=0 after left
  after=$(eng_docker0_fingerprint)
  [ "$after" = "$before" ] || { eng_log "FAIL: docker0 changed: before [$before] after [$after]"; rc=1; }
  left=$(ip netns list 2>/dev/null | grep -c "^$run-" || true)
  [ "$left" = 0 ] || { eng_log "FAIL: $left network namespaces $run-* left"; rc=1; }
  [ ! -e "$dir" ] || { eng_log "FAIL: $dir left"; rc=1; }
  [ -z "$(docker images -q "$run/*" 2>/dev/null)" ] || { eng_log "FAIL: images $run/* left on the shared engine"; rc=1; }
  return "$rc"
}

# eng_free_subnet: a 10.213.N.0/24 (prints "10.213.N") that no route or address of the host
# uses. The nodes never put an address in the host's namespace; this only keeps the test's
# addresses distinct from anything an operator could confuse them with.
eng_free_subnet() {
  local used n
  used=$(ip -4 route show; ip -4 -o addr show)
  for n in $(seq $(( $$ % 200 + 20 )) 254) $(seq 20 254); do
    grep -q "10\.213\.$n\." <<<"$used" || { echo "10.213.$n"; return 0; }
  done
  return 1
}

# eng_fail MSG...: a FAIL line, then exit 1 (the test's EXIT trap cleans up).
eng_fail() { eng_log "FAIL: $*"; exit 1; }

# eng_preflight WHY PREFIX: what every private-engine test needs before it starts (root, for
# WHY; the namespace tools; the shared engine, which builds the images), then eng_reap_stale
# PREFIX.
eng_preflight() {
  [ "$(id -u)" = 0 ] || eng_fail "needs root ($1)"
  for tool in ip nsenter unshare dockerd curl; do
    command -v "$tool" >/dev/null || eng_fail "$tool is not installed"
  done
  docker version >/dev/null 2>&1 || eng_fail "no Docker Engine answers (the shared one builds the images)"
  eng_reap_stale "$2"
}

# eng_reap_stale PREFIX: removes what runs of this test that died without cleaning up (SIGKILL,
# a machine crash) left behind: their namespaces (and every process still in them: engines,
# shims and containers those runs started) and their /tmp directories. A run is dead when the
# pid in its name is not running a bash any more.
eng_reap_stale() {
  local prefix=$1 ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-[0-9]+-" || true); do
    pid=${ns#"${prefix}-"}; pid=${pid%%-*}
    if [ "$pid" != "$$" ] && ! ps -p "$pid" -o comm= 2>/dev/null | grep -q bash; then
      eng_log "removing leftovers of dead run $pid: netns $ns"
      eng_kill_netns_pids "$ns"
      ip netns del "$ns" 2>/dev/null || true
      eng_rm_dir "/tmp/${prefix}-$pid"
    fi
  done
}

# eng_kill_netns_pids NS: SIGKILLs every process still in network namespace NS: only
# processes this test started (an engine, its containerd, shims, containers) live there.
eng_kill_netns_pids() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  # shellcheck disable=SC2086 # one pid per word
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}

# eng_rm_dir DIR: unmounts whatever is still mounted below DIR (deepest first), then rm -rf.
eng_rm_dir() {
  local d=$1
  [ -n "$d" ] && [ -d "$d" ] || return 0
  grep -o " ${d}[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$d" 2>/dev/null || { sleep 1; rm -rf "$d" || true; }
}

# eng_netns_add NS: a network namespace with loopback up.
eng_netns_add() {
  ip netns add "$1"
  ip -n "$1" link set lo up
}

# eng_switch_add NS: a namespace holding bridge br0, the switch between nodes.
eng_switch_add() {
  eng_netns_add "$1"
  ip -n "$1" link add br0 type bridge
  ip -n "$1" link set br0 up
}

# eng_wire SWITCH NODE_NS PORT ADDR/PREFIX: a veth pair from the switch's br0 (port PORT) to
# eth0 in NODE_NS with address ADDR.
eng_wire() {
  local sw=$1 ns=$2 port=$3 addr=$4
  ip -n "$sw" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "$port" master br0 up
  ip -n "$ns" addr add "$addr" dev eth0
  ip -n "$ns" link set eth0 up
}

# eng_start DIR NS CTRD_NS HOSTNAME SOCKET_DIR [EXTRA DOCKERD FLAGS...]: starts a dockerd
# in network namespace NS with its own config file, data root, exec root, pidfile and
# containerd namespace, all below DIR; its socket is DIR/run/docker.sock. It gets a mount and
# UTS namespace of its own (propagation slave: its container mounts never show on the host,
# and they vanish with it): HOSTNAME (or "") names the node; with SOCKET_DIR (or ""), DIR/run is also
# bind-mounted on SOCKET_DIR inside that mount namespace, so that containers of EVERY node
# can mount "SOCKET_DIR/docker.sock" and get their own node's engine (SOCKET_DIR exists empty
# on the host: a mistake cannot hand a container the shared engine's socket).
# With ENG_BIND="SRC:DST" in the environment, SRC is also bind-mounted on DST in that mount
# namespace (a per-node directory at a path every node shares, e.g. each node's own policy).
# Waits until the engine answers; the pid is in DIR/docker.pid.
eng_start() {
  local dir=$1 ns=$2 ctrd=$3 host=$4 sockdir=$5
  shift 5
  mkdir -p "$dir/run"
  [ -f "$dir/daemon.json" ] || echo '{}' >"$dir/daemon.json"
  local listen="$dir/run/docker.sock" setup=""
  if [ -n "$sockdir" ]; then
    setup="mount --bind '$dir/run' '$sockdir' && "
    listen="$sockdir/docker.sock"
  fi
  [ -n "$host" ] && setup+="hostname '$host' && "
  [ -n "${ENG_BIND:-}" ] && setup+="mount --bind '${ENG_BIND%%:*}' '${ENG_BIND#*:}' && "
  # exec chain: setsid -> nsenter (net) -> unshare (mount, uts) -> sh -> dockerd, each execs:
  # the pid in the pidfile is the only process to signal.
  setsid nsenter --net="/run/netns/$ns" unshare --mount --uts --propagation slave \
    sh -c "${setup}exec dockerd \"\$@\"" dockerd \
    --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" -H "unix://$listen" \
    --bridge=none --iptables=false --ip-masq=false \
    --containerd-namespace "$ctrd" --containerd-plugins-namespace "$ctrd-p" \
    "$@" >>"$dir/dockerd.log" 2>&1 </dev/null &
  local end=$(( $(date +%s) + 90 ))
  until DOCKER_HOST="unix://$dir/run/docker.sock" docker version >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      eng_log "FAIL: dockerd in $ns did not come up; its log:"
      tail -n 30 "$dir/dockerd.log" | sed 's/^/    /'
      return 1
    fi
    sleep 0.3
  done
}

# eng_stop DIR [NS]: SIGTERM the engine whose pid is in DIR/docker.pid and wait until it is
# gone (up to 40 s; a swarm node takes ~15 s), then SIGKILL it. With NS, whatever is still in
# that namespace (shims, containers of a killed engine) is killed too.
eng_stop() {
  local dir=$1 ns=${2:-} pid
  pid=$(cat "$dir/docker.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 400); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      eng_log "dockerd $pid did not stop within 40 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  [ -z "$ns" ] || eng_kill_netns_pids "$ns"
}

# eng_build_images TAR DOCKWARDEN SLEEPER [PAUSE]: builds, on the shared engine, the dockwarden
# image (Dockerfile.local, from the static binaries scripts/build-static.sh made), a fixture
# image FROM scratch running dw-sleeper and, when asked, a pause-like image of the same
# program under /pause (an image of its own); saves them into TAR and removes them from the
# shared engine again. Run it before anything points DOCKER_HOST at a private engine.
eng_build_images() {
  local tar=$1 image=$2 sleeper=$3 pause=${4:-} bin=target/x86_64-unknown-linux-gnu/release b
  local ctx; ctx=$(dirname "$tar")/image-context
  for b in state-controller status-api dw-sleeper; do
    [ -x "$bin/$b" ] || { eng_log "FAIL: $bin/$b missing: run bash scripts/build-static.sh"; return 1; }
  done
  mkdir -p "$ctx" && cp "$bin/dw-sleeper" "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q -f Dockerfile.local -t "$image" . >/dev/null ||
    { eng_log "FAIL: building $image"; return 1; }
  printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$sleeper" "$ctx" >/dev/null || { eng_log "FAIL: building $sleeper"; return 1; }
  local images=("$image" "$sleeper")
  if [ -n "$pause" ]; then
    printf 'FROM scratch\nCOPY dw-sleeper /pause\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$pause" "$ctx" >/dev/null || { eng_log "FAIL: building $pause"; return 1; }
    images+=("$pause")
  fi
  docker save -o "$tar" "${images[@]}"
  docker rmi -f "${images[@]}" >/dev/null
  rm -rf "$ctx"
  eng_log "images ${images[*]} built, saved ($(du -m "$tar" | cut -f1) MB) and removed from the shared engine"
}
