# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a deployment description becomes on its node: mounts, devices and paths from the node's own files,
and the digest that names the container the description asks for.

The controller describes a service (``plugin_utils/_deployment.py``) and a node finishes the description with
what only the node can see: whether each io path is a device node, a folder, a file or missing. Both use the
functions here, so a description finished on the node equals the one the controller would make with the same
path types. ``spec_digest`` names what a container was created from (docs/contracts.md, "Labels"): a node tells
in O(1) whether its container is the one wanted. Standard library only, Python >= 3.9: this runs on the nodes.
"""

from __future__ import annotations

import hashlib
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._labels import SPEC_LABEL

# The fields of a description that decide what its container is created from.
SPEC_FIELDS = ("image", "platform", "env", "mounts", "devices", "cpus", "memory", "port", "labels")
# The fields of an io entry a description carries (``io``) so that a node can finish it.
IO_FIELDS = ("host_path", "container_path", "mode", "kind", "env")

Layout = t.Tuple[t.List[t.Dict[str, t.Any]], t.List[str], t.List[t.Dict[str, t.Any]], t.Dict[str, str]]


def path_type(value: t.Any) -> str:
    """``char``, ``block``, ``dir``, ``file`` or ``missing``, from a name or from the result of ansible.builtin.stat."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or not value.get("exists"):
        return "missing"
    for key, name in (("ischr", "char"), ("isblk", "block"), ("isdir", "dir")):
        if value.get(key):
            return name
    return "file"


def io_layout(io_entries: t.Iterable[t.Mapping[str, t.Any]], backend: str, types: t.Mapping[str, t.Any]) -> Layout:
    """Mounts, devices, the paths as the node has them, and the environment that names them."""
    mounts, devices, paths, env = [], [], [], {}
    for entry in io_entries:
        host_path, container_path, mode = entry["host_path"], entry["container_path"], entry["mode"]
        kind = path_type(types.get(host_path, "unknown"))
        paths.append({"path": host_path, "mode": mode, "kind": entry["kind"], "type": kind})
        if kind in ("char", "block"):
            # A device node needs the cgroup device rule `devices` grants; a bind mount would not.
            devices.append("%s:%s:%s" % (host_path, container_path, "r" if mode == "ro" else "rwm"))
        else:
            mounts.append({"type": "bind", "source": host_path, "target": container_path,
                           "read_only": mode == "ro"})
        if entry["env"]:
            env[entry["env"]] = host_path if backend == "baremetal" else container_path
    return mounts, devices, paths, env


def node_backend(io_entries: t.Iterable[t.Mapping[str, t.Any]], backend: str,
                 types: t.Mapping[str, t.Any]) -> t.Tuple[str, str]:
    """The backend that can run the service, and why it is not the one asked for."""
    if backend != "swarm":
        return backend, ""
    device_nodes = [e["host_path"] for e in io_entries
                    if path_type(types.get(e["host_path"], "unknown")) in ("char", "block")]
    if not device_nodes:
        return backend, ""
    # A Swarm service cannot be granted a device (no --device for services), and a bind-mounted
    # device node is refused by the task's device cgroup: the node's own engine runs it instead.
    return "container", "runs on the node's engine: Swarm services cannot use the device(s) %s" % ", ".join(device_nodes)


def spec_digest(description: t.Mapping[str, t.Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of what a description's container is created from (SPEC_FIELDS),
    its labels without SPEC_LABEL itself."""
    fields = {key: description.get(key) for key in SPEC_FIELDS}
    fields["labels"] = {key: value for key, value in (description.get("labels") or {}).items() if key != SPEC_LABEL}
    return "sha256:" + hashlib.sha256(canonical_json(fields)).hexdigest()


def with_spec_label(description: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """``description`` with labels[SPEC_LABEL] set to its digest; a Swarm service's description gets none: on a
    Swarm service that label is the digest of its Swarm specification (``plugin_utils/_swarm.py``)."""
    labels = {key: value for key, value in description["labels"].items() if key != SPEC_LABEL}
    if description.get("backend") != "swarm":
        labels[SPEC_LABEL] = spec_digest(description)
    description["labels"] = labels
    return description


def on_node(description: t.Mapping[str, t.Any], io_entries: t.Sequence[t.Mapping[str, t.Any]],
            types: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """``description`` finished with the node's path types (``types``: a path to its type or its stat result),
    as ``nanoedge.core.deployments`` describes it when given them: mounts, devices, paths, the io environment,
    the backend a device node needs and labels[SPEC_LABEL]."""
    result = dict(description)
    backend, note = node_backend(io_entries, str(description["backend"]), types)
    if backend != description["backend"]:
        result["backend"], result["backend_note"] = backend, note
    mounts, devices, paths, io_env = io_layout(io_entries, backend, types)
    result["env"] = dict(sorted(dict(description["env"], **io_env).items()))
    result.update(mounts=mounts, devices=devices, paths=paths,
                  writable_paths=[p["path"] for p in paths if p["mode"] == "rw"])
    result["labels"] = dict(description["labels"])
    return with_spec_label(result)
