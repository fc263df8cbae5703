# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo cluster's parts, for tools/testbed.py (the command; its
docstring says what ``up``, ``down``, ``plug`` and ``unplug`` do): the
cluster's description read from testbed/cluster.yml (``Cluster``, ``Node``),
the read-only registry process on the network's gateway (the nodes cannot
reach 127.0.0.1:5000, the host's loopback), and the node containers with
their cgroup limits and fake hardware.

Needs the docker CLI, Debian's docker-registry and PyYAML.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("testbed: needs PyYAML; run it with the project's venv (.venv/bin/python tools/testbed.py)")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLUSTER = ROOT / "testbed" / "cluster.yml"
STATE_DIR = Path(os.environ.get("NANOEDGE_STATE_DIR", "/var/lib/nanoedge-testbed"))
LABEL = "io.nanoedge.testbed"

# Fake hardware: a path under testbed/hardware/<host>/ is mounted read-only at
# the same path in the node. Only these targets can be mounted in a container
# (see testbed/README.md): new paths under /sys and anything under
# /proc/device-tree are refused by the kernel or by runc.
HARDWARE_MOUNTS = (
    "proc/cpuinfo",
    "sys/firmware",
    "sys/bus",
    "sys/class/power_supply",
    "dev/ttyUSB0",
)

# What a privileged container would get, minus CAP_SYS_RESOURCE, which some
# hosts (VMs among them) cannot grant, so --privileged fails there.
NODE_SECURITY = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
)


class TestbedError(RuntimeError):
    """Something the user can fix; the message says what."""


def log(message: str) -> None:
    print("testbed: %s" % message, file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True, timeout: float = 600, capture: bool = True,
           input_data: t.Optional[bytes] = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["docker", *args], capture_output=capture, timeout=timeout, check=False,
                              input=input_data)
    except FileNotFoundError as exc:
        raise TestbedError("the docker CLI is not installed (bash tools/prereqs.sh installs it)") from exc
    if check and proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip() if capture else ""
        raise TestbedError("docker %s failed (%d): %s" % (" ".join(args[:3]), proc.returncode, detail))
    return proc


def docker_out(*args: str, **kwargs: t.Any) -> str:
    return docker(*args, **kwargs).stdout.decode().strip()


# ---------------------------------------------------------------- the cluster


class Node(t.NamedTuple):
    host: str
    role: str
    container: str
    address: str
    cpus: float
    memory: str
    hardware: t.Optional[Path]
    board: str
    description: str


class Cluster:
    def __init__(self, path: Path, prefix: t.Optional[str] = None, network: t.Optional[str] = None,
                 subnet: t.Optional[str] = None, only: t.Optional[t.Sequence[str]] = None) -> None:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise TestbedError("cannot read the cluster file %s: %s" % (path, exc)) from exc
        self.path = path
        self.name = str(data["name"])
        self.prefix = prefix if prefix is not None else str(data.get("prefix", "nanoedge-"))
        self.network = network or str(data["network"]["name"])
        self.subnet = ipaddress.ip_network(subnet or data["network"]["subnet"])
        # the gateway keeps its host part when the subnet is moved
        gateway_offset = int(ipaddress.ip_address(data["network"]["gateway"])) - int(
            ipaddress.ip_network(data["network"]["subnet"]).network_address)
        self.gateway = str(self.subnet.network_address + gateway_offset)
        registry = data["registry"]
        self.local_registry = str(registry["local"])
        self.gateway_registry = "%s:%d" % (self.gateway, int(registry["port"]))
        self.registry_storage = Path(registry["storage"])
        image = data["node_image"]
        self.image_name = str(image["name"])
        self.image_context = ROOT / image["context"]
        self.base_image = str(image["base"])
        self.nodes: t.List[Node] = []
        for host, spec in data["nodes"].items():
            if only and host not in only:
                continue
            address = self.subnet.network_address + int(spec["address"])
            if address not in self.subnet or str(address) == self.gateway:
                raise TestbedError("%s: node %s has address %s outside %s or on the gateway"
                                   % (path, host, address, self.subnet))
            self.nodes.append(Node(
                host=host, role=str(spec["role"]), container=self.prefix + host, address=str(address),
                cpus=float(spec["cpus"]), memory=str(spec["memory"]),
                hardware=(ROOT / spec["hardware"]) if spec.get("hardware") else None,
                board=str(spec.get("board", "")), description=str(spec.get("description", "")),
            ))
        if only:
            unknown = sorted(set(only) - {n.host for n in self.nodes})
            if unknown:
                raise TestbedError("no such node(s) in %s: %s" % (path, ", ".join(unknown)))

    @property
    def image(self) -> str:
        return "%s:%s" % (self.image_name, self.image_tag())

    def image_tag(self) -> str:
        """Content address of the node image: its build context and the base image."""
        digest = hashlib.sha256()
        for item in sorted(self.image_context.rglob("*")):
            if item.is_file():
                digest.update(item.relative_to(self.image_context).as_posix().encode() + b"\0")
                digest.update(item.read_bytes() + b"\0")
        digest.update(self.base_image.encode())
        return digest.hexdigest()[:12]

    def mounts(self, node: Node) -> t.List[t.Tuple[Path, str]]:
        if node.hardware is None:
            return []
        if not node.hardware.is_dir():
            raise TestbedError("node %s: hardware folder %s does not exist" % (node.host, node.hardware))
        return [(node.hardware / rel, "/" + rel) for rel in HARDWARE_MOUNTS if (node.hardware / rel).exists()]

    def live_hardware(self, node: Node) -> Path:
        """The copy of the node's hardware folder its container mounts; ``plug`` and ``unplug`` change it."""
        return STATE_DIR / "hardware" / node.container

    def node(self, host: str) -> Node:
        for node in self.nodes:
            if node.host == host:
                return node
        raise TestbedError("no node %r in %s (nodes: %s)" % (host, self.path, ", ".join(n.host for n in self.nodes)))

    def config_hash(self, node: Node) -> str:
        """Everything that shapes a node container; a change means re-create."""
        mounts = [(str(source), target, _tree_digest(source)) for source, target in self.mounts(node)]
        # "live-hardware": nodes mount copies of their hardware folders (see start_node)
        document = [self.image, node._asdict(), mounts, self.network, str(self.subnet), self.gateway_registry,
                    "live-hardware"]
        return hashlib.sha256(json.dumps(document, default=str, sort_keys=True).encode()).hexdigest()[:16]


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in files:
        digest.update(str(item.relative_to(path.parent)).encode() + b"\0")
        digest.update(hashlib.sha256(item.read_bytes()).digest())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------- the registry


