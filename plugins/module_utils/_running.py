# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What nanoedge runs on a node: its labelled containers and its systemd units.

One look answers the questions the deploy role and the site playbook ask
before planning (which services run here, under which backend, and can the
Docker modules work here), so that a node costs one round trip. The Docker
engine is asked over its Unix socket with the standard library: nodes need
no Docker SDK and no ``requests`` for this (``_docker_engine.py``).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import EngineError
from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import (
    list_containers as engine_list_containers,
)
from ansible_collections.nanoedge.core.plugins.module_utils._labels import DIGEST_LABEL, SERVICE_LABEL

# Containers of a Docker Swarm task carry this label; Swarm, not the node, owns them.
SWARM_TASK_LABEL = "com.docker.swarm.task.id"


# The engine's errors, under the name running_facts has always caught.
RunningError = EngineError


def list_containers(socket_path: str, label: str = SERVICE_LABEL, timeout: float = 10.0) -> t.List[t.Dict[str, t.Any]]:
    """Every container (in any state) that carries ``label``, as the engine lists them."""
    return engine_list_containers(socket_path, label, timeout)


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
