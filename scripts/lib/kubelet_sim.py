#!/usr/bin/env python3
"""A kubelet with cri-dockerd, reduced to what issue 11 needs, and the checks of dockwarden's
pod run that way. Started by scripts/kubelet-test.sh, which owns the Docker Engine (a private
one: the "node"), the temp dirs and the cleanup; everything this script creates lives in
that engine or under --root.

What it does like kubelet + cri-dockerd (Mirantis/cri-dockerd core/: sandbox_helpers.go,
container_create.go, security_context.go, naming.go):
- a sandbox container per pod from the pause image: `k8s_POD_<pod>_<ns>_<uid>_0`, the pod's
  host name, network mode none (CNI would add an interface; there is none here), IPC
  shareable, the pod's cgroup parent, cpu-shares 2, the pod's labels plus
  io.kubernetes.{pod.name,pod.namespace,pod.uid,container.name=POD,docker.type=podsandbox},
  its resolv.conf rewritten with the cluster DNS;
- each container of the template: `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`, network and
  IPC of the sandbox (so Docker mounts the SANDBOX's /etc/hostname and /etc/resolv.conf),
  /etc/hosts from the kubelet's pod directory, /dev/termination-log from a per-container
  file, Docker's health check off, restart policy no (the kubelet restarts), image,
  command/args, env (values, downward API fieldRefs, service links), ports (as the annotation), the
  merged pod and container securityContext (user, group, supplemental groups, read-only
  root, capabilities, no-new-privileges, runAsNonRoot verified), resources, volumes
  (hostPath as is; a configMap in the atomic-writer layout, read-only), and the labels
  io.kubernetes.{container.name,pod.name,pod.namespace,pod.uid,docker.type=container,
  sandbox.id} plus the annotation.* ones;
- restartPolicy Always: an exited container is re-created with attempt+1 after a back-off
  (1 s doubling to 8 s here; kubelet: 10 s doubling to 5 min);
- probes as kubelet runs them: httpGet to the pod's address (127.0.0.1 inside the pod's
  network namespace, entered with nsenter), exec through `docker exec`, tcpSocket; a
  liveness probe failing failureThreshold times kills the container;
- ConfigMap updates as the kubelet's AtomicWriter writes them: a new `..<timestamp>` dir,
  a `..data_tmp` symlink renamed over `..data`, the old dir removed.
With --cgroupns private, containers get a private cgroup namespace, as Docker gives them by
default on cgroup v2 nodes (where /proc/self/cgroup is `0::/`).
"""

import argparse
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import yaml

# The test's clock: scripts/kubelet-test.sh passes its start (ns since the epoch) in ENG_T0.
T0 = int(os.environ.get("ENG_T0", time.time_ns())) / 1e9


def now():
    return time.time() - T0


def log(msg):
    print(f"[kubelet {now():6.1f}s] {msg}", flush=True)


class Docker:
    """The Docker CLI against the node's engine."""

    def __init__(self, host):
        self.env = dict(os.environ, DOCKER_HOST=host)

    def __call__(self, *args, check=True):
        p = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout.strip()

    def inspect(self, cid):
        out = self("inspect", cid, check=False)
        return json.loads(out)[0] if out.startswith("[") else None

    def logs(self, cid):
        p = subprocess.run(["docker", "logs", cid], env=self.env, capture_output=True, text=True)
        return p.stdout + p.stderr


def quantity_milli_cpu(q):
    q = str(q)
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def quantity_bytes(q):
    q = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for u, f in units.items():
        if q.endswith(u):
            return int(float(q[: -len(u)]) * f)
    return int(q)


def rand_suffix(n=5):
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


class Pod:
    def __init__(self, name, namespace, spec, labels):
        self.name, self.namespace, self.spec, self.labels = name, namespace, spec, labels
        self.uid = str(uuid.uuid4())
        self.sandbox = None  # container ID
        self.sandbox_pid = None
        self.containers = {}  # name -> {"id", "attempt", "spec", "exited_at", "backoff", ...}
        self.dir = None

    def container_spec(self, name):
        return next(c for c in self.spec["containers"] if c["name"] == name)