def _registry_files(cluster: Cluster) -> t.Tuple[Path, Path, Path]:
    stem = "gateway-registry-%s" % cluster.network
    return STATE_DIR / (stem + ".yml"), STATE_DIR / (stem + ".pid"), STATE_DIR / (stem + ".log")


def registry_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen("http://%s/v2/" % address, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _our_registry_pid(cluster: Cluster) -> t.Optional[int]:
    """The gateway registry's pid, only if that process still runs our config."""
    config, pid_file = _registry_files(cluster)[:2]
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(config).encode() in cmdline else None


def start_gateway_registry(cluster: Cluster) -> None:
    if _our_registry_pid(cluster) is not None and registry_answers(cluster.gateway_registry):
        return
    if not registry_answers(cluster.local_registry):
        raise TestbedError("the OCI registry on %s does not answer; run bash tools/prereqs.sh"
                           % cluster.local_registry)
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise TestbedError("docker-registry is not installed (bash tools/prereqs.sh installs it)")
    config, pid_file, log_file = _registry_files(cluster)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    # same storage as the host's registry, read-only: nodes pull, only the host pushes
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(cluster.registry_storage)},
                    "maintenance": {"readonly": {"enabled": True}}},
        # read-only: the secret guards upload state, which never exists here
        "http": {"addr": cluster.gateway_registry, "secret": secrets.token_hex(16)},
    }))
    with open(log_file, "ab") as log_handle:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log_handle, stderr=log_handle,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text("%d\n" % process.pid)
    deadline = time.monotonic() + 20
    while not registry_answers(cluster.gateway_registry):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
            raise TestbedError("the gateway registry on %s did not start: %s"
                               % (cluster.gateway_registry, " / ".join(tail) or "no output"))
        time.sleep(0.1)
    log("registry for the nodes on http://%s (read-only, pid %d)" % (cluster.gateway_registry, process.pid))


def stop_gateway_registry(cluster: Cluster) -> None:
    config, pid_file, log_file = _registry_files(cluster)
    pid = _our_registry_pid(cluster)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path("/proc/%d" % pid).exists() and time.monotonic() < deadline:
            try:  # reap it when this process started it (up and down in one run)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        log("stopped the gateway registry (pid %d)" % pid)
    for path in (pid_file, config, log_file):
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ the nodes


def build_image(cluster: Cluster, force: bool = False) -> str:
    image = cluster.image
    if not force and docker("image", "inspect", image, check=False).returncode == 0:
        return image
    if docker("image", "inspect", cluster.base_image, check=False).returncode != 0:
        raise TestbedError("the base image %s is missing; run bash tools/prereqs.sh" % cluster.base_image)
    log("building %s" % image)
    started = time.monotonic()
    docker("build", "-q", "--build-arg", "BASE_IMAGE=%s" % cluster.base_image,
           "-t", image, "-t", "%s:latest" % cluster.image_name, str(cluster.image_context))
    log("built %s in %.0f s" % (image, time.monotonic() - started))
    return image


