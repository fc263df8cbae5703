# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 5: what one node runs, as backend-neutral descriptions. Controller only.

A deployment description joins two sources: the service profiles of step 3
(each with the image digest the registry answered and the whole service
description the image carries: program, port, devices, the services it
consumes; see ``_service_description.py``) and the plan (which node runs
what, so a consumer gets its producers' addresses; with the service directory
a consumer whose description says ``"directory": true`` gets their names instead, see
``consumer_environment``). The deploy role turns
each into a container or a systemd unit; both backends read the same fields,
so a service behaves the same either way. The bare-metal backend installs the
program and libraries from the image itself (``image_paths``). The swarm
backend (``_swarm.py``) runs the same description as a Swarm service pinned
to its node. What a node finishes itself (its path types, the container's spec digest) is in
``module_utils/_deploy_layout.py``, which the node-side apply (``module_utils/_node_apply``) uses too.
"""

from __future__ import annotations

import json
import posixpath
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._labels import (
    DIGEST_LABEL,
    IMAGE_LABEL,
    NODE_LABEL,
    REQUIREMENTS_LABEL,
    SERVICE_LABEL,
    URI_LABEL,
)
from ansible_collections.nanoedge.core.plugins.module_utils._deploy_layout import (
    IO_FIELDS,
    io_layout,
    node_backend,
    with_spec_label,
)
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE, platform_of
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import (
    IMAGE_HOME,
    IMAGE_LIBRARIES,
    IMAGE_PROGRAM,
    DescriptionError,
    image_paths,
    normalize_description,
)

BACKENDS = ("container", "baremetal", "swarm")
# With the service directory: where a service reaches its node's directory, and its own address there.
DIRECTORY_ENV = "NANOEDGE_DIRECTORY_URI"
SELF_URI_ENV = "NANOEDGE_SELF_URI"
# The instance a producer names itself by in its readings' source (<service>/<instance>) and at the directory:
# its node, so a producer that moves with its sensor is a new source whose numbering starts afresh, and the
# consumer can tell the readings of the old one it never got.
INSTANCE_ENV = "NANOEDGE_INSTANCE"
# A consumed producer named, not addressed: the consumer looks it up at its node's directory.
SERVICE_PREFIX = "service:"
_DIRECTORY_URI = re.compile(r"^coap://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_UNIT_SAFE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


# What a node of a platform runs besides images of its own: 32-bit ARM runs the older variants' code, and
# indexes name arm64 with or without its variant.
_ALSO_RUNS = {"arm/v7": ("arm/v6", "arm/v5"), "arm/v6": ("arm/v5",), "arm64": ("arm64/v8",)}


class DeploymentError(ValueError):
    """A service cannot be described for deployment; the message names it and the field at fault."""


def _require(condition: bool, service: str, message: str) -> None:
    if not condition:
        raise DeploymentError("service %r: %s" % (service, message))


def split_image(image: str) -> t.Tuple[str, str]:
    """``127.0.0.1:5000/nanoedge/spo2:1.0`` -> (``127.0.0.1:5000``, ``nanoedge/spo2``); no registry gives ``""``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", name


def image_reference(image: str, digest: str, pull_registry: str = "") -> str:
    """``image`` pinned to ``digest``, with its registry replaced by ``pull_registry`` when given.

    Nodes often reach the registry under another address than the controller
    (a LAN address instead of loopback); the digest guarantees the same bytes."""
    own_registry, repository = split_image(image)
    registry = pull_registry.strip().rstrip("/") if pull_registry else own_registry
    if "://" in registry:
        registry = registry.split("://", 1)[1]
    return "%s%s@%s" % (registry + "/" if registry else "", repository, digest)


def tag_reference(image: str, pull_registry: str = "") -> str:
    """``image`` by its tag (``latest`` when it has none), with its registry replaced by ``pull_registry``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return image_reference(name, "", pull_registry)[:-1] + ":" + tag


def image_platform(name: str, node: str, arch: t.Any, platforms: t.Any) -> t.Optional[str]:
    """The platform of the image (one of ``platforms``, as step 3 lists them: ``linux/arm/v7``) that a node of
    platform ``arch`` (its profile's) runs; None when either is not known: the node's engine picks, as it would.

    A node whose platform the image does not have is an error here, before any node pulls it."""
    known = [p for p in platforms or () if isinstance(p, str) and p.startswith("linux/")]
    if not arch or not known:
        return None
    own = platform_of(str(arch))
    for candidate in (own,) + _ALSO_RUNS.get(own, ()):
        if "linux/" + candidate in known:
            return "linux/" + candidate
    raise DeploymentError("service %r: its image has no platform that node %r (%s) runs; it has %s"
                          % (name, node, own, ", ".join(sorted(known))))


def check_spec(name: str, spec: t.Any, requires: t.Any = None) -> t.Dict[str, t.Any]:
    """The service description, validated with the one schema; ``None`` gives the image's defaults.

    A description may leave out the name and the requirements: the profile has them."""
    if spec is None:
        spec = {}
    _require(isinstance(spec, dict), name, "the description must be a JSON object, got %s" % type(spec).__name__)
    _require(spec.get("name", name) == name, name, "its description names service %r" % spec.get("name"))
    try:
        return normalize_description(dict({"requirements": requires or {}}, **dict(spec, name=name)))
    except DescriptionError as exc:
        raise DeploymentError("service %r: %s" % (name, exc)) from None


def description_of(service: t.Mapping[str, t.Any], specs: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """A service's description: the one given in ``specs``, else the one its profile (step 3) holds."""
    name = str(service.get("name"))
    spec = specs.get(name, service.get("description"))
    return check_spec(name, spec, service.get("requires"))


def _uri(spec: t.Mapping[str, t.Any], address: str) -> t.Optional[str]:
    if not spec["port"] or not spec["provides"]:
        return None
    host = "[%s]" % address if ":" in address else address
    return "coap://%s:%d%s" % (host, spec["port"]["number"], spec["provides"]["path"])


def uses_directory(spec: t.Mapping[str, t.Any], directory: str) -> bool:
    """Whether the service registers itself, and finds its producers, at its node's directory: there is one
    (``directory``) and its description says so (``"directory": true``; docs/contracts.md, "Service description").

    The key alone decides: a program that ships nanoedge_ns may be built with a copy older than the directory,
    or never call it, and could not read ``service:<name>``; without the key it is given addresses."""
    return bool(directory) and spec.get("directory") is True


def by_name(spec: t.Mapping[str, t.Any], producer_spec: t.Optional[t.Mapping[str, t.Any]], directory: str) -> bool:
    """Whether a consumer (``spec``) is given its producer's name rather than its address: both use the directory
    (a producer that does not register there could not be found by name) and the producer serves something."""
    return (producer_spec is not None and uses_directory(spec, directory) and uses_directory(producer_spec, directory)
            and _uri(producer_spec, "directory") is not None)


def consumer_environment(name: str, spec: t.Mapping[str, t.Any], specs: t.Mapping[str, t.Mapping[str, t.Any]],
                         placements: t.Mapping[str, str], addresses: t.Mapping[str, str],
                         directory: str = "") -> t.Dict[str, str]:
    """Environment that points ``name`` at the producers it consumes.

    A consumer gets the name of each producer it finds at the directory (``by_name``: ``service:spo2``); its
    environment does not depend on where those producers run, so one that moves does not make it recreated.
    Every other producer it gets by its address where the plan put it; a producer that is not placed is left
    out: the consumer starts without it and the summary already lists the producer as unplaced."""
    env = {}  # type: t.Dict[str, t.List[str]]
    for producer, how in spec["consumes"].items():
        node = placements.get(producer)
        producer_spec = specs.get(producer)
        if by_name(spec, producer_spec, directory):
            value = SERVICE_PREFIX + producer
            env.setdefault(how["env"], []).append(value if how.get("format", "uri") == "uri"
                                                  else "%s=%s" % (producer, value))
            continue
        if node is None or producer_spec is None:
            continue
        address = addresses.get(node)
        if not address:
            raise DeploymentError("service %r consumes %r on node %r, whose address is unknown "
                                  "(set nanoedge_address or ansible_host for it)" % (name, producer, node))
        uri = _uri(producer_spec, address)
        if uri is None:
            continue
        item = uri if how.get("format", "uri") == "uri" else "%s=%s" % (producer, uri)
        env.setdefault(how["env"], []).append(item)
    return {key: ",".join(values) for key, values in env.items()}


def directory_environment(spec: t.Mapping[str, t.Any], own_address: t.Optional[str], directory: str,
                          node: str) -> t.Dict[str, str]:
    """For a service that uses the directory: where it is, its instance (its ``node``), and the service's own URI
    to register there (when it serves something and its node's address is known)."""
    if not uses_directory(spec, directory):
        return {}
    env = {DIRECTORY_ENV: directory, INSTANCE_ENV: node}
    own = _uri(spec, own_address) if own_address else None
    if own is not None:
        env[SELF_URI_ENV] = own
    return env


def check_directory(directory: t.Any) -> str:
    """The ``directory`` argument: empty (none) or ``coap://HOST:PORT`` as the node's services reach it."""
    if directory is None or directory == "":
        return ""
    if not isinstance(directory, str) or not _DIRECTORY_URI.fullmatch(directory.rstrip("/")):
        raise DeploymentError("directory %r must be empty or coap://HOST:PORT (the node's directory as its services "
                              "reach it, e.g. coap://127.0.0.1:5690)" % (directory,))
    return directory.rstrip("/")


def _bare_metal(service: t.Mapping[str, t.Any], checked: t.Mapping[str, t.Any], service_dir: str) -> t.Dict[str, t.Any]:
    """Where the bare-metal backend reads the program and libraries (the image) and puts them (``service_dir``).

    The folder IMAGE_HOME of the image becomes ``service_dir``, so the program and the libraries keep their
    places relative to each other."""
    own_registry, repository = split_image(str(service.get("image")))
    return {
        "program": posixpath.join(service_dir, posixpath.relpath(IMAGE_PROGRAM, IMAGE_HOME)) if checked["program"]
        else None,
        "pythonpath": [posixpath.join(service_dir, posixpath.relpath(IMAGE_LIBRARIES, IMAGE_HOME))],
        "image_paths": image_paths(checked),
        "image_home": IMAGE_HOME,
        "source_registry": str(service.get("registry") or ("https://" + own_registry if own_registry else "")),
        "source_repository": repository,
    }


def describe(service: t.Mapping[str, t.Any], node: str, plan: t.Mapping[str, t.Any],
             described: t.Mapping[str, t.Dict[str, t.Any]], addresses: t.Mapping[str, str], backend: str,
             pull_registry: str = "", name_prefix: str = "nanoedge-svc-", install_dir: str = "/opt/nanoedge",
             path_types: t.Optional[t.Mapping[str, str]] = None, platform: str = "",
             directory: str = "") -> t.Dict[str, t.Any]:
    """One backend-neutral deployment description (see the module docstring); ``described``: every service's;
    ``platform``: the node's (its profile's ``arch``), empty when not known; ``directory``: the node's service
    directory as its services reach it, empty for none."""
    name = service.get("name")
    if not isinstance(name, str) or not _UNIT_SAFE.fullmatch(name):
        raise DeploymentError("service name %r: must match %s (it names a container and a unit)"
                              % (name, _UNIT_SAFE.pattern))
    _require(backend in BACKENDS, name, "backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
    digest = service.get("digest")
    _require(isinstance(digest, str) and bool(_DIGEST.fullmatch(digest)), name,
             "digest must be sha256:<64 hex digits>, got %r" % (digest,))
    image = service.get("image")
    _require(isinstance(image, str) and bool(image), name, "image is missing")
    requires = service.get("requires") or {}
    checked = described[name]

    env = dict(checked["environment"])
    if checked["port"]:
        env["NANOEDGE_PORT"] = str(checked["port"]["number"])
    env.update(consumer_environment(name, checked, described, plan.get("placements") or {}, addresses, directory))
    env.update(directory_environment(checked, addresses.get(node), directory, node))
    types = path_types or {}
    backend, note = node_backend(checked["io"], backend, types)
    mounts, devices, paths, io_env = io_layout(checked["io"], backend, types)
    env.update(io_env)

    cpus = requires.get("cpu") or 0
    memory_mb = requires.get("memory_mb") or 0
    unit = name_prefix + name
    service_dir = posixpath.join(install_dir, "services", name)
    labels = {
        SERVICE_LABEL: name,
        NODE_LABEL: node,
        DIGEST_LABEL: digest,
        # the tag as the node pulls it: the same label whoever runs the deploy (the controller reaches the
        # registry at another address than the managers' reconcile runs), so a re-run changes nothing
        IMAGE_LABEL: tag_reference(image, pull_registry),
        REQUIREMENTS_LABEL: json.dumps(requires, sort_keys=True, separators=(",", ":")),
    }
    if node in addresses and _uri(checked, addresses[node]):
        labels[URI_LABEL] = t.cast(str, _uri(checked, addresses[node]))
    result = {
        "name": name,
        "node": node,
        "backend": backend,
        "backend_note": note,
        "description": checked["description"],
        "image": image_reference(image, digest, pull_registry),
        "digest": digest,
        "platform": image_platform(name, node, platform, service.get("platforms")),
        "container_name": unit,
        "unit_name": unit + ".service",
        "labels": labels,
        "env": dict(sorted(env.items())),
        "mounts": mounts,
        "devices": devices,
        "paths": paths,
        "cpus": cpus if cpus else None,
        "memory": "%dM" % memory_mb if memory_mb else None,
        "cpu_quota": "%d%%" % round(cpus * 100) if cpus else None,
        "memory_max": "%dM" % memory_mb if memory_mb else None,
        "port": checked["port"],
        "libraries": checked["libraries"],
        "python_requirements": checked["python_requirements"],
        "service_dir": service_dir,
        "writable_paths": [p["path"] for p in paths if p["mode"] == "rw"],
        # what the node needs to finish the description with its own path types (_deploy_layout.on_node)
        "io": [{key: entry[key] for key in IO_FIELDS} for entry in checked["io"]],
    }
    result.update(_bare_metal(service, checked, service_dir))
    return with_spec_label(result)


def _check_arguments(plan: t.Any, services: t.Any, node: t.Any, specs: t.Any, addresses: t.Any, backends: t.Any,
                     name_prefix: t.Any) -> None:
    if not isinstance(plan, dict) or not isinstance(plan.get("by_node"), dict):
        raise DeploymentError("plan must be the result of nanoedge.core.allocate (a dict with by_node)")
    if not isinstance(node, str) or not NODE_NAME_RE.fullmatch(node):
        raise DeploymentError("node %r is not a valid node name" % (node,))
    if not isinstance(services, list) or not all(isinstance(s, dict) and "name" in s for s in services):
        raise DeploymentError("services must be a list of service profiles (nanoedge.core.service_profiles)")
    for what, value in (("specs", specs), ("addresses", addresses), ("backends", backends)):
        if not isinstance(value, dict):
            raise DeploymentError("%s must be a dict, got %s" % (what, type(value).__name__))
    if not isinstance(name_prefix, str) or not re.fullmatch(r"^[a-z0-9][a-z0-9._-]*$", name_prefix):
        raise DeploymentError("name_prefix %r must be lower-case letters, digits, '.', '_' or '-'" % (name_prefix,))
    unknown = sorted(set(backends) - {s["name"] for s in services})
    if unknown:
        raise DeploymentError("backends names unknown service(s): %s" % ", ".join(unknown))


def deployments(plan: t.Any, services: t.Any, node: t.Any, specs: t.Any = None, addresses: t.Any = None,
                backend: t.Any = "container", backends: t.Any = None, pull_registry: t.Any = "",
                name_prefix: t.Any = "nanoedge-svc-", install_dir: t.Any = "/opt/nanoedge",
                path_types: t.Any = None, platform: t.Any = "", directory: t.Any = "") -> t.List[t.Dict[str, t.Any]]:
    """The descriptions of every service the plan places on ``node``, in placement order.

    Each service is described by its profile's ``description`` (what step 3 returned); ``specs`` may give
    another description for some services, for images that carry none."""
    specs, addresses, backends = specs or {}, addresses or {}, backends or {}
    if not isinstance(platform, str):
        raise DeploymentError("platform must be the node's platform as a string (arm/v7), got %s"
                              % type(platform).__name__)
    _check_arguments(plan, services, node, specs, addresses, backends, name_prefix)
    directory = check_directory(directory)
    by_name = {s["name"]: s for s in services}
    placed = plan["by_node"].get(node) or []
    missing = [name for name in placed if name not in by_name]
    if missing:
        raise DeploymentError("the plan places %r on %r, but no such service was given" % (missing[0], node))
    # this node's services, and every producer a consumer here needs the address of
    described = {name: description_of(by_name[name], specs) for name in placed}
    producers = {p for name in placed for p in described[name]["consumes"] if p in by_name and p not in described}
    described.update({name: description_of(by_name[name], specs) for name in sorted(producers)})
    return [describe(by_name[name], node, plan, described, addresses, str(backends.get(name, backend)),
                     str(pull_registry or ""), name_prefix, str(install_dir), path_types, platform, directory)
            for name in placed]