class Kubelet:
    def __init__(self, docker, root, cgroupns, services, node_name, pause_image):
        self.docker, self.root, self.cgroupns = docker, root, cgroupns
        self.pause_image = pause_image
        self.services = services  # Service objects of the rendered manifests (service links)
        self.node_name = node_name
        self.configmaps = {}  # "ns/name" -> data
        self.pods = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.events = []  # (time, text) of restarts and liveness kills
        self.thread = threading.Thread(target=self._sync_loop, daemon=True)

    # --- pods -----------------------------------------------------------------------------
    def run_pod(self, name, namespace, spec, labels):
        pod = Pod(name, namespace, spec, labels)
        pod.dir = os.path.join(self.root, "pods", pod.uid)
        os.makedirs(os.path.join(pod.dir, "containers"))
        self._write_hosts(pod)
        self._create_sandbox(pod)
        for c in spec["containers"]:
            self._start_container(pod, c, attempt=0)
        with self.lock:
            self.pods.append(pod)
        if not self.thread.is_alive():
            self.thread.start()
        return pod

    def _cgroup_parent(self, pod):
        # cgroupfs driver, Burstable QoS (requests below limits): /kubepods/burstable/pod<uid>
        return f"/kubepods/burstable/pod{pod.uid}"

    def _write_hosts(self, pod):
        with open(os.path.join(pod.dir, "etc-hosts"), "w") as f:
            f.write(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
            )

    def _create_sandbox(self, pod):
        psc = pod.spec.get("securityContext") or {}
        labels = dict(pod.labels)
        labels.update({
            "io.kubernetes.pod.name": pod.name,
            "io.kubernetes.pod.namespace": pod.namespace,
            "io.kubernetes.pod.uid": pod.uid,
            "io.kubernetes.container.name": "POD",
            "io.kubernetes.docker.type": "podsandbox",
            "annotation.kubernetes.io/config.source": "api",
            "annotation.kubernetes.io/config.seen": datetime.now(timezone.utc).isoformat(),
        })
        args = ["create", "--name", f"k8s_POD_{pod.name}_{pod.namespace}_{pod.uid}_0",
                "--hostname", pod.name, "--network", "none", "--ipc", "shareable",
                "--cgroup-parent", self._cgroup_parent(pod), "--cgroupns", self.cgroupns,
                "--cpu-shares", "2"]
        # (cri-dockerd also sets --oom-score-adj -998; this machine refuses any negative
        # value, for the shared engine too, so the sim leaves it out.)
        args += self._user_args(psc, {})
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        args.append(self.pause_image)
        pod.sandbox = self.docker(*args)
        self.docker("start", pod.sandbox)
        # cri-dockerd then rewrites the sandbox's resolv.conf with the DNS config kubelet gives
        # (dnsPolicy ClusterFirst); the pod's containers see it through the shared network.
        resolv = self.docker("inspect", "-f", "{{.ResolvConfPath}}", pod.sandbox)
        with open(resolv, "w") as f:
            f.write(f"nameserver 10.96.0.10\nsearch {pod.namespace}.svc.cluster.local "
                    "svc.cluster.local cluster.local\noptions ndots:5\n")
        pod.sandbox_pid = int(self.docker("inspect", "-f", "{{.State.Pid}}", pod.sandbox))

    def _user_args(self, psc, csc):
        """--user, --group-add and the runAsNonRoot check, pod context merged with container's."""
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        gid = csc.get("runAsGroup", psc.get("runAsGroup"))
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root and uid == 0:
            raise RuntimeError("CreateContainerConfigError: runAsNonRoot and runAsUser 0")
        if non_root and uid is None:
            raise RuntimeError("runAsNonRoot without runAsUser: the sim does not read the image user")
        args = []
        if uid is not None:
            args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
        for g in psc.get("supplementalGroups") or []:
            args += ["--group-add", str(g)]
        if psc.get("fsGroup") is not None:
            args += ["--group-add", str(psc["fsGroup"])]
        return args

    def _env(self, pod, c):
        env = {}
        # Service links (enableServiceLinks defaults to true): every Service of the namespace
        # that has a cluster IP (headless ones get no variables).
        for i, svc in enumerate(s for s in self.services if s["metadata"].get("namespace") == pod.namespace
                                and s["spec"].get("clusterIP") != "None"):
            base = svc["metadata"]["name"].upper().replace("-", "_")
            ip = f"10.96.0.{20 + i}"
            ports = svc["spec"].get("ports") or []
            if not ports:
                continue
            env[f"{base}_SERVICE_HOST"] = ip
            env[f"{base}_SERVICE_PORT"] = str(ports[0]["port"])
            for p in ports:
                proto = p.get("protocol", "TCP")
                if p.get("name"):
                    env[f"{base}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
                pre = f"{base}_PORT_{p['port']}_{proto}"
                env[pre] = f"{proto.lower()}://{ip}:{p['port']}"
                env[pre + "_PROTO"], env[pre + "_PORT"], env[pre + "_ADDR"] = proto.lower(), str(p["port"]), ip
            env[f"{base}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{ip}:{ports[0]['port']}"
        env.update({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
                    "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443"})
        fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace,
                  "metadata.uid": pod.uid, "spec.nodeName": self.node_name,
                  "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
                  "status.podIP": "127.0.0.1", "status.hostIP": "10.0.0.1"}
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "fieldRef" in (e.get("valueFrom") or {}):
                path = e["valueFrom"]["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise RuntimeError(f"the sim does not know fieldRef {path}")
                env[e["name"]] = fields[path]
            else:
                raise RuntimeError(f"env {e['name']}: only value and fieldRef are simulated")
        return env

    def _volume_source(self, pod, vol):
        if "hostPath" in vol:
            return vol["hostPath"]["path"]
        if "configMap" in vol:
            d = os.path.join(pod.dir, "volumes", "kubernetes.io~configmap", vol["name"])
            if not os.path.isdir(d):
                os.makedirs(d)
                key = f"{pod.namespace}/{vol['configMap']['name']}"
                if key not in self.configmaps:
                    raise RuntimeError(f"configMap {key} not found")
                atomic_write(d, self.configmaps[key])
            return d
        raise RuntimeError(f"volume {vol['name']}: only hostPath and configMap are simulated")

    def _start_container(self, pod, c, attempt):
        psc = pod.spec.get("securityContext") or {}
        csc = c.get("securityContext") or {}
        name = f"k8s_{c['name']}_{pod.name}_{pod.namespace}_{pod.uid}_{attempt}"
        tlog_dir = os.path.join(pod.dir, "containers", c["name"])
        os.makedirs(tlog_dir, exist_ok=True)
        tlog = os.path.join(tlog_dir, "%08x" % random.getrandbits(32))
        open(tlog, "w").close()
        os.chmod(tlog, 0o666)
        ports = [{"name": p.get("name", ""), "containerPort": p["containerPort"],
                  "protocol": p.get("protocol", "TCP")} for p in c.get("ports") or []]
        labels = {
            "io.kubernetes.container.name": c["name"],
            "io.kubernetes.pod.name": pod.name,
            "io.kubernetes.pod.namespace": pod.namespace,
            "io.kubernetes.pod.uid": pod.uid,
            "io.kubernetes.docker.type": "container",
            "io.kubernetes.sandbox.id": pod.sandbox,
            "io.kubernetes.container.logpath": f"/var/log/pods/{pod.namespace}_{pod.name}_{pod.uid}/{c['name']}/{attempt}.log",
            "annotation.io.kubernetes.container.hash": "%08x" % (hash(json.dumps(c, sort_keys=True)) & 0xffffffff),
            "annotation.io.kubernetes.container.restartCount": str(attempt),
            "annotation.io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "annotation.io.kubernetes.container.terminationMessagePolicy": "File",
            "annotation.io.kubernetes.pod.terminationGracePeriod": "30",
            "annotation.io.kubernetes.container.ports": json.dumps(ports),
        }
        args = ["create", "--name", name,
                "--network", f"container:{pod.sandbox}", "--ipc", f"container:{pod.sandbox}",
                "--cgroup-parent", self._cgroup_parent(pod), "--cgroupns", self.cgroupns,
                "--restart", "no", "--no-healthcheck"]
        args += self._user_args(psc, csc)
        if csc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if csc.get("privileged"):
            args.append("--privileged")
        caps = csc.get("capabilities") or {}
        for cap in caps.get("drop") or []:
            args += ["--cap-drop", cap]
        for cap in caps.get("add") or []:
            args += ["--cap-add", cap]
        if csc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type", "Unconfined")
        if seccomp == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if "memory" in limits:
            m = str(quantity_bytes(limits["memory"]))
            args += ["--memory", m, "--memory-swap", m]
        if "cpu" in limits:
            args += ["--cpu-period", "100000", "--cpu-quota", str(quantity_milli_cpu(limits["cpu"]) * 100)]
        cpu_req = requests.get("cpu", limits.get("cpu"))
        if cpu_req is not None:
            args += ["--cpu-shares", str(max(2, quantity_milli_cpu(cpu_req) * 1024 // 1000))]
        for k, v in self._env(pod, c).items():
            args += ["--env", f"{k}={v}"]
        # Ports are only recorded (the annotation above): the pod's network is the sandbox's.
        vols = {v["name"]: v for v in pod.spec.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            if m.get("subPath"):
                raise RuntimeError("subPath mounts are not simulated")
            vol = vols[m["name"]]
            ro = m.get("readOnly") or "configMap" in vol
            args += ["-v", f"{self._volume_source(pod, vol)}:{m['mountPath']}{':ro' if ro else ''}"]
        args += ["-v", f"{os.path.join(pod.dir, 'etc-hosts')}:/etc/hosts"]
        args += ["-v", f"{tlog}:/dev/termination-log"]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        cmd = list(c.get("command") or [])
        if cmd:
            args += ["--entrypoint", cmd[0]]
        args.append(c["image"])
        args += cmd[1:] + [str(a) for a in c.get("args") or []]
        cid = self.docker(*args)
        self.docker("start", cid)
        prev = pod.containers.get(c["name"], {})
        pod.containers[c["name"]] = {
            "id": cid, "attempt": attempt, "spec": c, "exited_at": None,
            "backoff": prev.get("backoff", 0.5), "liveness_failures": 0,
            "next_probe": time.time() + (c.get("livenessProbe") or {}).get("initialDelaySeconds", 0),
            "ready": False, "ids": prev.get("ids", []) + [cid],
        }

    # --- restarts and liveness ---------------------------------------------------------------
    def _sync_loop(self):
        while not self.stop.wait(0.5):
            with self.lock:
                pods = list(self.pods)
            for pod in pods:
                for name, st in list(pod.containers.items()):
                    try:
                        self._sync_container(pod, name, st)
                    except Exception as e:  # noqa: BLE001 - the loop must go on
                        self.events.append((time.time(), f"sync error {pod.name}/{name}: {e}"))

    def _sync_container(self, pod, name, st):
        now = time.time()
        state = self.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", st["id"], check=False)
        if not state.startswith("running"):
            if st["exited_at"] is None:
                st["exited_at"] = now
                st["backoff"] = min(st["backoff"] * 2, 8.0)
                self.events.append((now, f"{pod.namespace}/{pod.name}/{name} attempt {st['attempt']} "
                                         f"ended ({state}); restart in {st['backoff']:.0f}s"))
            elif now - st["exited_at"] >= st["backoff"]:
                self._start_container(pod, st["spec"], st["attempt"] + 1)
                self.events.append((now, f"{pod.namespace}/{pod.name}/{name} re-created as attempt {st['attempt'] + 1}"))
            return
        probe = st["spec"].get("livenessProbe")
        if probe and now >= st["next_probe"]:
            st["next_probe"] = now + probe.get("periodSeconds", 10)
            ok, detail = self.probe(pod, name, "livenessProbe")
            st["liveness_failures"] = 0 if ok else st["liveness_failures"] + 1
            if st["liveness_failures"] >= probe.get("failureThreshold", 3):
                self.events.append((now, f"{pod.namespace}/{pod.name}/{name}: liveness failed ({detail}); killing"))
                self.docker("kill", st["id"], check=False)

    # --- probes ----------------------------------------------------------------------------
    def probe(self, pod, name, kind):
        c = pod.containers[name]
        p = c["spec"].get(kind)
        if not p:
            return True, "no probe"
        timeout = str(p.get("timeoutSeconds", 1))
        if "httpGet" in p or "tcpSocket" in p:
            h = p.get("httpGet") or p["tcpSocket"]
            port = h["port"]
            if isinstance(port, str):
                port = next(x["containerPort"] for x in c["spec"].get("ports") or [] if x.get("name") == port)
            nsenter = ["nsenter", f"--net=/proc/{pod.sandbox_pid}/ns/net"]
            if "httpGet" in p:
                url = f"http://127.0.0.1:{port}{h.get('path', '/')}"
                r = subprocess.run(nsenter + ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                              "--max-time", timeout, url], capture_output=True, text=True)
                code = r.stdout.strip()
                return code.isdigit() and 200 <= int(code) < 400, f"GET {url} -> {code or r.stderr.strip()}"
            r = subprocess.run(nsenter + ["bash", "-c", f"echo -n > /dev/tcp/127.0.0.1/{port}"],
                               capture_output=True, text=True, timeout=float(timeout) + 2)
            return r.returncode == 0, f"tcp 127.0.0.1:{port}"
        if "exec" in p:
            r = subprocess.run(["timeout", timeout, "docker", "exec", c["id"], *p["exec"]["command"]],
                               env=self.docker.env, capture_output=True, text=True)
            return r.returncode == 0, f"exec {p['exec']['command']} -> rc {r.returncode}"
        raise RuntimeError(f"{kind}: unknown handler")

    # --- ConfigMaps ------------------------------------------------------------------------
    def update_configmap(self, namespace, name, data):
        """Writes the new data into every pod volume of that ConfigMap; returns the new
        `..<timestamp>` dir names."""
        self.configmaps[f"{namespace}/{name}"] = data
        stamps = []
        for pod in self.pods:
            for vol in pod.spec.get("volumes") or []:
                if (vol.get("configMap") or {}).get("name") == name and pod.namespace == namespace:
                    d = os.path.join(pod.dir, "volumes", "kubernetes.io~configmap", vol["name"])
                    stamps.append(atomic_write(d, data))
        return stamps


def atomic_write(target, data):
    """The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go): files go into a new
    `..<timestamp>` dir, `..data_tmp` -> that dir is renamed over `..data`, user-visible
    names are symlinks `<key> -> ..data/<key>`, and the previous dir is removed."""
    old = os.readlink(os.path.join(target, "..data")) if os.path.islink(os.path.join(target, "..data")) else None
    stamp = datetime.now(timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.") + str(random.randint(10**8, 10**9))
    ts_dir = os.path.join(target, stamp)
    os.mkdir(ts_dir, 0o755)
    for key, text in data.items():
        with open(os.path.join(ts_dir, key), "w") as f:
            f.write(text)
        os.chmod(os.path.join(ts_dir, key), 0o644)
    tmp = os.path.join(target, "..data_tmp")
    os.symlink(stamp, tmp)
    os.rename(tmp, os.path.join(target, "..data"))
    for key in data:
        link = os.path.join(target, key)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", key), link)
    if old and old != stamp:
        shutil.rmtree(os.path.join(target, old), ignore_errors=True)
    return stamp


# --- the checks ------------------------------------------------------------------------------
class Checks:
    def __init__(self):
        self.results = []

    def record(self, name, ok, detail="", blame=""):
        self.results.append((name, ok, detail, blame))
        log(f"{'ok' if ok else 'FAILED'}: {name}{' - ' + detail if detail else ''}")
        if not ok and blame:
            log(f"    (needs: {blame})")
        return ok


def wait_until(secs, fn, interval=0.5):
    end = time.time() + secs
    while True:
        v = fn()
        if v or time.time() > end:
            return v
        time.sleep(interval)


IDENTITY_BLAME = ("the lead wiring common::identity into the identity lookup (today's "
                  "own_container_id() takes the pod sandbox named in /proc/self/mountinfo)")
COMEBACK_BLAME = ("counting comebacks per workload (common::identity::workload_key) instead of "
                  "per container name: kubelet names every restart k8s_<c>_<pod>_<ns>_<uid>_<attempt>")


def render_kustomization(root):
    """Where kubectl is missing: renders the part of kustomize this repository's k8s/ uses
    (resources, namespace, configMapGenerator from files with generatorOptions' labels and no
    name hash). NOT kustomize: the test says so when it falls back to it."""
    k = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
    known = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "generatorOptions"}
    if set(k) - known:
        raise RuntimeError(f"the stand-in renderer does not know {sorted(set(k) - known)}: install kubectl")
    docs = []
    for r in k.get("resources", []):
        docs += [d for d in yaml.safe_load_all(open(os.path.join(root, r))) if d]
    opts = k.get("generatorOptions") or {}
    for g in k.get("configMapGenerator", []):
        data = {}
        for f in g.get("files", []):
            key, _, path = f.rpartition("=") if "=" in f else (os.path.basename(f), "", f)
            data[key] = open(os.path.join(root, path)).read()
        meta = {"name": g["name"], "labels": dict(opts.get("labels") or {})}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    for d in docs:
        if k.get("namespace") and d["kind"] != "Namespace":
            d["metadata"]["namespace"] = k["namespace"]
    return docs


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        yaml.safe_dump_all(render_kustomization(sys.argv[2]), sys.stdout, sort_keys=False)
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--docker-host", required=True)
    ap.add_argument("--root", required=True, help="the kubelet's root dir (pods/...)")
    ap.add_argument("--rendered", required=True, help="kubectl kustomize k8s/ output")
    ap.add_argument("--pause-image", required=True)
    ap.add_argument("--fixture-image", required=True)
    ap.add_argument("--cgroupns", default="private", choices=["private", "host"])
    ap.add_argument("--capture", help="save the controller's /proc texts and the engine's view here")
    a = ap.parse_args()
    docker = Docker(a.docker_host)
    docs = [d for d in yaml.safe_load_all(open(a.rendered)) if d]
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    services = [d for d in docs if d["kind"] == "Service"]
    kubelet = Kubelet(docker, a.root, a.cgroupns, services, "dwtest-k8s-node", a.pause_image)
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        kubelet.configmaps[f"{cm['metadata']['namespace']}/{cm['metadata']['name']}"] = dict(cm["data"])
    tmpl = ds["spec"]["template"]
    ns = ds["metadata"]["namespace"]
    checks = Checks()

    # --- the pod, from the rendered DaemonSet's template --------------------------------------
    names = [c["name"] for c in tmpl["spec"]["containers"]]
    log(f"DaemonSet {ns}/{ds['metadata']['name']}: pod template with containers {names}, "
        f"images {[c['image'] for c in tmpl['spec']['containers']]}, "
        f"volumes {[v['name'] for v in tmpl['spec'].get('volumes') or []]}")
    pod = kubelet.run_pod(f"{ds['metadata']['name']}-{rand_suffix()}", ns, tmpl["spec"], tmpl["metadata"].get("labels") or {})
    log(f"pod {ns}/{pod.name} uid {pod.uid}: sandbox {pod.sandbox[:12]} (pid {pod.sandbox_pid}), "
        + ", ".join(f"{n} {st['id'][:12]}" for n, st in pod.containers.items()))
    for n, st in pod.containers.items():
        i = docker.inspect(st["id"])
        hc = i["HostConfig"]
        log(f"    {n}: user={i['Config']['User']} groups={hc['GroupAdd']} readonly={hc['ReadonlyRootfs']} "
            f"capdrop={hc['CapDrop']} secopt={hc['SecurityOpt']} network={hc['NetworkMode'][:22]}… "
            f"cgroupns={hc.get('CgroupnsMode')} mounts={[m['Destination'] for m in i['Mounts']]}")

    # --- probes ------------------------------------------------------------------------------
    for n in names:
        for kind in ("readinessProbe", "livenessProbe"):
            res = wait_until(60, lambda: (lambda r: r if r[0] else None)(kubelet.probe(pod, n, kind)))
            checks.record(f"{n} {kind} passes", bool(res), (res or kubelet.probe(pod, n, kind))[1])

    def ctl_logs():
        st = pod.containers["state-controller"]
        return "".join(docker.logs(cid) for cid in st["ids"])

    # --- the fleet view: the node name from the downward API, the headless Service ------------
    check_fleet(checks, docs, ds, pod, kubelet)

    # --- own container, not the sandbox ------------------------------------------------------
    ctl = pod.containers["state-controller"]["id"]
    api = pod.containers["status-api"]["id"]
    if a.capture:
        save_capture(a.capture, docker, pod, ctl)
    ident_lines = [ln for ln in ctl_logs().splitlines() if "running in a container" in ln or "own container" in ln]
    if ident_lines:
        line = ident_lines[0]
        log(f"    controller: {line.strip()[:230]}")
        checks.record("the controller names its own container, not the sandbox", ctl[:12] in line and pod.sandbox[:12] not in line,
                      f"own {ctl[:12]}, sandbox {pod.sandbox[:12]}", IDENTITY_BLAME)
    else:
        checks.record("the controller logs which container it runs in", False, "no such line in its log")

    # --- a ConfigMap update as the kubelet writes it: enforce, only sandboxes and kube-system --
    cm_name = next(v["configMap"]["name"] for v in tmpl["spec"]["volumes"] if "configMap" in v)
    policy = ('# kubelet-test: enforce; allow pod sandboxes and kube-system only. Nothing allows\n'
              '# dockwarden\'s own pod: it must be spared as its own.\n'
              'mode = "enforce"\naction = "kill"\n\n[[allow]]\nlabels = { "io.kubernetes.docker.type" = "podsandbox" }\n\n'
              '[[allow]]\nlabels = { "io.kubernetes.pod.namespace" = "kube-system" }\n')
    stamps = kubelet.update_configmap(ns, cm_name, {"allowlist.toml": policy})
    log(f"ConfigMap {ns}/{cm_name} updated the kubelet's way: ..data -> {stamps}")
    reloaded = wait_until(30, lambda: any("reload" in ln and "enforce" in ln for ln in ctl_logs().splitlines()))
    checks.record("the ConfigMap update is applied (controller reloads, mode enforce)", reloaded,
                  next((ln.strip()[:200] for ln in ctl_logs().splitlines() if "reload" in ln and "enforce" in ln), ""))
    rogue = docker("run", "-d", "--network", "none", "--name", "dwtest-k8s-rogue", a.fixture_image)
    killed = wait_until(20, lambda: docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", rogue) == "exited 137")
    checks.record("under the updated policy a denied container on the node is killed", killed)

    # --- spares its own containers, and nothing of the sandbox's image ------------------------
    imposter = docker("run", "-d", "--network", "none", "--name", "dwtest-k8s-pause-imposter", a.pause_image)
    killed = wait_until(20, lambda: docker("inspect", "-f", "{{.State.Status}}", imposter) == "exited")
    checks.record("a container of the pause image that is no sandbox is judged and killed", killed,
                  "" if killed else "it was spared: dockwarden took the sandbox's image for its own", IDENTITY_BLAME)
    time.sleep(5)
    own_ok = all(st["attempt"] == 0 and docker("inspect", "-f", "{{.State.Status}}", st["id"]) == "running"
                 for st in pod.containers.values())
    checks.record("dockwarden's own two containers are spared under enforce (never killed, attempt 0)", own_ok,
                  ", ".join(f"{n} attempt {st['attempt']}" for n, st in pod.containers.items()), IDENTITY_BLAME)
    sb_state = docker("inspect", "-f", "{{.State.Status}}", pod.sandbox)
    checks.record("the pod's sandbox is allowed by its label and runs", sb_state == "running", sb_state)
    status = status_api_view(pod, kubelet)
    if status is not None:
        mine = {c["id"]: c for c in status}
        ctl_view = mine.get(pod.containers["state-controller"]["id"], {})
        sb_view = mine.get(pod.sandbox, {})
        log(f"    status-api: state-controller allowed={ctl_view.get('allowed')} spared={ctl_view.get('spared', False)}; "
            f"sandbox allowed={sb_view.get('allowed')} spared={sb_view.get('spared', False)}")
        checks.record("status-api marks its pod's containers as spared and the sandbox as allowed by a rule, not spared",
                      ctl_view.get("spared") is True and sb_view.get("allowed") is True and not sb_view.get("spared"),
                      "", IDENTITY_BLAME)

    # --- a denied pod that the kubelet keeps re-creating is reported as coming back -----------
    bad_spec = {"containers": [{"name": "app", "image": a.fixture_image}], "restartPolicy": "Always"}
    bad = kubelet.run_pod(f"intruder-{rand_suffix()}", "rogue", bad_spec, {"app": "intruder"})
    log(f"pod rogue/{bad.name}: container app {bad.containers['app']['id'][:12]} (denied: namespace rogue)")
    recreated = wait_until(60, lambda: bad.containers["app"]["attempt"] >= 2
                           and docker("inspect", "-f", "{{.State.Status}}", bad.containers["app"]["id"]) != "running")
    checks.record("the denied pod container is killed each time the kubelet re-creates it (3 attempts)", recreated,
                  f"attempt {bad.containers['app']['attempt']}")
    comeback = wait_until(10, lambda: "keeps coming back" in ctl_logs())
    line = next((ln.strip()[:220] for ln in ctl_logs().splitlines() if "keeps coming back" in ln), "")
    checks.record("the controller reports it as coming back ('keeps coming back')", comeback, line, COMEBACK_BLAME)
    metric = metric_value(pod, "dockwarden_recurring_total")
    checks.record("dockwarden_recurring_total counts it", (metric or 0) >= 1, f"value {metric}", COMEBACK_BLAME)

    kubelet.stop.set()
    for t, e in kubelet.events:
        log(f"    kubelet event at {t - T0:.1f}s: {e}")
    failed = [r for r in checks.results if not r[1]]
    log(f"{len(checks.results) - len(failed)} of {len(checks.results)} checks passed")
    for name, _, detail, blame in failed:
        log(f"FAILED: {name}{' - ' + detail if detail else ''}{' [needs ' + blame + ']' if blame else ''}")
    return 1 if failed else 0


def check_fleet(checks, docs, ds, pod, kubelet):
    """The manifests' fleet wiring, offline (what no running cluster is needed for), then what
    the pod's status-api makes of it: the node name from the downward API, and the peers name
    (which no DNS answers here: the pod has only loopback) reported as such, never fatal."""
    tmpl = ds["spec"]["template"]
    api = next(c for c in tmpl["spec"]["containers"] if c["name"] == "status-api")
    env = {e["name"]: e for e in api.get("env") or []}
    node_ref = ((env.get("DOCKWARDEN_NODE_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
    checks.record("status-api's DOCKWARDEN_NODE_NAME comes from the downward API (spec.nodeName)",
                  node_ref == "spec.nodeName", f"fieldRef {node_ref}")
    peers = (env.get("DOCKWARDEN_PEERS") or {}).get("value", "")
    host, _, port = peers.rpartition(":")
    svc = next((d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == host.split(".")[0]), None)
    pod_labels = tmpl["metadata"].get("labels") or {}
    api_ports = {p.get("name"): p["containerPort"] for p in api.get("ports") or []}
    ok = (svc is not None and svc["spec"].get("clusterIP") == "None"
          and svc["metadata"].get("namespace") == ds["metadata"]["namespace"]
          and all(pod_labels.get(k) == v for k, v in (svc["spec"].get("selector") or {}).items())
          and bool(svc["spec"].get("selector"))
          and any(str(p["port"]) == port and api_ports.get(p.get("targetPort"), p.get("targetPort")) == 8080
                  for p in svc["spec"].get("ports") or []))
    checks.record(f"DOCKWARDEN_PEERS={peers} names a headless Service selecting the DaemonSet's pods on status-api's port",
                  ok, f"service {svc and svc['metadata']['name']}, clusterIP {svc and svc['spec'].get('clusterIP')}, "
                      f"publishNotReadyAddresses {svc and svc['spec'].get('publishNotReadyAddresses')}")
    netpol = next((d for d in docs if d["kind"] == "NetworkPolicy"), None)
    egress = (netpol or {}).get("spec", {}).get("egress") or []
    to_peers = any(any((t.get("podSelector") or {}).get("matchLabels") == pod_labels for t in r.get("to") or [])
                   and any(p.get("port") == 8080 for p in r.get("ports") or []) for r in egress)
    dns = any(any(p.get("port") == 53 and p.get("protocol") == "UDP" for p in r.get("ports") or []) for r in egress)
    checks.record("the NetworkPolicy lets status-api reach its peers (8080) and the cluster DNS (53)", to_peers and dns,
                  f"{len(egress)} egress rules")

    port = next(p["containerPort"] for p in api.get("ports") or [])
    r = in_pod(pod, "curl", "-fsS", "--max-time", "5", f"http://127.0.0.1:{port}/node")
    node = json.loads(r.stdout) if r.returncode == 0 else {}
    checks.record("status-api's GET /node names the node from the downward API",
                  node.get("node") == kubelet.node_name, f"node {node.get('node')!r}, want {kubelet.node_name!r}")
    nodes = wait_until(15, lambda: (lambda v: v if v.get("nodes") else None)(fleet_nodes(pod, port)))
    local = next((n for n in (nodes or {}).get("nodes") or [] if n.get("local")), {})
    err = (nodes or {}).get("discovery_error") or ""
    log(f"    /fleet/nodes: {len((nodes or {}).get('nodes') or [])} node(s), local {local.get('node')!r}; discovery: {err[:150]}")
    checks.record("its /fleet view lists this node by that name and says why the peers cannot be found (no cluster DNS here)",
                  local.get("node") == kubelet.node_name and host in err, "")


def fleet_nodes(pod, port):
    r = in_pod(pod, "curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/fleet/nodes")
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


def in_pod(pod, *cmd):
    return subprocess.run(["nsenter", f"--net=/proc/{pod.sandbox_pid}/ns/net", *cmd], capture_output=True, text=True)


def status_api_view(pod, kubelet):
    port = next(p["containerPort"] for p in pod.container_spec("status-api").get("ports") or [])
    r = in_pod(pod, "curl", "-fsS", "--max-time", "5", f"http://127.0.0.1:{port}/containers")
    if r.returncode != 0:
        log(f"    status-api not answering: {r.stderr.strip()}")
        return None
    return json.loads(r.stdout)["containers"]


def metric_value(pod, name):
    port = next(p["containerPort"] for p in pod.container_spec("state-controller").get("ports") or [])
    r = in_pod(pod, "curl", "-fsS", "--max-time", "5", f"http://127.0.0.1:{port}/metrics")
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+]+)$", r.stdout, re.M)
    return float(m.group(1)) if m else None


def save_capture(d, docker, pod, ctl):
    os.makedirs(d, exist_ok=True)
    pid = docker("inspect", "-f", "{{.State.Pid}}", ctl)
    for f in ("mountinfo", "cgroup"):
        r = subprocess.run(["nsenter", "-t", pid, "-C", "--", "cat", f"/proc/{pid}/{f}"], capture_output=True, text=True)
        with open(os.path.join(d, f"kubelet-sim-controller.{f}"), "w") as out:
            out.write(r.stdout)
    ids = [pod.sandbox] + [st["id"] for st in pod.containers.values()]
    with open(os.path.join(d, "kubelet-sim-inspect.json"), "w") as out:
        json.dump([docker.inspect(i) for i in ids], out, indent=1)
    log(f"    captured the controller's /proc texts and the pod's inspect JSON into {d}")


if __name__ == "__main__":
    sys.exit(main())
