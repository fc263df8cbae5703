# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``bench/bench_continuity.py`` sees of the demo cluster, from outside, through Docker alone.

- the placement: ``docker ps`` inside each running worker's own engine, containers labelled
  ``io.nanoedge.service`` (Swarm tasks carry the label too);
- the managers: their state file ``/var/lib/nanoedge-reconcile/state.json`` (role, fingerprint) and
  plan file (what is left unplaced, and why);
- the services: CoAP GETs with libcoap's ``coap-client-notls`` against the node's address and the
  service's port (``nanoservices/*/service.json``), and the environment a consumer was started with;
- the faults: ``docker kill``/``start`` of node containers and ``tools/testbed.py``.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

STATE_FILE = "/var/lib/nanoedge-reconcile/state.json"
PLAN_FILE = "/var/lib/nanoedge-reconcile/plan.json"
SERVICE_LABEL = "io.nanoedge.service"
# the containers of a Swarm task carry it
SWARM_TASK_LABEL = "com.docker.swarm.task.id"


class BenchError(Exception):
    """The cluster is not in a state the bench can measure from."""


def log(message: str) -> None:
    sys.stderr.write("continuity: %s\n" % message)
    sys.stderr.flush()


def run(args: t.Sequence[str], timeout: float = 60.0, check: bool = False) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(args), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        if check:
            raise BenchError("timed out after %.0f s: %s" % (timeout, " ".join(args))) from None
        return subprocess.CompletedProcess(list(args), 124, b"", b"timed out")
    if check and proc.returncode != 0:
        raise BenchError("%s: %s" % (" ".join(args), proc.stderr.decode(errors="replace").strip()[-400:]))
    return proc