def ensure_network(cluster: Cluster) -> None:
    proc = docker("network", "inspect", cluster.network, check=False)
    if proc.returncode == 0:
        ipam = json.loads(proc.stdout)[0]["IPAM"]["Config"]
        if not any(c.get("Subnet") == str(cluster.subnet) and c.get("Gateway") == cluster.gateway for c in ipam):
            raise TestbedError("network %s exists with another subnet (%s); remove it or pass --subnet"
                               % (cluster.network, ipam))
        return
    docker("network", "create", "--driver", "bridge", "--subnet", str(cluster.subnet),
           "--gateway", cluster.gateway, "--label", "%s=%s" % (LABEL, cluster.name), cluster.network)
    log("network %s (%s, gateway %s)" % (cluster.network, cluster.subnet, cluster.gateway))


def container_state(name: str) -> t.Optional[t.Dict[str, t.Any]]:
    proc = docker("container", "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]


def start_node(cluster: Cluster, node: Node) -> str:
    """Start ``node`` unless it already runs as configured; return what happened."""
    wanted = cluster.config_hash(node)
    state = container_state(node.container)
    if state is not None:
        labels = state["Config"].get("Labels") or {}
        if state["State"]["Running"] and labels.get(LABEL + ".config") == wanted:
            return "running"
        docker("rm", "-f", "-v", node.container)
    args = [
        "run", "-d", "--name", node.container, "--hostname", node.host,
        "--network", cluster.network, "--ip", node.address,
        "--cpus", "%g" % node.cpus, "--memory", node.memory, "--memory-swap", node.memory,
        *NODE_SECURITY,
        "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
        # the node's own engine keeps its images in an anonymous volume (overlay on overlay fails)
        "-v", "/var/lib/docker",
        "-e", "NANOEDGE_REGISTRY=%s" % cluster.gateway_registry,
        "--label", "%s=%s" % (LABEL, cluster.name), "--label", "%s.role=%s" % (LABEL, node.role),
        "--label", "%s.host=%s" % (LABEL, node.host), "--label", "%s.config=%s" % (LABEL, wanted),
    ]
    # The container mounts a copy of its hardware folder, so that devices can be plugged in and out
    # of a running node (plug, unplug) without touching the checkout.
    live = cluster.live_hardware(node)
    shutil.rmtree(live, ignore_errors=True)
    for source, target in cluster.mounts(node):
        copy = live / source.relative_to(node.hardware)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy, symlinks=True)
        else:
            shutil.copy2(source, copy)
        args += ["--mount", "type=bind,source=%s,target=%s,readonly" % (copy, target)]
    docker(*args, cluster.image)
    return "started" if state is None else "re-created"


def node_ready(cluster: Cluster, node: Node) -> t.Optional[str]:
    """None when the node's engine answers and reaches the registry, else why not."""
    probe = ("import sys, urllib.request\n"
             "urllib.request.urlopen('http://%s/v2/', timeout=3)\n" % cluster.gateway_registry)
    proc = docker("exec", node.container, "sh", "-c",
                  "docker version -f '{{.Server.Version}}' && python3 -c \"$0\"", probe,
                  check=False, timeout=30)
    if proc.returncode == 0:
        return None
    return (proc.stderr.decode(errors="replace").strip().splitlines() or ["exit %d" % proc.returncode])[-1]


def wait_ready(cluster: Cluster, nodes: t.Sequence[Node], timeout: float) -> None:
    deadline = time.monotonic() + timeout

    def wait(node: Node) -> t.Optional[str]:
        while True:
            reason = node_ready(cluster, node)
            if reason is None:
                return None
            state = container_state(node.container)
            if state is None or not state["State"]["Running"]:
                logs = docker("logs", "--tail", "20", node.container, check=False)
                return "container stopped: %s" % (logs.stdout + logs.stderr).decode(errors="replace")[-800:]
            if time.monotonic() > deadline:
                return reason
            time.sleep(0.5)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        failures = {n.host: r for n, r in zip(nodes, pool.map(wait, nodes)) if r is not None}
    if failures:
        raise TestbedError("node(s) not ready after %.0f s: %s" % (
            timeout, "; ".join("%s: %s" % item for item in sorted(failures.items()))))


def pull_on_nodes(cluster: Cluster, nodes: t.Sequence[Node], image: str) -> None:
    """Make every node's engine pull ``image`` (a path in the registry,
    e.g. nanoedge/spo2:1.0.0) from the gateway, as a Pi would."""
    reference = "%s/%s" % (cluster.gateway_registry, image)

    def pull(node: Node) -> t.Optional[str]:
        proc = docker("exec", node.container, "docker", "pull", "-q", reference, check=False, timeout=300)
        return None if proc.returncode == 0 else proc.stderr.decode(errors="replace").strip()

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        failures = {n.host: r for n, r in zip(nodes, pool.map(pull, nodes)) if r is not None}
    if failures:
        raise TestbedError("pulling %s failed on %s" % (reference, "; ".join(
            "%s: %s" % item for item in sorted(failures.items()))))
    log("pulled %s on %s" % (reference, ", ".join(n.host for n in nodes)))
