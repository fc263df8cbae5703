# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node-side apply request, and a fake Docker engine that records what it was asked."""

from __future__ import annotations

import copy
import os
import stat
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._deploy_layout import on_node, with_spec_label
from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import EngineError

IMAGE = "10.0.0.1:5000/nanoedge/%s@sha256:" + "ab" * 32


def description(name: str, io: t.Sequence[t.Dict[str, t.Any]] = (), **fields: t.Any) -> t.Dict[str, t.Any]:
    """A description as nanoedge.core.deployments gives it, before the node's path types."""
    result = {
        "name": name, "node": "w1", "backend": "container", "backend_note": "", "description": "",
        "image": IMAGE % name, "digest": "sha256:" + "ab" * 32, "platform": None,
        "container_name": "nanoedge-svc-" + name, "unit_name": "nanoedge-svc-%s.service" % name,
        "labels": {"io.nanoedge.service": name, "io.nanoedge.node": "w1"},
        "env": {"NANOEDGE_PORT": "5701"}, "mounts": [], "devices": [], "paths": [], "cpus": None, "memory": None,
        "port": {"number": 5701, "protocol": "udp"}, "io": list(io),
    }
    result.update(fields)
    unfinished = on_node(result, result["io"], {})
    return with_spec_label(dict(result, env=unfinished["env"], mounts=unfinished["mounts"],
                                paths=unfinished["paths"], writable_paths=unfinished["writable_paths"]))


SENSOR = {"host_path": "/dev/ttyUSB0", "container_path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor",
          "env": "NANOEDGE_POM_DEVICE"}
STATE = {"host_path": "/var/lib/nanoedge/spo2", "container_path": "/var/lib/nanoedge/spo2", "mode": "rw",
         "kind": "state", "env": "NANOEDGE_STATE_DIR"}
DOCKER = {"socket": "/var/run/docker.sock", "pull": "missing", "restart_policy": "unless-stopped",
          "network_mode": "host", "name_prefix": "nanoedge-svc-"}
FENCE = {"term": 7, "manager": "m1", "path": "/var/lib/nanoedge/fence.json",
         "witness_path": "/var/lib/nanoedge-agent/witness.json"}


def request(phase: str = "make", **fields: t.Any) -> t.Dict[str, t.Any]:
    result = {"version": 1, "node": "w1", "phase": phase, "fence": copy.deepcopy(FENCE),
              "deployments": [description("spo2", [SENSOR, STATE], cpus=0.5, memory="64M"), description("bot")],
              "docker": dict(DOCKER)}
    result.update(fields)
    return result


# What the node has: the sensor a character device, the state folder not yet there.
NODE_FILES = {"/dev/ttyUSB0": stat.S_IFCHR | 0o660}


def fake_stat(files: t.Optional[t.Mapping[str, int]] = None) -> t.Callable[[str], os.stat_result]:
    files = NODE_FILES if files is None else files

    def stat_path(path: str) -> os.stat_result:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return os.stat_result((files[path], 0, 0, 0, 0, 0, 0, 0, 0, 0))
    return stat_path


def finished(desc: t.Dict[str, t.Any], files: t.Optional[t.Mapping[str, int]] = None) -> t.Dict[str, t.Any]:
    """``desc`` as the node finishes it with ``files`` (NODE_FILES by default)."""
    files = NODE_FILES if files is None else files
    kinds = {stat.S_IFCHR: "char", stat.S_IFDIR: "dir"}
    return on_node(desc, desc["io"], {path: kinds.get(stat.S_IFMT(mode), "file") for path, mode in files.items()})


class FakeEngine:
    """Containers by name; ``fail`` maps an operation (and optionally ``op:name``) to the engine's error."""

    def __init__(self, containers: t.Sequence[t.Dict[str, t.Any]] = (), images: t.Iterable[str] = ()) -> None:
        self.containers = {c["Name"]: c for c in containers}
        self.images = set(images)
        self.calls = []  # type: t.List[t.Tuple[str, ...]]
        self.fail = {}  # type: t.Dict[str, str]
        self.created = {}  # type: t.Dict[str, t.Dict[str, t.Any]]

    def _check(self, op: str, name: str) -> None:
        message = self.fail.get("%s:%s" % (op, name), self.fail.get(op))
        if message:
            raise EngineError(message)

    def inspect_container(self, name: str) -> t.Optional[t.Dict[str, t.Any]]:
        self._check("inspect_container", name)
        return copy.deepcopy(self.containers.get(name))

    def inspect_image(self, image: str) -> t.Optional[t.Dict[str, t.Any]]:
        self._check("inspect_image", image)
        return {"Id": "sha256:1"} if image in self.images else None

    def list_containers(self, label: str) -> t.List[t.Dict[str, t.Any]]:
        self._check("list_containers", label)
        return [{"Id": c["Id"], "Names": ["/" + c["Name"]], "Labels": c["Config"]["Labels"]}
                for c in self.containers.values() if label in c["Config"]["Labels"]]

    def pull(self, image: str, platform: t.Optional[str] = None) -> None:
        self._check("pull", image)
        self.calls.append(("pull", image, str(platform)))
        self.images.add(image)

    def create_container(self, name: str, body: t.Mapping[str, t.Any], platform: t.Optional[str] = None) -> str:
        self._check("create_container", name)
        self.calls.append(("create", name))
        self.created[name] = dict(body)
        ident = "id-%s-%d" % (name, len(self.calls))
        self.containers[name] = container(name, body["Labels"], running=False, ident=ident)
        return ident

    def start_container(self, ident: str) -> None:
        name = next(n for n, c in self.containers.items() if c["Id"] == ident)
        self._check("start_container", name)
        self.calls.append(("start", name))
        self.containers[name]["State"]["Running"] = True

    def remove_container(self, ident: str) -> None:
        name = next(n for n, c in self.containers.items() if c["Id"] == ident)
        self._check("remove_container", name)
        self.calls.append(("remove", name))
        del self.containers[name]


def container(name: str, labels: t.Mapping[str, str], running: bool = True,
              ident: t.Optional[str] = None) -> t.Dict[str, t.Any]:
    return {"Id": ident or "id-" + name, "Name": name, "Config": {"Labels": dict(labels)},
            "State": {"Running": running}}
