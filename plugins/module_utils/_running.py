# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What nanoedge runs on a node: its labelled containers and its systemd units.

One look answers the questions the deploy role and the site playbook ask
before planning (which services run here, under which backend, and can the
Docker modules work here), so that a node costs one round trip. The Docker
engine is asked over its Unix socket with the standard library: nodes need
no Docker SDK and no ``requests`` for this.
"""

from __future__ import annotations

import glob
import http.client
import importlib.util
import json
import os
import socket
import typing as t
import urllib.parse

from ansible_collections.nanoedge.core.plugins.module_utils._labels import DIGEST_LABEL, SERVICE_LABEL

# Containers of a Docker Swarm task carry this label; Swarm, not the node, owns them.
SWARM_TASK_LABEL = "com.docker.swarm.task.id"


class RunningError(Exception):
    """The node's Docker engine could not be asked; the message says which socket and why."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_get(socket_path: str, path: str, timeout: float = 10.0) -> t.Any:
    """GET one Docker Engine API path over the Unix socket and decode its JSON answer."""
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise RunningError("the Docker engine at %s does not answer: %s" % (socket_path, exc)) from exc
    finally:
        conn.close()
    if response.status != 200:
        text = body.decode("utf-8", "replace").strip()
        raise RunningError("the Docker engine at %s answered %s to GET %s: %s"
                           % (socket_path, response.status, path.split("?")[0], text[:200]))
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise RunningError("the Docker engine at %s sent something that is not JSON for GET %s"
                           % (socket_path, path.split("?")[0])) from exc


def list_containers(socket_path: str, label: str = SERVICE_LABEL, timeout: float = 10.0) -> t.List[t.Dict[str, t.Any]]:
    """Every container (in any state) that carries ``label``, as the engine lists them."""
    filters = urllib.parse.quote(json.dumps({"label": [label]}, separators=(",", ":")))
    answer = engine_get(socket_path, "/containers/json?all=1&filters=" + filters, timeout)
    if not isinstance(answer, list):
        raise RunningError("the Docker engine at %s listed containers as %s, not a list"
                           % (socket_path, type(answer).__name__))
    return [item for item in answer if isinstance(item, dict)]


def _container_name(item: t.Dict[str, t.Any]) -> str:
    names = item.get("Names") or []
    return names[0].lstrip("/") if names and isinstance(names[0], str) else ""


def running(
    socket_path: str = "/var/run/docker.sock",
    unit_dir: str = "/etc/systemd/system",
    name_prefix: str = "nanoedge-svc-",
    label: str = SERVICE_LABEL,
    timeout: float = 10.0,
) -> t.Dict[str, t.Any]:
    """What runs here.

    ``containers`` maps a service to its container (name starting with
    ``name_prefix``, label ``label`` giving the service), ``units`` a
    service to its systemd unit (``container_states`` and ``container_digests``
    give each container's state and the image digest it was deployed from),
    ``swarm_tasks`` a service to the containers
    of its Swarm tasks on this node, ``services`` lists the services the node
    runs itself (containers and units, sorted). ``engine`` tells whether the
    node has a Docker engine and ``requests`` whether the Python library the
    Docker modules need is importable.
    """
    containers: t.Dict[str, str] = {}
    states: t.Dict[str, str] = {}
    digests: t.Dict[str, str] = {}
    swarm_tasks: t.Dict[str, t.List[str]] = {}
    engine = os.path.exists(socket_path)
    if engine:
        for item in list_containers(socket_path, label, timeout):
            labels = item.get("Labels") or {}
            service = labels.get(label)
            name = _container_name(item)
            if not isinstance(service, str) or not service or not name:
                continue
            if labels.get(SWARM_TASK_LABEL):
                swarm_tasks.setdefault(service, []).append(name)
            elif name.startswith(name_prefix):
                containers[service] = name
                states[service] = str(item.get("State") or "")
                digests[service] = str(labels.get(DIGEST_LABEL) or "")
    units: t.Dict[str, str] = {}
    pattern = os.path.join(unit_dir, glob.escape(name_prefix) + "*.service")
    for path in sorted(glob.glob(pattern)):
        if os.path.isfile(path):
            unit = os.path.basename(path)
            units[unit[len(name_prefix):-len(".service")]] = unit
    return {
        "engine": engine,
        "requests": importlib.util.find_spec("requests") is not None,
        "containers": containers,
        "container_states": states,
        "container_digests": digests,
        "units": units,
        "swarm_tasks": {service: sorted(names) for service, names in swarm_tasks.items()},
        "services": sorted(set(containers) | set(units)),
    }