def parse_iso(stamp: t.Any) -> t.Optional[float]:
    """Epoch seconds of a state file's ``2026-12-05T19:01:02.345Z``; None when it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Service(t.NamedTuple):
    name: str
    port: int
    path: str


class Cluster:
    """The demo cluster of a checkout: node containers ``<prefix><host>`` at fixed addresses."""

    def __init__(self, root: Path, prefix: str = "nanoedge-") -> None:
        self.root = root
        self.prefix = prefix
        self.python = str(root / ".venv" / "bin" / "python") if (root / ".venv" / "bin" / "python").exists() \
            else sys.executable
        self.workers = ["w1", "w2", "w3", "w4", "w5"]
        self.managers = ["m1", "m2"]
        self.services = self._services()
        self.coap_client = shutil.which("coap-client-notls") or shutil.which("coap-client")
        self.addresses: t.Dict[str, str] = {}

    def _services(self) -> t.Dict[str, Service]:
        services = {}
        for path in sorted((self.root / "nanoservices").glob("*/service.json")):
            description = json.loads(path.read_text(encoding="utf-8"))
            services[description["name"]] = Service(description["name"], int(description["port"]["number"]),
                                                    description["provides"]["path"])
        return services

    def container(self, host: str) -> str:
        return self.prefix + host

    def address(self, host: str) -> str:
        """The node's address on the testbed network (as Docker reports it; fixed per node, so kept)."""
        if not self.addresses.get(host):
            proc = run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                        self.container(host)], timeout=20)
            self.addresses[host] = proc.stdout.decode().split()[0] if proc.returncode == 0 and proc.stdout.split() \
                else ""
        return self.addresses[host]

    def running(self, host: str) -> bool:
        proc = run(["docker", "inspect", "-f", "{{.State.Running}}", self.container(host)], timeout=20)
        return proc.returncode == 0 and proc.stdout.decode().strip() == "true"

    def exec(self, host: str, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
        return run(["docker", "exec", self.container(host), *args], timeout=timeout)

    def exec_input(self, host: str, data: bytes, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """``docker exec -i`` with ``data`` on the command's standard input."""
        try:
            return subprocess.run(["docker", "exec", "-i", self.container(host), *args], input=data,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(list(args), 124, b"", b"timed out")

    # -- placement -------------------------------------------------------------------

    def services_on(self, host: str) -> t.Optional[t.List[str]]:
        """The nanoedge services running on ``host``; None when its engine does not answer."""
        proc = self.exec(host, "docker", "ps", "--filter", "label=%s" % SERVICE_LABEL,
                         "--format", '{{.Label "%s"}}' % SERVICE_LABEL, timeout=15)
        if proc.returncode != 0:
            return None
        return sorted(line for line in proc.stdout.decode().split() if line)

    def services_by_node(self) -> t.Dict[str, t.List[str]]:
        """``{worker: [service, ...]}`` over the workers whose engine answers (a dead one runs nothing)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.workers)) as pool:
            listings = dict(zip(self.workers, pool.map(self.services_on, self.workers)))
        return {host: services for host, services in listings.items() if services is not None}

    def remove_service(self, host: str, service: str) -> None:
        """Remove the container(s) of ``service`` on ``host``; a Swarm task's service is removed from the swarm
        (its container alone would only be restarted by Swarm, on the same node)."""
        proc = self.exec(host, "docker", "ps", "-q", "--filter", "label=%s=%s" % (SERVICE_LABEL, service),
                         "--filter", "label=%s" % SWARM_TASK_LABEL)
        if proc.returncode == 0 and proc.stdout.strip():
            for manager in self.managers:
                removed = self.exec(manager, "sh", "-c", "docker service ls -q --filter label=%s=%s | xargs -r docker"
                                    " service rm" % (SERVICE_LABEL, service), timeout=60)
                if removed.returncode == 0:
                    return
        self.exec(host, "sh", "-c", "docker ps -q --filter label=%s=%s | xargs -r docker rm -f"
                  % (SERVICE_LABEL, service), timeout=60)

    def container_env(self, host: str, service: str) -> t.Dict[str, str]:
        """The environment of the container running ``service`` on ``host`` (empty when there is none)."""
        proc = self.exec(host, "sh", "-c", "docker inspect --format '{{json .Config.Env}}' "
                         "$(docker ps -q --filter label=%s=%s | head -n1)" % (SERVICE_LABEL, service))
        if proc.returncode != 0:
            return {}
        try:
            pairs = json.loads(proc.stdout.decode().strip().splitlines()[0])
        except (ValueError, IndexError):
            return {}
        return dict(item.split("=", 1) for item in pairs if "=" in item)

    # -- managers --------------------------------------------------------------------

    def manager_state(self, host: str) -> t.Optional[t.Dict[str, t.Any]]:
        proc = self.exec(host, "cat", STATE_FILE, timeout=10)
        if proc.returncode != 0:
            return None
        try:
            state = json.loads(proc.stdout.decode())
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def unplaced(self) -> t.List[str]:
        """``service: why`` for each service the newest plan of a running manager leaves unplaced."""
        newest: t.Tuple[float, t.List[str]] = (0.0, [])
        for host in self.managers:
            proc = self.exec(host, "sh", "-c", "stat -c %%Y %s && cat %s" % (PLAN_FILE, PLAN_FILE), timeout=10)
            if proc.returncode != 0:
                continue
            stamp, _newline, text = proc.stdout.decode().partition("\n")
            try:
                plan = json.loads(text)
                entries = ["%s unplaced (%s's plan: %s)" % (item["service"], host, item.get("summary", "?"))
                           for item in plan.get("unplaced", [])]
                newest = max(newest, (float(stamp), entries))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
        return newest[1]

    def manager_states(self) -> t.Dict[str, t.Dict[str, t.Any]]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.managers)) as pool:
            states = dict(zip(self.managers, pool.map(self.manager_state, self.managers)))
        return {host: state for host, state in states.items() if state is not None}

    def last_leader(self) -> t.Optional[str]:
        """The running manager with the highest term in its state file (the latest to lead)."""
        terms = [(state.get("term") or 0, host) for host, state in self.manager_states().items()
                 if isinstance(state.get("term") or 0, int) and self.running(host)]
        return max(terms)[1] if terms else None

    def request_full_run(self) -> t.Optional[str]:
        """``systemctl reload`` of the active manager's reconcile service: a full run of the site playbook, which
        finds what really runs on every node (a targeted run trusts the plan). The manager asked, if any."""
        host = self.active_manager()
        if host is not None:
            self.exec(host, "systemctl", "reload", "nanoedge-reconcile", timeout=30)
        return host

    def active_manager(self) -> t.Optional[str]:
        """The running manager whose state file says active (the first, should two say so)."""
        for host, state in sorted(self.manager_states().items()):
            if state.get("role") == "active" and self.running(host):
                return host
        return None

    # -- services --------------------------------------------------------------------

    def coap_get(self, host: str, service: str, timeout: float = 3.0,
                 path: t.Optional[str] = None) -> t.Tuple[t.Any, t.Optional[str]]:
        """(JSON answer, None) of ``service``'s resource (or its ``path``) on ``host``, or (None, why not)."""
        if self.coap_client is None:
            return None, "no coap-client-notls on PATH (Debian package libcoap3-bin)"
        spec = self.services[service]
        uri = "coap://%s:%d%s" % (self.address(host), spec.port, path or spec.path)
        proc = run([self.coap_client, "-m", "get", "-B", "%d" % max(1, int(timeout)), uri], timeout=timeout + 5)
        text = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0 or not text:
            why = proc.stderr.decode(errors="replace").strip()[-200:] or "exit %d" % proc.returncode
            return None, "%s: no answer (%s)" % (uri, why)
        # libcoap writes its warnings (an ICMP error, a retransmission) to standard output too
        body = next((line for line in reversed(text.splitlines()) if line.startswith(("{", "["))), text)
        try:
            return json.loads(body), None
        except ValueError:
            return None, "%s answered %r, not JSON" % (uri, text[:120])

    # -- faults ----------------------------------------------------------------------

    def testbed(self, *args: str, timeout: float = 120.0) -> None:
        run([self.python, str(self.root / "tools" / "testbed.py"), *args], timeout=timeout, check=True)

    def kill(self, host: str) -> None:
        run(["docker", "kill", self.container(host)], timeout=30, check=True)

    def start(self, host: str) -> None:
        """Start a stopped node and wait until its engine answers."""
        if not self.running(host):
            run(["docker", "start", self.container(host)], timeout=60, check=True)
        deadline = time.monotonic() + 90
        while self.services_on(host) is None:
            if time.monotonic() > deadline:
                raise BenchError("%s: its engine did not answer within 90 s of the start" % host)
            time.sleep(1)

    def start_manager(self, host: str) -> None:
        """Start a stopped manager and wait until its reconcile service writes its state file again."""
        if not self.running(host):
            run(["docker", "start", self.container(host)], timeout=60, check=True)
        deadline = time.monotonic() + 90
        while self.manager_state(host) is None:
            if time.monotonic() > deadline:
                raise BenchError("%s: no state file within 90 s of the start" % host)
            time.sleep(1)

    def live_hardware(self, host: str) -> Path:
        """The copy of the node's hardware folder its container mounts (tools/testbed_cluster.py)."""
        proc = run(["docker", "inspect", "-f",
                    '{{range .Mounts}}{{if eq .Destination "/sys/bus"}}{{.Source}}{{end}}{{end}}',
                    self.container(host)], timeout=20, check=True)
        source = proc.stdout.decode().strip()
        if not source:
            raise BenchError("%s mounts no /sys/bus: not a testbed node?" % host)
        return Path(source).parent.parent
