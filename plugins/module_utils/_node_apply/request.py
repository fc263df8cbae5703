# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request of a node-side apply (version 1), checked whole before anything is done.

::

    {"version": 1, "node": "w1", "phase": "make" | "break",
     "fence": {"term": 7, "manager": "m1", "path": "...", "witness_path": "..."} | null,
     "deployments": [<nanoedge.core.deployments descriptions for this node, backend container>],
     "docker": {"socket": "/var/run/docker.sock", "pull": "missing" | "always" | "never",
                "restart_policy": "unless-stopped", "network_mode": "host", "name_prefix": "nanoedge-svc-"}}

``make`` ensures every wanted container runs and removes nothing else; ``break`` does the same, then removes
the node's other nanoedge containers. A request that breaks a rule raises RequestError naming the field.
"""

from __future__ import annotations

import posixpath
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._deploy_layout import IO_FIELDS
from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import DEFAULT_SOCKET
from ansible_collections.nanoedge.core.plugins.module_utils._fence import (
    DEFAULT_PATH,
    DEFAULT_WITNESS_PATH,
    FenceError,
    validate_request,
)
from ansible_collections.nanoedge.core.plugins.module_utils._labels import SERVICE_LABEL
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE

VERSION = 1
PHASES = ("make", "break")
PULL = ("missing", "always", "never")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY = re.compile(r"^([0-9]+)([KMG]?)$")
_MEMORY_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_TOP = ("version", "node", "phase", "fence", "deployments", "docker")


class RequestError(ValueError):
    """The request breaks a rule; the message names the field at fault."""


class Fence(t.NamedTuple):
    term: int
    manager: str
    path: str
    witness_path: str


class Docker(t.NamedTuple):
    socket: str
    pull: str
    restart_policy: str
    network_mode: str
    name_prefix: str


class Request(t.NamedTuple):
    node: str
    phase: str
    fence: t.Optional[Fence]
    deployments: t.List[t.Dict[str, t.Any]]
    docker: Docker


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise RequestError("%s: %s" % (field, message))


def _known_keys(value: t.Mapping[str, t.Any], allowed: t.Sequence[str], field: str) -> None:
    unknown = sorted(set(value) - set(allowed))
    _require(not unknown, field, "unknown key(s) %s" % ", ".join(map(repr, unknown)))


def _absolute(value: t.Any) -> bool:
    return isinstance(value, str) and posixpath.isabs(value) and "\0" not in value


def memory_bytes(value: t.Any) -> t.Optional[int]:
    """``64M`` (what the deployments filter gives) as bytes, the way community.docker reads it (binary units)."""
    if value is None:
        return None
    match = _MEMORY.fullmatch(str(value).upper().rstrip("B")) if isinstance(value, str) else None
    if not match:
        raise ValueError("memory must be a size such as 64M, got %r" % (value,))
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2)]


def check_fence(value: t.Any) -> t.Optional[Fence]:
    if value is None:
        return None
    _require(isinstance(value, dict), "fence", "must be an object or null")
    _known_keys(value, ("term", "manager", "path", "witness_path"), "fence")
    try:
        validate_request(value.get("term"), value.get("manager"))
    except FenceError as exc:
        raise RequestError("fence.%s" % str(exc)[len("fence: "):]) from None
    path = value.get("path") or DEFAULT_PATH
    witness = value.get("witness_path") or DEFAULT_WITNESS_PATH
    _require(_absolute(path), "fence.path", "must be an absolute path, got %r" % (path,))
    _require(_absolute(witness), "fence.witness_path", "must be an absolute path, got %r" % (witness,))
    return Fence(value["term"], value["manager"], path, witness)


def check_docker(value: t.Any) -> Docker:
    _require(isinstance(value, dict), "docker", "must be an object")
    _known_keys(value, Docker._fields, "docker")
    socket = value.get("socket", DEFAULT_SOCKET)
    _require(_absolute(socket), "docker.socket", "must be an absolute path, got %r" % (socket,))
    pull = value.get("pull", "missing")
    # community.docker.docker_container takes booleans too: true is always, false missing
    if isinstance(pull, bool):
        pull = "always" if pull else "missing"
    _require(pull in PULL, "docker.pull", "must be one of %s, got %r" % (", ".join(PULL), pull))
    policy = value.get("restart_policy", "unless-stopped")
    _require(policy in RESTART_POLICIES, "docker.restart_policy",
             "must be one of %s, got %r" % (", ".join(RESTART_POLICIES), policy))
    network = value.get("network_mode", "host")
    _require(isinstance(network, str) and bool(network) and network.isprintable(), "docker.network_mode",
             "must be a network mode (host, bridge or a network's name), got %r" % (network,))
    prefix = value.get("name_prefix", "nanoedge-svc-")
    _require(isinstance(prefix, str) and bool(_PREFIX.fullmatch(prefix)), "docker.name_prefix",
             "must be lower-case letters, digits, '.', '_' or '-', got %r" % (prefix,))
    return Docker(socket, pull, policy, network, prefix)


def _check_io(io: t.Any, where: str) -> None:
    _require(isinstance(io, list), where + ".io", "must be a list (descriptions of nanoedge.core.deployments)")
    for index, entry in enumerate(io):
        field = "%s.io[%d]" % (where, index)
        _require(isinstance(entry, dict) and set(entry) == set(IO_FIELDS), field,
                 "must be an object with exactly %s" % ", ".join(IO_FIELDS))
        _require(_absolute(entry["host_path"]), field + ".host_path", "must be an absolute path")
        _require(_absolute(entry["container_path"]), field + ".container_path", "must be an absolute path")
        _require(entry["mode"] in ("ro", "rw"), field + ".mode", "must be ro or rw, got %r" % (entry["mode"],))
        _require(isinstance(entry["kind"], str), field + ".kind", "must be a string")
        _require(entry["env"] is None or (isinstance(entry["env"], str) and bool(_ENV.fullmatch(entry["env"]))),
                 field + ".env", "must be an environment variable name or null")


def _string_map(value: t.Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _check_resources(description: t.Mapping[str, t.Any], where: str) -> None:
    cpus = description.get("cpus")
    _require(cpus is None or (isinstance(cpus, (int, float)) and not isinstance(cpus, bool) and 0 < cpus <= 1024),
             where + ".cpus", "must be a positive number or null, got %r" % (cpus,))
    try:
        memory_bytes(description.get("memory"))
    except ValueError as exc:
        raise RequestError("%s.memory: %s" % (where, exc)) from None
    port = description.get("port")
    _require(port is None or (isinstance(port, dict) and isinstance(port.get("number"), int)
                              and not isinstance(port.get("number"), bool) and 0 < port["number"] < 65536
                              and port.get("protocol", "udp") in ("udp", "tcp")),
             where + ".port", "must be null or {number: 1-65535, protocol: udp|tcp}, got %r" % (port,))


def check_description(description: t.Any, index: int, node: str, prefix: str) -> t.Dict[str, t.Any]:
    where = "deployments[%d]" % index
    _require(isinstance(description, dict), where, "must be an object (a description of nanoedge.core.deployments)")
    name = description.get("name")
    _require(isinstance(name, str) and bool(_NAME.fullmatch(name)), where + ".name",
             "must be a service name, got %r" % (name,))
    where = "deployments[%d] (%s)" % (index, name)
    _require(description.get("backend") == "container", where + ".backend",
             "must be container (the node runs only containers itself), got %r" % (description.get("backend"),))
    _require(description.get("node") == node, where + ".node",
             "must be the request's node %r, got %r" % (node, description.get("node")))
    _require(description.get("container_name") == prefix + name, where + ".container_name",
             "must be %r (docker.name_prefix and the name), got %r"
             % (prefix + name, description.get("container_name")))
    image = description.get("image")
    _require(isinstance(image, str) and bool(image) and image.isprintable() and " " not in image,
             where + ".image", "must be an image reference, got %r" % (image,))
    platform = description.get("platform")
    _require(platform is None or (isinstance(platform, str) and platform.startswith("linux/")),
             where + ".platform", "must be null or linux/<arch>, got %r" % (platform,))
    _require(_string_map(description.get("env")) and all(_ENV.fullmatch(k) for k in description["env"]),
             where + ".env", "must be an object of variable name to string")
    labels = description.get("labels")
    _require(_string_map(labels), where + ".labels", "must be an object of string to string")
    _require(labels.get(SERVICE_LABEL) == name, where + ".labels",
             "must name the service in %s, got %r" % (SERVICE_LABEL, labels.get(SERVICE_LABEL)))
    _check_resources(description, where)
    _check_io(description.get("io"), where)
    return description


def check_request(value: t.Any) -> Request:
    """The request, checked; RequestError names the first field at fault."""
    _require(isinstance(value, dict), "request", "must be a JSON object")
    _known_keys(value, _TOP, "request")
    _require(value.get("version") == VERSION and not isinstance(value.get("version"), bool), "version",
             "must be %d, got %r" % (VERSION, value.get("version")))
    node = value.get("node")
    _require(isinstance(node, str) and bool(NODE_NAME_RE.fullmatch(node)), "node",
             "must be a node name, got %r" % (node,))
    phase = value.get("phase")
    _require(phase in PHASES, "phase", "must be make or break, got %r" % (phase,))
    fence = check_fence(value.get("fence"))
    docker = check_docker(value.get("docker"))
    items = value.get("deployments")
    _require(isinstance(items, list), "deployments", "must be a list")
    descriptions = [check_description(item, index, node, docker.name_prefix) for index, item in enumerate(items)]
    names = [d["name"] for d in descriptions]
    twice = sorted({name for name in names if names.count(name) > 1})
    _require(not twice, "deployments", "service(s) %s given more than once" % ", ".join(twice))
    return Request(node, phase, fence, descriptions, docker)
